#!/usr/bin/python3
"""CPU benchmark: the C++ model (mcserve-model-bench) against the Python
reference (reference/mcref) on the same model directory, prefill and decode
at batch 1 and 16, measured in one run and reported as ratios.

  /usr/bin/python3 bench/cpu_compare.py [--model models/default]
      [--bench build/bench/mcserve-model-bench] [--markdown]
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "reference"))

import torch  # noqa: E402

from mcref import export  # noqa: E402


def python_bench(model_dir, prefill_tokens, context, batches, steps, repeats):
    m = export.load(model_dir).eval()
    gen = torch.Generator().manual_seed(1)
    out = []
    with torch.no_grad():
        best = 1e30
        for _ in range(repeats):
            toks = torch.randint(0, 256, (1, prefill_tokens), generator=gen)
            t0 = time.perf_counter()
            m.forward_chunked(toks)
            best = min(best, time.perf_counter() - t0)
        out.append({"phase": "prefill", "batch": 1, "tokens": prefill_tokens, "seconds": best,
                    "tok_s": prefill_tokens / best})
        for b in batches:
            st = m.initial_state(b)
            if context:
                m.forward_chunked(torch.randint(0, 256, (b, context), generator=gen), st)
            m.step(torch.zeros(b, dtype=torch.long), st)  # warm-up
            t0 = time.perf_counter()
            for s in range(steps):
                m.step(torch.full((b,), s % 256, dtype=torch.long), st)
            sec = time.perf_counter() - t0
            out.append({"phase": "decode", "batch": b, "context": context, "steps": steps,
                        "seconds": sec, "tok_s": b * steps / sec})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "models/default"))
    ap.add_argument("--bench", default=os.path.join(ROOT, "build/bench/mcserve-model-bench"))
    ap.add_argument("--prefill_tokens", type=int, default=1024)
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--decode_steps", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    batches = [int(x) for x in a.batches.split(",")]
    cmd = [a.bench, f"--model={a.model}", f"--prefill_tokens={a.prefill_tokens}",
           f"--context={a.context}", f"--batches={a.batches}",
           f"--decode_steps={a.decode_steps}", f"--repeats={a.repeats}", f"--threads={a.threads}"]
    lines = [json.loads(line) for line in subprocess.run(cmd, check=True, capture_output=True,
                                                         text=True).stdout.splitlines()]
    hw = next((x for x in lines if x["phase"] == "hardware"), {})
    cpp = [x for x in lines if x["phase"] != "hardware"]  # the machine's limits come first
    py = python_bench(a.model, a.prefill_tokens, a.context, batches, a.decode_steps, a.repeats)
    rows = []
    for c, p in zip(cpp, py):
        assert (c["phase"], c["batch"]) == (p["phase"], p["batch"])
        rows.append((c["phase"], c["batch"], c["tok_s"], p["tok_s"], c["tok_s"] / p["tok_s"],
                     c.get("of_floor", float("nan"))))
    if a.markdown:
        print(f"Command: `/usr/bin/python3 bench/cpu_compare.py {' '.join(sys.argv[1:])}`, "
              f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {a.threads} threads, "
              f"prefill {a.prefill_tokens} tokens, decode with {a.context} tokens of context; "
              f"measured copy {hw.get('copy_GB_s', float('nan')):.1f} GB/s, "
              f"GEMM {hw.get('gemm_GFLOP_s', float('nan')):.0f} GFLOP/s.\n")
        print("| phase | batch | C++ tok/s | Python reference tok/s | C++ / Python | C++ of its floor |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r[0]} | {r[1]} | {r[2]:.0f} | {r[3]:.0f} | {r[4]:.1f}x | {r[5]:.0%} |")
    else:
        for r in rows:
            print(json.dumps(dict(zip(("phase", "batch", "cpp_tok_s", "py_tok_s", "ratio", "of_floor"), r))))


if __name__ == "__main__":
    main()
