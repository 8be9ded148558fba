"""mcserve-bench-serving against a real server: a mixed run (one-shot
requests and two-turn sessions at a Poisson rate) where every request succeeds
with exactly its output length and the sessions are deleted after; then a
burst above capacity (one running, one waiting) where every request still ends
with a status: served, or refused with RESOURCE_EXHAUSTED, none lost or hung.

  /usr/bin/python3 tests/bench/serving_bench_test.py --server BIN --cli BIN --bench BIN --model DIR
"""
import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "support"))
from checks import Checks, start_mcserve, wait_for  # noqa: E402


def serve(args, tmp, flags):
    log = os.path.join(tmp, f"server-{len(glob.glob(os.path.join(tmp, 'server-*.log')))}.log")
    proc, port = start_mcserve(args.server, [f"--model={args.model}", "--metrics_listen="] + flags, log)
    wait_for("the server", lambda: subprocess.run(
        [args.cli, f"--addr=127.0.0.1:{port}", "health"], capture_output=True).returncode == 0, timeout=60)
    return proc, port


def bench(args, tmp, port, flags):
    out = os.path.join(tmp, f"bench-{port}.json")
    r = subprocess.run([args.bench, f"--addr=127.0.0.1:{port}", f"--json={out}", "--progress=false"] + flags,
                       capture_output=True, text=True, timeout=240)
    print("\n".join("    " + line for line in r.stdout.splitlines()))
    return r, (json.load(open(out)) if r.returncode == 0 else {})


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60)


def main():
    ap = argparse.ArgumentParser()
    for flag in ("--server", "--cli", "--bench", "--model"):
        ap.add_argument(flag, required=True)
    args = ap.parse_args()
    checks = Checks()
    tmp = tempfile.mkdtemp(prefix="mcserve_bench_")

    proc, port = serve(args, tmp, [])
    try:
        r, got = bench(args, tmp, port, ["--conversations=16", "--request_rate=20", "--session_share=0.5",
                                          "--turns=2", "--prompt_tokens=40", "--output_tokens=8", "--seed=3"])
        checks.check(r.returncode == 0, f"a mixed run: exit 0 {r.stderr[-300:]}")
        n = got.get("requests", 0)
        checks.check(16 < n < 32 and got.get("succeeded") == n and got.get("failures") == {},
                     f"a mixed run: {n} requests (one-shot and two-turn), all succeeded: {got.get('failures')}")
        checks.check(got.get("output_tokens") == 8 * n, f"each request made exactly 8 tokens ({got.get('output_tokens')})")
        ttft, itl = got.get("ttft_ms", {}), got.get("itl_ms", {})
        checks.check(ttft.get("count") == n and 0 < ttft.get("p50", 0) <= ttft.get("p99", 0) and
                     itl.get("count", 0) > 0 and got.get("output_tokens_per_s", 0) > 0,
                     f"latencies measured: TTFT {ttft}, ITL count {itl.get('count')}")
        listed = subprocess.run([args.cli, f"--addr=127.0.0.1:{port}", "session", "list"],
                                capture_output=True, text=True)
        checks.check(listed.returncode == 0 and listed.stdout.strip() == "",
                     f"the bench's sessions are deleted: {listed.stdout.strip()!r}")
    finally:
        checks.check(stop(proc) == 0, "SIGTERM: exit 0")

    proc, port = serve(args, tmp, ["--max_running=1", "--max_waiting=1"])
    try:
        r, got = bench(args, tmp, port, ["--conversations=20", "--request_rate=inf", "--prompt_tokens=16",
                                          "--output_tokens=32", "--seed=4"])
        fails = got.get("failures", {})
        checks.check(r.returncode == 0 and got.get("requests") == 20 and
                     got.get("succeeded", 0) + sum(fails.values()) == 20,
                     f"a burst above capacity: every request ended with a status ({got.get('succeeded')} served, {fails})")
        checks.check(got.get("succeeded", 0) >= 1 and set(fails) == {"RESOURCE_EXHAUSTED"} and fails["RESOURCE_EXHAUSTED"] >= 1,
                     f"above capacity: the rest are refused with RESOURCE_EXHAUSTED ({fails})")
    finally:
        checks.check(stop(proc) == 0, "SIGTERM: exit 0")
    return checks.finish(tmp)


if __name__ == "__main__":
    sys.exit(main())
