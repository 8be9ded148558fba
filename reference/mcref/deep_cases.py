"""Writes parity cases of the deep memory (docs/mc-model.md section 9) for
the server's tests, in parity_cases' format:

  /usr/bin/python3 -m mcref.deep_cases --out DIR [--check]

For every aggregation x boundary x chunk (1, 3) x setting, a random deep
model (config.json + model.safetensors) and the reference's logits at every
position of a session fed in several requests whose boundaries fall inside
chunks. Settings:
  plain       decay none,   no momentum, grad_clip 0
  decay_mom   decay scalar, momentum,    grad_clip 0
  mom_clip    decay none,   momentum,    grad_clip CLIP (clips)
  decay_clip  decay scalar, no momentum, grad_clip CLIP (clips)
Case DIR/deep_<aggregation>_<boundary>_b<chunk>_<setting>/, plus
DIR/deep_grm_continue_b2_decay_mom_e4 (expansion 4) and DIR/deep_ssc_ties
(periodic tokens: equal checkpoint summaries at layer 0, so ssc's tie rule
decides). DIR/cases.txt lists the case names, one per line.

Each case holds expected.safetensors:
  tokens  F32 [T]   the session's tokens, bos first
  splits  F32 [R]   how many tokens each request feeds (sums to T)
  modes   F32 [R]   1: the request is prefilled in parallel, 0: fed token by token
  logits  F32 [T,V] next-token logits after each token (float32 checkpoints)
The logits come from the recurrent form in float64 on the float32 weights.
Every case is checked to be lively (the writes change the reads, the clip
clips); --check also reports how far a float32 run drifts from them and how
much the gate logits vary.
"""
import argparse
import copy
import itertools
import os
import time

import torch

from . import deep_memory, safetensors_io
from .config import AGGREGATIONS, GATED, MCConfig
from .export import export
from .init import init_random
from .model import MCLM

SEGMENT = 6
TOP_K = 2
LR_MAX = 0.3
CLIP = 1.0
# Requests of 7, 4, 11, 3 and 8 tokens (33, five checkpoints): with chunks of
# 3, every request boundary but the last falls inside a chunk.
SPLITS = [7, 4, 11, 3, 8]
MODES = [1, 0, 1, 0, 1]
CHUNKS = (1, 3)
SETTINGS = {                     # decay, momentum, grad_clip
    "plain": ("none", False, 0.0),
    "decay_mom": ("scalar", True, 0.0),
    "mom_clip": ("none", True, CLIP),
    "decay_clip": ("scalar", False, CLIP),
}


def case_name(agg, boundary, chunk, setting, expansion=2):
    tail = f"_e{expansion}" if expansion != 2 else ""
    return f"deep_{agg}_{boundary}_b{chunk}_{setting}{tail}"


def config(agg, boundary, chunk, setting, expansion=2):
    decay, momentum, clip = SETTINGS[setting]
    return MCConfig(vocab_size=262, d_model=32, n_layers=2, n_heads=2, head_dim=8, d_ff=48,
                    rule="delta", decay=decay, aggregation=agg, segment_length=SEGMENT,
                    top_k=TOP_K, boundary=boundary, memory_kind="mlp", expansion=expansion,
                    mem_chunk=chunk, lr_max=LR_MAX, momentum=momentum, grad_clip=clip)


def session_tokens(c, seed, periodic=False):
    gen = torch.Generator().manual_seed(seed + 1)
    tokens = torch.cat([torch.tensor([c.bos_id]),
                        torch.randint(0, 256, (sum(SPLITS) - 1,), generator=gen)])
    if periodic:
        # Every segment after the first repeats the same tokens, so at layer 0
        # their summaries are equal and ssc's tie rule (more recent wins) decides.
        tokens[SEGMENT:] = tokens[SEGMENT:2 * SEGMENT].repeat(len(tokens))[:len(tokens) - SEGMENT]
    return tokens


def run(model, tokens):
    with torch.no_grad():
        state = model.initial_state(1)
        logits = torch.stack([model.step(tokens[i:i + 1], state)[0] for i in range(len(tokens))])
    return logits, state


