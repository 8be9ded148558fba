"""The no-cache peer for mcserve-kernel-bench: flash-linear-attention's fused
recurrent kernel (Triton) doing one decode token per session with a float32
state, at the shapes our benchmark uses (aggregation none is the same work:
read and write the d x d state, read it with q). With --ours it reads the
benchmark's table from the same GPU run and prints ours / fla per batch.

flash-linear-attention is not a dependency and is never committed: point
--fla at a local checkout (e.g. fetched beside the repository). Needs torch
with CUDA and triton (a PyTorch CUDA install has both).

  python3 bench/fla_peer.py --fla /path/to/flash-linear-attention \
      [--ours build/kernel-bench.md] [--heads 16] [--head_dim 64] [--batches 1,8,64,256]
"""
import argparse
import inspect
import re
import sys


def parse_ours(path):
    """batch -> microseconds of aggregation none, from the benchmark table."""
    out = {}
    with open(path) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) < 8 or not cells[0].isdigit():
                continue
            m = re.match(r"([0-9.]+)", cells[7])
            if m:
                out.setdefault(int(cells[0]), float(m.group(1)))
    return out


def time_us(torch, fn, iters=100):
    for _ in range(3):
        fn(0)
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for i in range(iters):
        fn(i)
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) * 1e3 / iters


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fla", required=True, help="local flash-linear-attention checkout")
    ap.add_argument("--ours", help="mcserve-kernel-bench output of the same run")
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--head_dim", type=int, default=64)
    ap.add_argument("--batches", default="1,8,64,256")
    args = ap.parse_args()
    sys.path.insert(0, args.fla)
    import torch
    from fla.ops.simple_gla import fused_recurrent_simple_gla

    ours = parse_ours(args.ours) if args.ours else {}
    params = inspect.signature(fused_recurrent_simple_gla).parameters
    extra = {"head_first": False} if "head_first" in params else {}
    H, d = args.heads, args.head_dim
    print(f"fla fused_recurrent_simple_gla, one token, {H} heads x d={d}, float32 state")
    print("| batch | fla (us) | ours, none (us) | ours / fla |\n|---|---|---|---|")
    for B in [int(b) for b in args.batches.split(",")]:
        rot = max(1, (100 << 20) // (B * H * d * d * 4 * 2) + 1)  # rotate past L2
        states = [torch.randn(B, H, d, d, device="cuda") * 0.1 for _ in range(rot)]
        q = torch.nn.functional.normalize(torch.randn(B, 1, H, d, device="cuda"), dim=-1)
        k = torch.nn.functional.normalize(torch.randn(B, 1, H, d, device="cuda"), dim=-1)
        v = torch.randn(B, 1, H, d, device="cuda")
        g = torch.full((B, 1, H), -0.1, device="cuda")

        def step(i):
            fused_recurrent_simple_gla(q, k, v, g, scale=1.0, initial_state=states[i % rot],
                                       output_final_state=True, **extra)

        us = time_us(torch, step)
        mine = ours.get(B)
        print(f"| {B} | {us:.1f} | {mine if mine is not None else '-'} | "
              f"{(mine / us) if mine else float('nan'):.2f} |")


if __name__ == "__main__":
    main()
