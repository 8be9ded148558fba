"""The recall table: how much of the recall gap between a plain RNN and
attention does Memory Caching close?

  /usr/bin/python3 -m mcref.recall_table      # writes docs/recall-table.md

Trains small models of equal width on the pure recall task (one example per
sequence, loss on the queried values only) with aggregation none, residual,
grm, soup, ssc (k = 2 and 4), plus a softmax-attention model of the same
width, each over several seeds, and evaluates each at several difficulties
(facts per example). Runs go to --jobs worker processes of one thread each.
The defaults are sized for about an hour on 2 CPU cores.
"""
import argparse
import json
import multiprocessing
import os
import platform
import shlex
import statistics
import sys
import time

import torch

from . import train

DEFAULT_OUT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "docs",
                                           "recall-table.md"))

MODELS = [
    ("none", dict(arch="mc", aggregation="none")),
    ("residual", dict(arch="mc", aggregation="residual")),
    ("grm", dict(arch="mc", aggregation="grm")),
    ("soup", dict(arch="mc", aggregation="soup")),
    ("ssc k=2", dict(arch="mc", aggregation="ssc", top_k=2)),
    ("ssc k=4", dict(arch="mc", aggregation="ssc", top_k=4)),
    ("attention", dict(arch="attention")),
    # Deep (MLP) memory, mc-model.md section 9: same heads, E*d hidden units.
    ("deep none", dict(arch="mc", aggregation="none", memory="mlp")),
    ("deep grm", dict(arch="mc", aggregation="grm", memory="mlp")),
    ("deep soup", dict(arch="mc", aggregation="soup", memory="mlp")),
    ("deep ssc k=2", dict(arch="mc", aggregation="ssc", top_k=2, memory="mlp")),
]


# Set for the worker processes (read when they load OpenBLAS).
WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1"}


def run_args(base, overrides, seed):
    """mcref.train's arguments for one run: its defaults, then the table's
    shared settings, then the model's own."""
    args = train.build_parser().parse_args([])
    for k, v in vars(base).items():
        if hasattr(args, k):
            setattr(args, k, v)
    for k, v in overrides.items():
        setattr(args, k, v)
    args.seed = seed
    args.threads = 1
    args.quiet = True
    args.out = None
    args.ckpt = None
    return args


def pair_range(n_pairs):
    """(lo, hi) facts per example from --train_pairs' N or (LO, HI)."""
    return (n_pairs, n_pairs) if isinstance(n_pairs, int) else n_pairs


# Settings that do not change a run's result (where it goes, how many run
# at once, which other rows and seeds are in the table).
NOT_IN_KEY = ("out", "jobs", "models", "seeds", "cache")


def cache_key(name, seed, base):
    """Identifies one run's result: the model, the seed and every setting
    that changes what it trains or how it is scored. Runs are reproducible
    (the same key gives the same numbers in any process), so a result can be
    reused."""
    settings = {k: v for k, v in sorted(vars(base).items()) if k not in NOT_IN_KEY}
    return json.dumps({"model": name, "seed": seed, **settings}, sort_keys=True, default=str)


def load_cache(path):
    """Results of earlier runs: {key: (accs, by_query)} from a JSON-lines file."""
    out = {}
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                out[r["key"]] = ({int(d): a for d, a in r["accs"].items()}, r["by_query"])
    return out


def run_one(job):
    """Trains one (model, seed) and returns its accuracy at each difficulty
    and by query position at the hardest one (worker process entry)."""
    name, overrides, seed, base = job
    t0 = time.time()
    args = run_args(base, overrides, seed)
    model, _ = train.train(args)
    accs, by_query = {}, []
    for d in base.diffs:
        accs[d] = train.recall_accuracy(model, d, base.n_queries, base.eval_examples, args.chunk,
                                        seed=100 + seed, key_len=base.key_len,
                                        value_len=base.value_len,
                                        per_query=by_query if d == base.diffs[-1] else None)
    return name, seed, accs, by_query, time.time() - t0


def parse_cli(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--difficulties", default="4,8,16",
                    help="facts per example at evaluation")
    ap.add_argument("--train_pairs", dest="n_pairs", type=train.parse_pairs, default=(2, 4),
                    help="facts per training example: N or LO-HI")
    ap.add_argument("--jobs", type=int, default=2, help="parallel runs (one thread each)")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--key_len", type=int, default=1)
    ap.add_argument("--value_len", type=int, default=1)
    ap.add_argument("--kv_sep", default="",
                    help='key-value separator ("": "a4 b7 ? b7", the one-back form)')
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq_len", type=int, default=0,
                    help="training sequence length (0: fits the hardest example)")
    ap.add_argument("--d_model", type=int, default=64)
    ap.add_argument("--n_layers", type=int, default=2)
    ap.add_argument("--n_heads", type=int, default=2)
    ap.add_argument("--head_dim", type=int, default=16)
    ap.add_argument("--d_ff", type=int, default=192)
    ap.add_argument("--segment_length", type=int, default=16)
    ap.add_argument("--expansion", type=int, default=4, help="deep rows: hidden width E*d")
    ap.add_argument("--mem_chunk", type=int, default=1,
                    help="deep rows: tokens per memory write (divides --segment_length)")
    ap.add_argument("--lr_max", type=float, default=0.3, help="deep rows: largest write step")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight_decay", type=float, default=0.0)
    ap.add_argument("--schedule", default="constant", choices=("cosine", "constant"))
    ap.add_argument("--models", default=",".join(name for name, _ in MODELS))
    ap.add_argument("--eval_examples", type=int, default=128)
    ap.add_argument("--cache", default="",
                    help="JSON-lines file of finished runs: read to skip them, appended to "
                         "as runs finish (a table cut short resumes where it stopped)")
    base = ap.parse_args(argv)
    base.diffs = [int(x) for x in base.difficulties.split(",")]
    base.n_queries = 4
    base.recall_frac = 1.0
    base.recall_only_loss = True
    base.no_packing = True
    if base.seq_len <= 0:
        fact = base.key_len + len(base.kv_sep) + base.value_len + 1
        base.seq_len = 8 + fact * (pair_range(base.n_pairs)[1] + base.n_queries)
    return base