def read_change(model, state, seed):
    """Per layer, ||M_W(q) - M_W0(q)|| / ||M_W0(q) - q|| over random unit
    queries, W the last memory written (the online one, or for reset the
    last checkpoint if any): how much the writes changed the reads."""
    out = []
    g = torch.Generator().manual_seed(seed)
    for layer, st in zip(model.layers, state.layers):
        mx = layer.mixer
        q = torch.nn.functional.normalize(
            torch.randn(1, mx.c.n_heads, 8, mx.c.head_dim, generator=g, dtype=st.W1.dtype), dim=-1)
        gamma = mx.mem_ln.weight[:, None, :]
        reset = mx.c.boundary == "reset" and st.ckpt_W1
        W1, W2 = (st.ckpt_W1[-1], st.ckpt_W2[-1]) if reset else (st.W1, st.W2)
        r0 = deep_memory.mem_apply(q, mx.mem_w1[None], mx.mem_w2[None], gamma)
        r1 = deep_memory.mem_apply(q, W1, W2, gamma)
        out.append(((r1 - r0).norm() / (r0 - q).norm()).item())
    return out


def gate_spread(model, tokens):
    """The gate logits' spread: over tokens and layers, the largest value of
    the (smallest over heads) standard deviation of [z_on, z_0 ..]."""
    spreads, orig = [0.0], deep_memory._aggregate_one

    def spy(mixer, st, q, u, s_on):
        if u is not None and st.ckpt_s:
            z = torch.stack([(u * s_on).sum(-1)] + [(u * s).sum(-1) for s in st.ckpt_s], -1)
            spreads.append(mixer.c.gate_scale * z.std(-1).min().item())
        return orig(mixer, st, q, u, s_on)
    deep_memory._aggregate_one = spy
    try:
        run(model, tokens)
    finally:
        deep_memory._aggregate_one = orig
    return max(spreads)


def make_case(out_dir, c, seed, periodic=False, check=False):
    model = MCLM(c)
    init_random(model, seed)
    export(model, out_dir)
    tokens = session_tokens(c, seed, periodic)
    f32_model = copy.deepcopy(model) if check else None
    ref = model.double()
    logits, state = run(ref, tokens)
    safetensors_io.save({
        "tokens": tokens.float(),
        "splits": torch.tensor(SPLITS, dtype=torch.float32),
        "modes": torch.tensor(MODES, dtype=torch.float32),
        "logits": logits.float(),
    }, os.path.join(out_dir, "expected.safetensors"))
    name = os.path.basename(out_dir)
    changes = read_change(ref, state, seed)
    if min(changes) < 0.05:
        raise RuntimeError(f"{name}: the writes barely change the reads ({changes})")
    writes = sum(st.n_writes for st in state.layers) * 2 * c.n_heads
    clipped = sum(st.n_clipped for st in state.layers)
    if c.grad_clip > 0 and not 0 < clipped < writes:
        raise RuntimeError(f"{name}: the clip scaled {clipped} of {writes} gradients")
    stats = dict(read_change=min(changes), clipped=clipped / writes)
    if check:
        f32, _ = run(f32_model, tokens)
        stats["f32_rel"] = ((f32.double() - logits).abs().max() / logits.abs().max()).item()
        if c.aggregation in GATED:
            stats["gate_std"] = gate_spread(ref, tokens)
    return stats


def all_cases():
    """(name, config, periodic) for every case, in cases.txt order."""
    out = [(case_name(*k), config(*k), False)
           for k in itertools.product(AGGREGATIONS, ("continue", "reset"), CHUNKS, SETTINGS)]
    out.append((case_name("grm", "continue", 2, "decay_mom", 4),
                config("grm", "continue", 2, "decay_mom", 4), False))
    out.append(("deep_ssc_ties", config("ssc", "continue", 1, "decay_mom"), True))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=4321)
    ap.add_argument("--check", action="store_true",
                    help="also run float32 and report its drift and the gate logits' spread")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    cases = all_cases()
    stats = {}
    for i, (name, c, periodic) in enumerate(cases):
        stats[name] = make_case(os.path.join(args.out, name), c, args.seed + 7 * i, periodic,
                                args.check)
    with open(os.path.join(args.out, "cases.txt"), "w") as f:
        f.write("".join(name + "\n" for name, _, _ in cases))
    print(f"wrote {len(cases)} deep parity cases to {args.out} in {time.time() - t0:.1f} s")
    if args.check:
        for key in ("f32_rel", "read_change", "gate_std", "clipped"):
            vals = sorted((s[key], n) for n, s in stats.items() if key in s and s[key] > 0)
            if vals:
                print(f"{key}: min {vals[0][0]:.3g} ({vals[0][1]}), median "
                      f"{vals[len(vals) // 2][0]:.3g}, max {vals[-1][0]:.3g} ({vals[-1][1]})")


if __name__ == "__main__":
    main()
