"""Latency against request rate: starts mcserve on a model, runs
mcserve-bench-serving at each rate (same seeded workload), and plots TTFT and
ITL (p50 and p99) and the achieved throughput against the offered rate with
Debian's python3-matplotlib. Writes the plot and a markdown table.

  /usr/bin/python3 bench/serving/latency_vs_rate.py --build build --rates 1,2,4,8,inf \
      --conversations 120 --out docs/serving-latency.png
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--model", default="models/default")
    ap.add_argument("--rates", default="1,2,4,8,inf")
    ap.add_argument("--conversations", type=int, default=120)
    ap.add_argument("--bench_args", default="--session_share=0.5 --turns=3 --prompt_tokens=256 "
                                            "--output_tokens=64 --range_ratio=0.5 --seed=1")
    ap.add_argument("--server_args", default="")
    ap.add_argument("--out", default="docs/serving-latency.png")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="mcserve_rate_")
    port = free_port()
    server = subprocess.Popen([os.path.join(args.build, "server/mcserve"), f"--model={args.model}",
                               f"--listen=127.0.0.1:{port}", "--metrics_listen="] + args.server_args.split(),
                              stdout=open(os.path.join(tmp, "server.log"), "w"), stderr=subprocess.STDOUT)
    cli = os.path.join(args.build, "client/mcserve-cli")
    for _ in range(600):
        if subprocess.run([cli, f"--addr=127.0.0.1:{port}", "health"], capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    rows = []
    try:
        for rate in args.rates.split(","):
            out = os.path.join(tmp, f"rate-{rate}.json")
            subprocess.run([os.path.join(args.build, "bench/mcserve-bench-serving"), f"--addr=127.0.0.1:{port}",
                            f"--conversations={args.conversations}", f"--request_rate={rate}", f"--json={out}",
                            "--progress=false"] + args.bench_args.split(), check=True, stdout=subprocess.DEVNULL)
            r = json.load(open(out))
            rows.append((rate, r))
            print(f"rate {rate}: {r['requests_per_s']:.2f} req/s, {r['output_tokens_per_s']:.0f} tok/s, "
                  f"TTFT p99 {r['ttft_ms']['p99']:.0f} ms, ITL p99 {r['itl_ms']['p99']:.1f} ms", file=sys.stderr)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)

    print("| offered rate (conv/s) | requests/s | output tok/s | TTFT p50 / p99 (ms) | ITL p50 / p99 (ms) "
          "| E2E p50 / p99 (ms) | failures |")
    print("|---|---|---|---|---|---|---|")
    for rate, r in rows:
        print(f"| {rate} | {r['requests_per_s']:.2f} | {r['output_tokens_per_s']:.0f} | "
              f"{r['ttft_ms']['p50']:.0f} / {r['ttft_ms']['p99']:.0f} | {r['itl_ms']['p50']:.1f} / "
              f"{r['itl_ms']['p99']:.1f} | {r['e2e_ms']['p50']:.0f} / {r['e2e_ms']['p99']:.0f} | "
              f"{r['failures'] or 'none'} |")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = [rate for rate, _ in rows]
    x = range(len(rows))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key, title in ((axes[0], "ttft_ms", "time to first token (ms)"),
                           (axes[1], "itl_ms", "inter-token latency (ms)")):
        ax.plot(x, [r[key]["p50"] for _, r in rows], "o-", label="p50")
        ax.plot(x, [r[key]["p99"] for _, r in rows], "s--", label="p99")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.legend()
    axes[2].plot(x, [r["output_tokens_per_s"] for _, r in rows], "o-")
    axes[2].set_title("output tokens/s")
    for ax in axes:
        ax.set_xticks(list(x))
        ax.set_xticklabels(labels)
        ax.set_xlabel("offered conversations/s")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"\nplot: {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
