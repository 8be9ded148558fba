"""The soak (soak.py) and its must-fail control, as CI runs them: the same
seeded traffic twice, first against a plain server, which must pass every
check, then against one started with --testonly_leak_bytes_per_request=32768
(32 KiB kept per Generate), which must fail exactly one check, the RSS
growth bound, while every other check still passes. A soak that could not
see that leak would not see a real one.

  /usr/bin/python3 tests/soak/soak_test.py --server BIN --model DIR [--ops 3000]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "support"))
from checks import Checks  # noqa: E402

LEAK = 32768


def soak(args, out, leak):
    cmd = [sys.executable, os.path.join(HERE, "soak.py"), f"--server={args.server}", f"--model={args.model}",
           f"--ops={args.ops}", f"--json={out}"] + ([f"--leak_bytes={leak}"] if leak else [])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    print("\n".join("    " + line for line in r.stdout.splitlines()))
    return r.returncode, (json.load(open(out)) if os.path.exists(out) else {})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--ops", type=int, default=3000)
    args = ap.parse_args()
    checks = Checks()
    tmp = tempfile.mkdtemp(prefix="mcserve_soak_test_")

    print("== the soak ==")
    rc, plain = soak(args, os.path.join(tmp, "plain.json"), 0)
    checks.check(rc == 0 and plain.get("failed") == [],
                 f"the soak passes: RSS growth {plain.get('growth_mb', float('nan')):.1f} MB, failed {plain.get('failed')}")
    print(f"\n== the control: {LEAK} bytes leaked per Generate ==")
    rc, leaky = soak(args, os.path.join(tmp, "leaky.json"), LEAK)
    failed = leaky.get("failed", [])
    checks.check(rc != 0 and len(failed) == 1 and failed[0].startswith("RSS growth after warm-up"),
                 f"the control fails on RSS growth alone ({leaky.get('growth_mb', float('nan')):.1f} MB): {failed}")
    return checks.finish(tmp)


if __name__ == "__main__":
    sys.exit(main())
