"""The trainer's schedule and the recall table's run settings."""
import random
import unittest

from mcref import data, recall_table, train


class ScheduleTest(unittest.TestCase):
    def args(self, schedule):
        return train.build_parser().parse_args(
            ["--lr", "1e-3", "--warmup", "10", "--steps", "110", "--schedule", schedule])

    def test_warmup_is_linear_for_both_schedules(self):
        for schedule in ("cosine", "constant"):
            a = self.args(schedule)
            self.assertAlmostEqual(train.lr_at(0, a), 1e-4)
            self.assertAlmostEqual(train.lr_at(9, a), 1e-3)

    def test_cosine_ends_at_a_tenth_and_constant_stays(self):
        cos, const = self.args("cosine"), self.args("constant")
        self.assertAlmostEqual(train.lr_at(60, cos), 1e-3 * (0.1 + 0.9 * 0.5))
        self.assertAlmostEqual(train.lr_at(110, cos), 1e-4)
        for step in (10, 60, 110):
            self.assertEqual(train.lr_at(step, const), 1e-3)


class RecallTableSettingsTest(unittest.TestCase):
    def test_sequence_fits_the_longest_training_example(self):
        for sep in ("", "="):
            base = recall_table.parse_cli(["--kv_sep", sep, "--train_pairs", "2-8"])
            old, data.KV_SEP = data.KV_SEP, sep
            try:
                text, _ = data.recall_example(random.Random(0), 8, 4, key_len=1, value_len=1)
            finally:
                data.KV_SEP = old
            self.assertGreaterEqual(base.seq_len + 1, len(text) + 1)  # + bos

    def test_run_args_layer_table_settings_and_model_overrides(self):
        base = recall_table.parse_cli(["--steps", "7", "--d_model", "32"])
        args = recall_table.run_args(base, dict(arch="mc", aggregation="ssc", top_k=4), seed=2)
        self.assertEqual((args.steps, args.d_model, args.aggregation, args.top_k, args.seed),
                         (7, 32, "ssc", 4, 2))
        self.assertEqual((args.threads, args.kv_sep, args.schedule, args.n_pairs),
                         (1, "", "constant", (2, 4)))
        self.assertTrue(args.no_packing and args.recall_only_loss and args.quiet)
        self.assertIsNone(args.out)


if __name__ == "__main__":
    unittest.main()
