"""The recall table: how much of the recall gap between a plain RNN and
attention does Memory Caching close?

  /usr/bin/python3 -m mcref.recall_table --out docs/recall.md

Trains small models of equal width on the pure recall task (loss on the
queried values only) with aggregation none, residual, grm, soup, ssc (k = 2
and 4), plus a softmax-attention model of the same width, each over several
seeds, and evaluates each at several difficulties (facts per example). The
defaults are sized for about an hour on 2 CPU cores.
"""
import argparse
import os
import platform
import statistics
import sys
import time

import torch

from . import train

MODELS = [
    ("none", dict(arch="mc", aggregation="none")),
    ("residual", dict(arch="mc", aggregation="residual")),
    ("grm", dict(arch="mc", aggregation="grm")),
    ("soup", dict(arch="mc", aggregation="soup")),
    ("ssc k=2", dict(arch="mc", aggregation="ssc", top_k=2)),
    ("ssc k=4", dict(arch="mc", aggregation="ssc", top_k=4)),
    ("attention", dict(arch="attention")),
]


def run_args(base, overrides, seed):
    args = train.build_parser().parse_args([])
    for k, v in vars(base).items():
        if hasattr(args, k):
            setattr(args, k, v)
    for k, v in overrides.items():
        setattr(args, k, v)
    args.seed = seed
    args.quiet = True
    args.out = None
    args.ckpt = None
    return args


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/recall.md")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--difficulties", default="4,8,16,24")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--key_len", type=int, default=1)
    ap.add_argument("--value_len", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq_len", type=int, default=256)
    ap.add_argument("--d_model", type=int, default=64)
    ap.add_argument("--n_layers", type=int, default=2)
    ap.add_argument("--n_heads", type=int, default=2)
    ap.add_argument("--head_dim", type=int, default=16)
    ap.add_argument("--d_ff", type=int, default=192)
    ap.add_argument("--segment_length", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--models", default=",".join(name for name, _ in MODELS))
    ap.add_argument("--eval_examples", type=int, default=128)
    base = ap.parse_args()
    diffs = [int(x) for x in base.difficulties.split(",")]
    wanted = base.models.split(",")
    base.n_pairs = (2, max(diffs))
    base.n_queries = 4
    base.recall_frac = 1.0
    base.recall_only_loss = True
    t0 = time.time()
    rows = []
    for name, overrides in MODELS:
        if name not in wanted:
            continue
        accs = {d: [] for d in diffs}
        for seed in range(base.seeds):
            args = run_args(base, overrides, seed)
            model, _ = train.train(args)
            for d in diffs:
                accs[d].append(train.recall_accuracy(model, d, 4, base.eval_examples, args.chunk,
                                                     seed=100 + seed, key_len=base.key_len,
                                                     value_len=base.value_len))
            print(f"[{time.time() - t0:6.0f}s] {name} seed {seed}: "
                  + " ".join(f"{d}:{accs[d][-1]:.2f}" for d in diffs), flush=True)
        rows.append((name, accs))
    elapsed = time.time() - t0
    state = base.n_heads * base.head_dim * base.head_dim
    lines = [
        "# Recall: MC against a plain RNN and attention",
        "",
        f"Command: `/usr/bin/python3 -m mcref.recall_table {' '.join(sys.argv[1:])}` "
        f"(from reference/), {time.strftime('%Y-%m-%d')}, {platform.machine()} "
        f"{os.cpu_count()} cores, torch {torch.__version__}, {elapsed / 60:.0f} min.",
        "",
        f"Task: multi-query associative recall (reference/mcref/data.py) with {base.key_len}-letter "
        f"keys and {base.value_len}-digit values (chance: {10.0 ** -base.value_len:g}); accuracy = "
        f"fraction of queried values predicted exactly, {base.eval_examples} held-out examples "
        f"x 4 queries, mean (min-max) over {base.seeds} seeds. Models: d_model {base.d_model}, "
        f"{base.n_layers} layers, {base.n_heads} heads of {base.head_dim} (state "
        f"{state} floats per layer), delta rule with scalar decay, segments of "
        f"{base.segment_length} tokens; {base.steps} steps of {base.batch} x {base.seq_len} "
        f"tokens, trained on 2-{max(diffs)} facts per example.",
        "",
        "| model | " + " | ".join(f"{d} facts" for d in diffs) + " |",
        "|---|" + "---|" * len(diffs),
    ]
    for name, accs in rows:
        cells = [f"{statistics.mean(a):.2f} ({min(a):.2f}-{max(a):.2f})" for a in accs.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    with open(base.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
