"""Training data: multi-query associative recall mixed with plain text.

Recall format (one example per line, bytes of ASCII text):

    @ kev=417 mub=092 zoa=555 ? mub=092 kev=417
    `----------- facts ------' `--- queries ---'

Keys are three lowercase letters, values three digits, facts are separated by
single spaces, then " ? " and queries of earlier keys in random order, each
followed by its value. A model that remembers the facts completes "mub=" with
"092"; one that does not can only guess (1 in 1000). The number of facts
controls the difficulty against the model's state size.

Plain text: Debian's license texts in /usr/share/common-licenses (from
base-files, so on every Debian machine), so that free generation is English-
like rather than noise.
"""
import glob
import random

import torch

LETTERS = "abcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"
# Between a key and its value, in facts and queries. "=" is the documented
# format; "" (set by mcref.train --kv_sep "") makes recall a one-back
# induction (the value directly follows its key), a diagnostic of how much
# the separator's two-back lookup costs a model.
KV_SEP = "="


def recall_example(rng: random.Random, n_pairs: int, n_queries: int, key_len=3, value_len=3):
    """Returns (text, value_spans): spans are (start, end) byte offsets of the
    queried values, the positions a recall model must predict. Keys are
    `key_len` letters (at most 26 pairs when 1), values `value_len` digits."""
    if key_len == 1 and n_pairs > len(LETTERS):
        raise ValueError(f"at most {len(LETTERS)} pairs with one-letter keys")
    # A dict, not a set: keys in the order drawn. A set's order follows the
    # string hash, which Python randomises per process (PYTHONHASHSEED), so
    # the same seed gave each process (each recall_table worker) other data.
    keys = {}
    while len(keys) < n_pairs:
        keys["".join(rng.choice(LETTERS) for _ in range(key_len))] = None
    keys = list(keys)
    rng.shuffle(keys)
    vals = {k: "".join(rng.choice(DIGITS) for _ in range(value_len)) for k in keys}
    text = "@ " + " ".join(f"{k}{KV_SEP}{vals[k]}" for k in keys) + " ?"
    spans = []
    for k in rng.sample(keys, min(n_queries, n_pairs)):
        text += f" {k}{KV_SEP}"
        spans.append((len(text), len(text) + value_len))
        text += vals[k]
    return text + "\n", spans


def plain_text_corpus(pattern="/usr/share/common-licenses/*"):
    parts = []
    for path in sorted(glob.glob(pattern)):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                parts.append(f.read())
        except (IsADirectoryError, PermissionError):
            continue
    text = "\n".join(parts)
    if not text:
        raise RuntimeError(f"no plain text found at {pattern}")
    return text.encode("utf-8")


class Mixture:
    """Yields training sequences of `seq_len` + 1 byte tokens (bos first) and
    a loss mask. A fraction `recall_frac` of sequences are packed recall
    examples; the rest are random windows of the plain-text corpus."""

    def __init__(self, seq_len, n_pairs, n_queries, recall_frac, seed, bos_id=256,
                 corpus=None, recall_only_loss=False, key_len=3, value_len=3, pack=True):
        self.key_len, self.value_len = key_len, value_len
        self.pack = pack  # False: one recall example per sequence, padded with newlines
        self.seq_len = seq_len
        self.n_pairs = n_pairs
        self.n_queries = n_queries
        self.recall_frac = recall_frac
        self.rng = random.Random(seed)
        self.bos = bos_id
        self.corpus = corpus if corpus is not None else (plain_text_corpus() if recall_frac < 1 else b"")
        self.recall_only_loss = recall_only_loss

    def _recall_seq(self):
        ids, mask = [self.bos], [0.0]
        while len(ids) < self.seq_len + 1:
            pairs = self.n_pairs if isinstance(self.n_pairs, int) else self.rng.randint(*self.n_pairs)
            text, spans = recall_example(self.rng, pairs, self.n_queries, self.key_len,
                                         self.value_len)
            b = text.encode()
            m = [0.0 if self.recall_only_loss else 1.0] * len(b)
            for s, e in spans:
                for i in range(s, e):
                    m[i] = 1.0
            # mask marks the target token; the loss at position p predicts p+1
            ids.extend(b)
            mask.extend(m)
            if not self.pack:
                pad = self.seq_len + 1 - len(ids)
                ids.extend([ord("\n")] * max(0, pad))
                mask.extend([0.0] * max(0, pad))
        return ids[:self.seq_len + 1], mask[:self.seq_len + 1]

    def _text_seq(self):
        start = self.rng.randrange(0, len(self.corpus) - self.seq_len)
        ids = [self.bos] + list(self.corpus[start:start + self.seq_len])
        return ids, [0.0] + [1.0] * self.seq_len

    def batch(self, batch_size):
        xs, ms = [], []
        for _ in range(batch_size):
            ids, m = self._recall_seq() if self.rng.random() < self.recall_frac else self._text_seq()
            xs.append(ids)
            ms.append(m)
        return torch.tensor(xs), torch.tensor(ms)


def recall_eval_set(n_examples, n_pairs, n_queries, seed, bos_id=256, key_len=3, value_len=3):
    """Held-out examples, one per sequence: (tokens [N, T], spans)."""
    rng = random.Random(10_000 + seed)
    rows, spans = [], []
    for _ in range(n_examples):
        text, sp = recall_example(rng, n_pairs, n_queries, key_len, value_len)
        rows.append([bos_id] + list(text.encode()))
        spans.append([(s + 1, e + 1) for s, e in sp])  # +1: bos
    T = max(len(r) for r in rows)
    toks = torch.full((n_examples, T), ord("\n"))
    for i, r in enumerate(rows):
        toks[i, :len(r)] = torch.tensor(r)
    return toks, spans
