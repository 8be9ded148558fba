"""Writes a model as the server loads it: <dir>/config.json + <dir>/model.safetensors."""
import json
import os

import torch

from . import safetensors_io
from .config import MCConfig
from .model import MCLM


def export(model: MCLM, out_dir, dtype=torch.float32, metadata=None):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(model.c.to_json(), f, indent=2, sort_keys=True)
        f.write("\n")
    tensors = {k: v.to(dtype) for k, v in model.state_dict().items()}
    safetensors_io.save(tensors, os.path.join(out_dir, "model.safetensors"), metadata)


def load(model_dir) -> MCLM:
    c = MCConfig.load(os.path.join(model_dir, "config.json"))
    m = MCLM(c)
    tensors = safetensors_io.load(os.path.join(model_dir, "model.safetensors"))
    m.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    return m