def render(base, rows, elapsed):
    diffs = base.diffs
    state = base.n_heads * base.head_dim * base.head_dim
    pairs = "{}-{}".format(*pair_range(base.n_pairs))
    lines = [
        "| model | " + " | ".join(f"{d} facts" for d in diffs)
        + f" | by query at {diffs[-1]} facts |",
        "|---|" + "---|" * (len(diffs) + 1),
    ]
    for name, accs, by_query in rows:
        cells = [f"{statistics.mean(a):.2f} ({min(a):.2f}-{max(a):.2f})" for a in accs.values()]
        bq = " ".join(f"{statistics.mean(q):.2f}" for q in zip(*by_query))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {bq} |")
    head = [
        "# The recall table",
        "",
        "Generated by `mcref.recall_table`; what it shows: [recall.md](recall.md).",
        "",
        f"Command: `/usr/bin/python3 -m mcref.recall_table {shlex.join(sys.argv[1:])}` "
        f"(from reference/), {time.strftime('%Y-%m-%d')}, {platform.machine()} "
        f"{os.cpu_count()} cores, torch {torch.__version__}, {base.jobs} jobs, "
        f"{elapsed / 60:.0f} min.",
        "",
        f"Task: multi-query associative recall (reference/mcref/data.py), {base.key_len}-letter "
        f"keys, {base.value_len}-digit values, separator \"{base.kv_sep}\" (chance: "
        f"{10.0 ** -base.value_len:g}); accuracy = fraction of queried values predicted exactly, "
        f"{base.eval_examples} held-out examples x {base.n_queries} queries, mean (min-max) over "
        f"{base.seeds} seeds; by query = accuracy of the 1st..{base.n_queries}th query (flat "
        f"when the model recalls, rising when it only eliminates values already asked for). "
        f"Models: d_model {base.d_model}, {base.n_layers} layers, {base.n_heads} heads of "
        f"{base.head_dim} (state {state} floats per layer), delta rule with scalar decay, "
        f"segments of {base.segment_length} tokens; deep rows: an MLP memory per head "
        f"(expansion {base.expansion}: {2 * base.expansion * base.head_dim * base.head_dim} "
        f"floats per head, written every {base.mem_chunk} tokens, lr_max {base.lr_max:g}, "
        f"momentum, no clip). Training: {base.steps} steps of "
        f"{base.batch} x {base.seq_len} tokens, one example of {pairs} facts per "
        f"sequence, AdamW lr {base.lr:g} ({base.schedule} after {train.build_parser().get_default('warmup')} warmup steps), weight "
        f"decay {base.weight_decay:g}.",
        "",
    ]
    return "\n".join(head + lines) + "\n"


def main():
    base = parse_cli()
    wanted = base.models.split(",")
    unknown = [w for w in wanted if w not in dict(MODELS)]
    if unknown:
        sys.exit(f"unknown model(s) {unknown}; known: {[n for n, _ in MODELS]}")
    cached = load_cache(base.cache)
    results = {}
    jobs = []
    for name, ov in MODELS:
        for seed in range(base.seeds):
            if name not in wanted:
                continue
            key = cache_key(name, seed, base)
            if key in cached:
                results[(name, seed)] = cached[key]
            else:
                jobs.append((name, ov, seed, base))
    if results:
        print(f"{len(results)} runs from {base.cache}, {len(jobs)} to train", flush=True)
    # Seed by seed, so a run cut short still has whole rows of the first
    # seeds; within a seed the attention baseline first (the cheapest run, and
    # the first sign of whether the budget is enough to learn binding at all).
    jobs.sort(key=lambda j: (j[2], j[1]["arch"] != "attention"))
    t0 = time.time()
    # One thread per run for BLAS too: torch.set_num_threads does not reach
    # Debian's pthread OpenBLAS, which would use every core, and its thread
    # count changes how some products (the 258-wide lm_head) round.
    os.environ.update(WORKER_ENV)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(base.jobs) as pool:
        for name, seed, accs, by_query, secs in pool.imap_unordered(run_one, jobs):
            results[(name, seed)] = (accs, by_query)
            if base.cache:
                with open(base.cache, "a") as f:
                    f.write(json.dumps({"key": cache_key(name, seed, base), "accs": accs,
                                        "by_query": by_query}) + "\n")
            print(f"[{time.time() - t0:6.0f}s] {name} seed {seed} ({secs:.0f}s): "
                  + " ".join(f"{d}:{a:.2f}" for d, a in accs.items())
                  + "  by query " + " ".join(f"{q:.2f}" for q in by_query), flush=True)
    rows = []
    for name, _ in MODELS:
        if name not in wanted:
            continue
        runs = [results[(name, s)] for s in range(base.seeds)]
        accs = {d: [r[0][d] for r in runs] for d in base.diffs}
        rows.append((name, accs, [r[1] for r in runs]))
    text = render(base, rows, time.time() - t0)
    with open(base.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
