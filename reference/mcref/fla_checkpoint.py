"""Writes random fla checkpoints (DeltaNet, GatedDeltaNet) in fla's exact
layout, so the server's fla loader and the parity cases have real-format
inputs without downloading a model.

  /usr/bin/python3 -m mcref.fla_checkpoint --model_type delta_net --out DIR [options]
  /usr/bin/python3 -m mcref.fla_checkpoint --preset delta_net-1.3B --dtype bf16 --out DIR

DIR/config.json is what fla's config class writes through transformers'
save_pretrained (to_diff_dict: every field of the config class, plus
model_type, architectures, torch_dtype, transformers_version and the token
ids / tie flag that differ from PretrainedConfig's defaults; sorted, indent 2).
Weights are fla's names and shapes (fla_model.layout) in F32, BF16 or F16,
in one model.safetensors or in shards with model.safetensors.index.json.
Tensors are generated and written one at a time (large ones in row blocks),
so a 1.3B checkpoint is written in a few hundred MB of memory.
Random values keep the model well-conditioned: projections ~ N(0, 1/fan_in),
residual outputs scaled by 1/sqrt(2 L), norms near 1, and A_log / dt_bias
drawn as fla initialises them (A ~ U(0, 16), dt log-uniform in [1e-3, 0.1]).
"""
import argparse
import hashlib
import json
import math
import os

import torch

from . import safetensors_io
from .fla_model import INDEX_FILE, MC_FILE, SINGLE_FILE, FlaConfig, layout

TRANSFORMERS_VERSION = "4.53.2"
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}
ARCHITECTURES = {"delta_net": "DeltaNetForCausalLM", "gated_deltanet": "GatedDeltaNetForCausalLM"}

# The fields of fla's config classes (HEAD bc3b101), with their defaults, in
# the order the classes declare them. PretrainedConfig's own fields follow.
CLASS_FIELDS = {
    "delta_net": dict(
        attn_mode="chunk", hidden_size=2048, expand_k=1.0, expand_v=1.0, use_gate=False,
        use_short_conv=True, allow_neg_eigval=False, conv_size=4, use_beta=True,
        use_output_norm=True, num_heads=16, qk_norm="l2", qk_activation="silu",
        max_position_embeddings=2048, hidden_ratio=4, intermediate_size=None,
        hidden_act="swish", num_hidden_layers=24, norm_eps=1e-6, attn=None, use_cache=True,
        initializer_range=0.02, fuse_norm=True, fuse_swiglu=True, fuse_cross_entropy=True,
        fuse_linear_cross_entropy=False, use_l2warp=False, vocab_size=32000,
        attnres_block_size=None),
    "gated_deltanet": dict(
        attn_mode="chunk", hidden_size=2048, expand_v=2.0, use_gate=True, use_short_conv=True,
        allow_neg_eigval=False, conv_size=4, head_dim=256, num_heads=6, num_v_heads=None,
        max_position_embeddings=2048, hidden_ratio=4, intermediate_size=None,
        hidden_act="swish", num_hidden_layers=21, norm_eps=1e-6, attn=None, use_cache=True,
        initializer_range=0.02, fuse_norm=True, fuse_swiglu=True, fuse_cross_entropy=True,
        fuse_linear_cross_entropy=False, use_l2warp=False, vocab_size=32000,
        attnres_block_size=None),
}
BASE_FIELDS = dict(bos_token_id=1, eos_token_id=2, pad_token_id=None, tie_word_embeddings=False)

PRESETS = {
    # fla-hub/delta_net-1.3B-100B (research/fla-models.md): fla's DeltaNetConfig defaults.
    "delta_net-1.3B": ("delta_net", dict(
        hidden_size=2048, num_heads=16, num_hidden_layers=24, expand_k=1.0, expand_v=1.0,
        conv_size=4, use_short_conv=True, qk_activation="silu", qk_norm="l2", use_gate=False,
        norm_eps=1e-6, tie_word_embeddings=False, vocab_size=32000, bos_token_id=1,
        eos_token_id=2, hidden_ratio=4, intermediate_size=None)),
}


