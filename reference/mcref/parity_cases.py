"""Writes parity cases for the server's tests: for every rule x decay x
aggregation x boundary, a random model (config.json + model.safetensors) and
the reference's logits at every position of a session fed in several
requests.

  /usr/bin/python3 -m mcref.parity_cases --out DIR

Plus DIR/ssc_ties: ssc on a periodic token stream whose checkpoint
summaries tie exactly, to pin the tie rule.

Each case DIR/<rule>_<decay|nodecay>_<aggregation>_<boundary>/ holds the
model and expected.safetensors:
  tokens  F32 [T]   the session's tokens, bos first
  splits  F32 [R]   how many tokens each request feeds (sums to T)
  modes   F32 [R]   1: the request is prefilled in parallel, 0: fed token by token
  logits  F32 [T,V] next-token logits after each token (float32 checkpoints)
(Small integers are stored as F32, exactly, so the server's weight reader
reads the file.)
The reference runs its plain recurrent form in float64 on the float32 weights.
"""
import argparse
import itertools
import os

import torch

from . import safetensors_io
from .config import AGGREGATIONS, MCConfig
from .export import export
from .init import init_random
from .model import MCLM

SEGMENT = 5
TOP_K = 2
# Prefill 7 (crosses a boundary), decode 5, prefill 12, decode 3, prefill 6:
# 33 tokens, six checkpoints, so ssc's top-2 has real choices.
SPLITS = [7, 5, 12, 3, 6]
MODES = [1, 0, 1, 0, 1]


def case_name(rule, decay, agg, boundary):
    return f"{rule}_{'decay' if decay == 'scalar' else 'nodecay'}_{agg}_{boundary}"


def make_case(out_dir, rule, decay, agg, boundary, seed, periodic=False):
    c = MCConfig(vocab_size=262, d_model=32, n_layers=2, n_heads=2, head_dim=8, d_ff=48,
                 rule=rule, decay=decay, aggregation=agg, segment_length=SEGMENT,
                 top_k=TOP_K, boundary=boundary)
    model = MCLM(c)
    init_random(model, seed)
    export(model, out_dir)
    gen = torch.Generator().manual_seed(seed + 1)
    tokens = torch.cat([torch.tensor([c.bos_id]),
                        torch.randint(0, 256, (sum(SPLITS) - 1,), generator=gen)])
    if periodic:
        # Every segment after the first repeats the same tokens, so at layer 0
        # their summaries are equal and ssc's tie rule (more recent wins) decides.
        tokens[SEGMENT:] = tokens[SEGMENT:2 * SEGMENT].repeat(len(tokens))[:len(tokens) - SEGMENT]
    ref = model.double()
    with torch.no_grad():
        state = ref.initial_state(1)
        logits = torch.stack([ref.step(tokens[i:i + 1], state)[0] for i in range(len(tokens))])
    safetensors_io.save({
        "tokens": tokens.float(),
        "splits": torch.tensor(SPLITS, dtype=torch.float32),
        "modes": torch.tensor(MODES, dtype=torch.float32),
        "logits": logits.float(),
    }, os.path.join(out_dir, "expected.safetensors"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    torch.set_num_threads(1)
    combos = list(itertools.product(("hebbian", "delta"), ("none", "scalar"), AGGREGATIONS,
                                    ("continue", "reset")))
    for i, (rule, decay, agg, boundary) in enumerate(combos):
        name = case_name(rule, decay, agg, boundary)
        make_case(os.path.join(args.out, name), rule, decay, agg, boundary, args.seed + 7 * i)
    make_case(os.path.join(args.out, "ssc_ties"), "hebbian", "none", "ssc", "continue",
              args.seed - 1, periodic=True)
    print(f"wrote {len(combos) + 1} parity cases to {args.out}")


if __name__ == "__main__":
    main()
