"""Weight initialisation: for training, and random-but-lively weights for
parity tests (every gate and decay far from trivial).

Deep memory (section 9): the keys and queries are unit vectors, so mem_w1
~ N(0, 1) gives pre-activations k W1 ~ N(0, 1) (gelu neither linear nor
saturated), and mem_w2 ~ N(0, 1 / (E d)) gives outputs of the same order.
The LayerNorm makes the read invariant to the scale of W2, so that scale
only sets the effective write step (about theta / ||W2 column||^2): with
unit columns, theta ~ 0.1-0.5 takes about 40 % off a token's own loss in
one write without overshooting. Retention starts near 1 (shrinking W makes
the LayerNorm's input small and the memory stiff)."""
import math

import torch

from .model import MCLM


def _deep_weight(name, p, g):
    """mem_w1 [H, d, E*d] ~ N(0, 1); mem_w2 [H, E*d, d] ~ N(0, 1 / (E d))."""
    p.normal_(0.0, 1.0 if name.endswith("mem_w1") else 1.0 / math.sqrt(p.shape[-2]),
              generator=g)


def init_for_training(model: MCLM, seed: int):
    """Deep memory: mem_ln gain 1, theta = lr_max / 2, eta ~ 0.5 (moderate
    momentum), rho ~ 0.993 at start (all biases learn)."""
    g = torch.Generator().manual_seed(seed)
    deep = model.c.memory_kind == "mlp"
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            elif name.endswith("mem_w1") or name.endswith("mem_w2"):
                _deep_weight(name, p, g)
            elif name.endswith("mem_ln.weight"):
                p.fill_(1.0)
            elif name.endswith("a_proj.bias") and deep:
                p.fill_(5.0)          # rho ~ 0.993 per chunk at start
            elif name.endswith("a_proj.bias"):
                p.fill_(3.0)          # alpha ~ 0.95 at start: long memory
            elif name.endswith(".bias"):
                p.zero_()
            elif name == "embed.weight":
                p.normal_(0.0, 1.0, generator=g)
            else:
                p.normal_(0.0, 1.0 / math.sqrt(p.shape[-1]), generator=g)
            if name.endswith("o_proj.weight") or name.endswith("down_proj.weight"):
                p.mul_(1.0 / math.sqrt(2 * model.c.n_layers))


def init_random(model: MCLM, seed: int):
    """Parity-test weights: unit-scale projections, norms near 1, decays in
    (0.5, 1), write strengths in (0.2, 0.8). Deep memory: mem_ln gains in
    (0.5, 1.5), retention logits around 3-5 (rho mostly 0.9-0.99 per chunk:
    faster decay shrinks W until the LayerNorm's input is small, where the
    memory is so stiff that float32 and float64 runs drift apart by 1e-4 in
    33 tokens) and momentum logits around -2-0 (eta mostly 0.1-0.5)."""
    g = torch.Generator().manual_seed(seed)
    deep = model.c.memory_kind == "mlp"
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith("mem_ln.weight"):
                p.uniform_(0.5, 1.5, generator=g)
            elif name.endswith("mem_w1") or name.endswith("mem_w2"):
                _deep_weight(name, p, g)
            elif name.endswith("a_proj.bias") and deep:
                p.uniform_(3.0, 5.0, generator=g)
            elif name.endswith("m_proj.bias"):
                p.uniform_(-2.0, 0.0, generator=g)
            elif name.endswith("a_proj.bias"):
                p.uniform_(0.5, 3.0, generator=g)
            elif name.endswith(".bias"):
                p.uniform_(-1.0, 1.0, generator=g)
            elif name == "embed.weight":
                p.normal_(0.0, 1.0, generator=g)
            else:
                p.normal_(0.0, 1.0 / math.sqrt(p.shape[-1]), generator=g)