def fla_config(model_type, dtype=torch.float32, **fields):
    """config.json's dict as save_pretrained writes it for these fields."""
    cls = CLASS_FIELDS[model_type]
    unknown = set(fields) - set(cls) - set(BASE_FIELDS)
    if unknown:
        raise ValueError(f"not a field of fla's {model_type} config: {sorted(unknown)}")
    out = dict(cls)
    out.update({k: v for k, v in fields.items() if k in cls})
    base = dict(BASE_FIELDS)
    base.update({k: v for k, v in fields.items() if k in BASE_FIELDS})
    # to_diff_dict drops a PretrainedConfig field equal to its PretrainedConfig
    # default unless it also differs from the class default: pad_token_id None
    # is dropped; the token ids and tie flag (class defaults 1, 2, False versus
    # None, None, True) are always written.
    out.update({k: v for k, v in base.items() if v is not None})
    out.update(model_type=model_type, architectures=[ARCHITECTURES[model_type]],
               torch_dtype=DTYPE_NAMES[dtype], transformers_version=TRANSFORMERS_VERSION)
    return dict(sorted(out.items()))


def _seed(name, seed):
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little") >> 1


def _init(name, shape, gen, c: FlaConfig):
    """A random tensor (float32) for one weight; see the module docstring."""
    leaf = name.rsplit(".", 2)[-2] if name.endswith(".weight") else name.rsplit(".", 1)[-1]
    if leaf == "A_log":
        return torch.empty(shape).uniform_(0, 16, generator=gen).clamp_min(1e-4).log()
    if leaf == "dt_bias":
        lo, hi = math.log(1e-3), math.log(0.1)
        dt = torch.exp(torch.rand(shape, generator=gen) * (hi - lo) + lo).clamp_min(1e-4)
        return dt + torch.log(-torch.expm1(-dt))        # inverse softplus
    if leaf.endswith("norm"):
        return torch.empty(shape).uniform_(0.8, 1.2, generator=gen)
    if leaf == "embeddings":
        std = c.hidden_size ** -0.25 if c.tie_word_embeddings else 1.0
        return torch.randn(shape, generator=gen) * std
    if leaf.endswith("conv1d"):
        return torch.randn(shape, generator=gen) * shape[-1] ** -0.5
    std = shape[-1] ** -0.5
    if leaf in ("o_proj", "down_proj"):
        std /= math.sqrt(2 * c.num_hidden_layers)
    return torch.randn(shape, generator=gen) * std


def _chunks(name, shape, c, seed, dtype, rows=4096):
    """Yields the tensor in blocks of rows (all at once when small)."""
    gen = torch.Generator().manual_seed(_seed(name, seed))
    if len(shape) < 2 or shape[0] <= rows:
        yield _init(name, shape, gen, c).to(dtype)
        return
    for r in range(0, shape[0], rows):
        yield _init(name, [min(rows, shape[0] - r)] + list(shape[1:]), gen, c).to(dtype)


def _shards(entries, n):
    """Splits entries into n contiguous groups of about equal bytes."""
    sizes = [math.prod(e[2]) * (4 if e[1] == torch.float32 else 2) for e in entries]
    total, groups, acc = sum(sizes), [[] for _ in range(n)], 0
    for e, s in zip(entries, sizes):
        groups[min(n - 1, int(acc * n / total))].append(e)
        acc += s
    return [g for g in groups if g], total


