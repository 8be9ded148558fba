#!/usr/bin/python3
"""What a deep (MLP) memory costs against a linear memory of the same width:
mcserve-model-bench on two random models that differ only in memory.kind
(same d_model, heads, head_dim, segments, grm), prefill tokens/s, and decode
tokens/s and bytes per session with 0, 16 and 64 checkpoints per session,
each against its floor (bytes moved / copy bandwidth, FLOPs / GEMM rate,
both measured by the bench in the same run). All rows come from one run.

  /usr/bin/python3 bench/deep_cost.py [--build build] [--batches 1,16] [--markdown]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--d_model", type=int, default=128)
    ap.add_argument("--n_heads", type=int, default=4)
    ap.add_argument("--head_dim", type=int, default=32)
    ap.add_argument("--segment_length", type=int, default=32)
    ap.add_argument("--expansion", type=int, default=4)
    ap.add_argument("--mem_chunk", type=int, default=1)
    ap.add_argument("--checkpoints", default="0,16,64")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--prefill_tokens", type=int, default=512)
    ap.add_argument("--decode_steps", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    if a.decode_steps >= a.segment_length:
        sys.exit("--decode_steps must stay inside one segment (the checkpoint count is fixed)")
    randmodel = os.path.join(a.build, "tools/mcserve-randmodel")
    bench = os.path.join(a.build, "bench/mcserve-model-bench")
    tmp = tempfile.mkdtemp(prefix="deep-cost-")
    rows, hw = [], None
    for kind in ("linear", "mlp"):
        model = os.path.join(tmp, kind)
        cmd = [randmodel, f"--out={model}", f"--d_model={a.d_model}", f"--n_heads={a.n_heads}",
               f"--head_dim={a.head_dim}", f"--segment_length={a.segment_length}",
               "--aggregation=grm", f"--memory={kind}"]
        if kind == "mlp":
            cmd += [f"--expansion={a.expansion}", f"--mem_chunk={a.mem_chunk}"]
        subprocess.run(cmd, check=True, capture_output=True)
        for i, n in enumerate(int(x) for x in a.checkpoints.split(",")):
            lines = run([bench, f"--model={model}", f"--context={n * a.segment_length}",
                         f"--prefill_tokens={a.prefill_tokens}", f"--batches={a.batches}",
                         f"--decode_steps={a.decode_steps}", f"--threads={a.threads}",
                         "--repeats=2"])
            hw = hw or next(x for x in lines if x["phase"] == "hardware")
            for x in lines:
                if x["phase"] == "prefill" and i == 0:
                    rows.append((kind, "prefill", 1, "-", "-", x["tok_s"], x["of_floor"]))
                if x["phase"] == "decode":
                    rows.append((kind, "decode", x["batch"], x["ckpts_per_session"],
                                 x["bytes_per_session"], x["tok_s"], x["of_floor"]))
    base = {(r[1], r[2], r[3]): r[5] for r in rows if r[0] == "linear"}
    if not a.markdown:
        for r in rows:
            print(json.dumps(dict(zip(("memory", "phase", "batch", "checkpoints",
                                       "bytes_per_session", "tok_s", "of_floor"), r))))
        return
    print(f"Command: `/usr/bin/python3 bench/deep_cost.py {' '.join(sys.argv[1:])}`, "
          f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {a.threads} threads; "
          f"d_model {a.d_model}, {a.n_heads} heads of {a.head_dim}, 2 layers, grm, segments of "
          f"{a.segment_length}; deep: expansion {a.expansion}, chunk {a.mem_chunk}. Measured "
          f"copy {hw['copy_GB_s']:.1f} GB/s, GEMM {hw['gemm_GFLOP_s']:.0f} GFLOP/s.\n")
    print("| memory | phase | batch | checkpoints | bytes per session | tok/s | "
          "vs linear | of floor |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = r[5] / base[(r[1], r[2], r[3])]
        size = f"{r[4] / 1024:.0f} KiB" if r[4] != "-" else "-"
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {size} | {r[5]:.0f} | {ratio:.2f}x | "
              f"{r[6]:.3f} |")


if __name__ == "__main__":
    main()
