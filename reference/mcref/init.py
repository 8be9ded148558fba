"""Weight initialisation: for training, and random-but-lively weights for
parity tests (every gate and decay far from trivial)."""
import math

import torch

from .model import MCLM


def init_for_training(model: MCLM, seed: int):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
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
    (0.5, 1), write strengths in (0.2, 0.8)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5, generator=g)
            elif name.endswith("a_proj.bias"):
                p.uniform_(0.5, 3.0, generator=g)
            elif name.endswith(".bias"):
                p.uniform_(-1.0, 1.0, generator=g)
            elif name == "embed.weight":
                p.normal_(0.0, 1.0, generator=g)
            else:
                p.normal_(0.0, 1.0 / math.sqrt(p.shape[-1]), generator=g)