def write(out_dir, model_type, dtype=torch.float32, shards=1, u_proj=False, mc=None,
          seed=0, f32_o_norm=False, **fields):
    """Writes a random checkpoint; returns its FlaConfig. mc: the
    mc_config.json dict (None: no file). f32_o_norm keeps the ungated
    o_norm.weight in F32 (fla builds that RMSNorm with dtype=float32)."""
    os.makedirs(out_dir, exist_ok=True)
    cfg = fla_config(model_type, dtype, **fields)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    c = FlaConfig.from_json(cfg)

    def entry(name, shape):
        dt = torch.float32 if f32_o_norm and name.endswith("attn.o_norm.weight") else dtype
        return (name, dt, shape, lambda: _chunks(name, shape, c, seed, dt))

    entries = [entry(n, s) for n, s in layout(c, u_proj)]
    meta = {"format": "pt"}
    if shards <= 1:
        safetensors_io.save_streaming(os.path.join(out_dir, SINGLE_FILE), entries, meta)
    else:
        groups, total = _shards(entries, shards)
        weight_map = {}
        for i, g in enumerate(groups):
            fname = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
            safetensors_io.save_streaming(os.path.join(out_dir, fname), g, meta)
            weight_map.update({e[0]: fname for e in g})
        with open(os.path.join(out_dir, INDEX_FILE), "w") as f:
            json.dump({"metadata": {"total_size": total},
                       "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
            f.write("\n")
    if mc is not None:
        with open(os.path.join(out_dir, MC_FILE), "w") as f:
            json.dump(mc, f, indent=2, sort_keys=True)
            f.write("\n")
    return c


def build_parser():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--preset", choices=sorted(PRESETS))
    ap.add_argument("--model_type", choices=sorted(CLASS_FIELDS), default="delta_net")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f32")
    ap.add_argument("--shards", type=int, default=1, help="1: model.safetensors; >= 2: index + shards")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden_size", type=int, default=64)
    ap.add_argument("--num_hidden_layers", type=int, default=2)
    ap.add_argument("--num_heads", type=int, default=2)
    ap.add_argument("--num_v_heads", type=int, help="gated_deltanet: grouped value heads")
    ap.add_argument("--head_dim", type=int, default=16, help="gated_deltanet")
    ap.add_argument("--expand_k", type=float, default=1.0, help="delta_net")
    ap.add_argument("--expand_v", type=float, help="default: 1 (delta_net), 2 (gated_deltanet)")
    ap.add_argument("--vocab_size", type=int, default=512)
    ap.add_argument("--conv", choices=("on", "off"), default="on")
    ap.add_argument("--conv_size", type=int, default=4)
    ap.add_argument("--gate", choices=("on", "off"), help="default: the class default")
    ap.add_argument("--qk_activation", choices=("silu", "relu", "elu", "identity"), default="silu")
    ap.add_argument("--qk_norm", choices=("l2", "sum"), default="l2")
    ap.add_argument("--no_beta", action="store_true", help="delta_net: use_beta false")
    ap.add_argument("--allow_neg_eigval", action="store_true")
    ap.add_argument("--tied", action="store_true")
    ap.add_argument("--intermediate_size", type=int)
    ap.add_argument("--u_proj", action="store_true", help="add MC router weights attn.u_proj")
    ap.add_argument("--f32_o_norm", action="store_true", help="ungated o_norm.weight in F32")
    ap.add_argument("--mc", help="mc_config.json contents, as JSON")
    return ap


def fields_from_args(a):
    if a.preset:
        return PRESETS[a.preset]
    f = dict(hidden_size=a.hidden_size, num_hidden_layers=a.num_hidden_layers,
             num_heads=a.num_heads, vocab_size=a.vocab_size, use_short_conv=a.conv == "on",
             conv_size=a.conv_size, allow_neg_eigval=a.allow_neg_eigval,
             tie_word_embeddings=a.tied, intermediate_size=a.intermediate_size)
    if a.gate is not None:
        f["use_gate"] = a.gate == "on"
    if a.expand_v is not None:
        f["expand_v"] = a.expand_v
    if a.model_type == "delta_net":
        f.update(expand_k=a.expand_k, qk_activation=a.qk_activation, qk_norm=a.qk_norm,
                 use_beta=not a.no_beta)
    else:
        f.update(head_dim=a.head_dim, num_v_heads=a.num_v_heads)
    return a.model_type, f


def main():
    a = build_parser().parse_args()
    model_type, fields = fields_from_args(a)
    c = write(a.out, model_type, DTYPES[a.dtype], shards=a.shards, u_proj=a.u_proj,
              mc=json.loads(a.mc) if a.mc else None, seed=a.seed, f32_o_norm=a.f32_o_norm,
              **fields)
    n = sum(math.prod(s) for _, s in layout(c, a.u_proj))
    print(f"wrote {model_type} ({n / 1e6:.1f}M parameters, {a.dtype}) to {a.out}")


if __name__ == "__main__":
    main()
