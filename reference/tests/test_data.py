"""The recall task's text format and the training mixture."""
import random
import unittest

from mcref.data import Mixture, recall_eval_set, recall_example


class RecallFormatTest(unittest.TestCase):
    def test_queries_ask_earlier_facts_and_spans_cover_their_values(self):
        text, spans = recall_example(random.Random(0), n_pairs=6, n_queries=4)
        facts, queries = text.rstrip("\n").split(" ? ")
        self.assertTrue(facts.startswith("@ "))
        table = dict(kv.split("=") for kv in facts[2:].split(" "))
        self.assertEqual(len(table), 6)
        self.assertEqual(len(spans), 4)
        for s, e in spans:
            key = text[s - 4:s - 1]
            self.assertEqual(text[s - 1], "=")
            self.assertEqual(text[s:e], table[key])
        self.assertEqual(len(queries.split(" ")), 4)

    def test_one_letter_keys_and_one_digit_values(self):
        text, spans = recall_example(random.Random(1), 26, 4, key_len=1, value_len=1)
        self.assertTrue(all(e - s == 1 for s, e in spans))
        with self.assertRaisesRegex(ValueError, "at most 26"):
            recall_example(random.Random(1), 27, 4, key_len=1)

    def test_recall_only_loss_marks_exactly_the_values(self):
        mix = Mixture(64, 4, 2, recall_frac=1.0, seed=3, corpus=b"", recall_only_loss=True,
                      key_len=1, value_len=1)
        x, m = mix.batch(2)
        self.assertEqual(tuple(x.shape), (2, 65))
        for row, mask in zip(x.tolist(), m.tolist()):
            for i, on in enumerate(mask):
                if on:
                    self.assertEqual(chr(row[i - 1]), "=")
                    self.assertTrue(chr(row[i]).isdigit())

    def test_eval_set_is_deterministic_and_offsets_include_bos(self):
        a, sa = recall_eval_set(4, 5, 3, seed=7)
        b, sb = recall_eval_set(4, 5, 3, seed=7)
        self.assertTrue((a == b).all())
        self.assertEqual(sa, sb)
        self.assertEqual(a[0, 0].item(), 256)
        s, e = sa[0][0]
        self.assertEqual(chr(a[0, s - 1].item()), "=")


if __name__ == "__main__":
    unittest.main()
