"""Writes parity cases for the server's fla models (delta_net and
gated_deltanet checkpoints in fla's layout, with and without Memory Caching).

  /usr/bin/python3 -m mcref.fla_cases --out DIR [--vocab_size 512] [--tokenizer PATH]

Each case DIR/<name>/ is an fla checkpoint directory (config.json, weights,
mc_config.json when MC is on, tokenizer.model when --tokenizer is given) plus
expected.safetensors in parity_cases' format:
  tokens  F32 [T]   the session's tokens, bos first
  splits  F32 [R]   how many tokens each request feeds (sums to T)
  modes   F32 [R]   1: the request is prefilled in parallel, 0: fed token by token
  logits  F32 [T,V] next-token logits after each token
The logits come from the float64 recurrent reference (mcref.fla_model) run
on the weights as stored (rounded to the file's dtype), with checkpoints
rounded to float32. DIR/cases.json lists every case and its properties.
"""
import argparse
import json
import os
import shutil

import torch

from . import safetensors_io
from .fla_checkpoint import DTYPES, write
from .fla_model import FlaLM
from .parity_cases import MODES, SEGMENT, SPLITS, TOP_K

DN = dict(hidden_size=32, num_hidden_layers=2, num_heads=2)            # dk = dv = 16
GDN_GROUPED = dict(hidden_size=32, num_hidden_layers=2, num_heads=2, num_v_heads=4,
                   head_dim=8, expand_v=2.0)                           # dk 8, dv 16
GDN_PLAIN = dict(hidden_size=48, num_hidden_layers=2, num_heads=2, head_dim=16,
                 expand_v=2.0, use_gate=False, intermediate_size=96)   # dk 16, dv 32


def mc(agg, **kw):
    out = {"aggregation": agg, "segment_length": SEGMENT}
    if agg == "ssc":
        out["top_k"] = TOP_K
    out.update(kw)
    return out


def case(name, model_type, fields, mc_cfg=None, dtype="f32", **opts):
    return dict(name=name, model_type=model_type, fields=fields, mc=mc_cfg, dtype=dtype, **opts)


CASES = [
    case("dn_silu_l2_none", "delta_net", DN),
    case("dn_silu_l2_residual", "delta_net", DN, mc("residual")),
    case("dn_silu_l2_mean", "delta_net", DN, mc("mean")),
    case("dn_silu_l2_grm", "delta_net", DN, mc("grm", router="query")),
    case("dn_silu_l2_ssc", "delta_net", DN, mc("ssc", router="query")),
    case("dn_silu_l2_soup_f16", "delta_net", DN, mc("soup", gate_scale=2.0), dtype="f16"),
    case("dn_silu_l2_grm_reset", "delta_net", DN, mc("grm", boundary="reset")),
    case("dn_ssc_ties", "delta_net", DN, mc("ssc"), periodic=True),
    case("dn_noconv_gate_tied_relu_negeig_none", "delta_net",
         dict(DN, use_short_conv=False, use_gate=True, tie_word_embeddings=True,
              qk_activation="relu", allow_neg_eigval=True)),
    case("dn_conv_gate_elu_negeig_grm", "delta_net",
         dict(DN, use_gate=True, qk_activation="elu", allow_neg_eigval=True), mc("grm")),
    case("dn_noconv_identity_residual", "delta_net",
         dict(DN, use_short_conv=False, qk_activation="identity"), mc("residual")),
    case("dn_nobeta_sum_none", "delta_net", dict(DN, use_beta=False, qk_norm="sum")),
    case("dn_nobeta_sum_mean", "delta_net", dict(DN, use_beta=False, qk_norm="sum"), mc("mean")),
    # use_beta false with allow_neg_eigval: beta is 2, not 1.
    case("dn_nobeta_negeig_none", "delta_net", dict(DN, use_beta=False, allow_neg_eigval=True)),
    case("dn_expandv2_grm", "delta_net", dict(DN, expand_v=2.0), mc("grm")),
    case("gdn_grouped_none", "gated_deltanet", GDN_GROUPED),
    case("gdn_grouped_ssc", "gated_deltanet", GDN_GROUPED, mc("ssc")),
    case("gdn_grouped_uproj_grm", "gated_deltanet", GDN_GROUPED, mc("grm", router="u_proj"),
         u_proj=True),
    case("gdn_bf16_sharded_nogate_mean", "gated_deltanet", GDN_PLAIN, mc("mean"), dtype="bf16",
         shards=3, f32_o_norm=True),
    case("gdn_noconv_tied_negeig_residual", "gated_deltanet",
         dict(GDN_GROUPED, use_short_conv=False, tie_word_embeddings=True, allow_neg_eigval=True),
         mc("residual")),
]


def case_tokens(vocab_size, seed, periodic):
    """bos (1) then random ids in [3, V). Periodic: from position 1 the ids
    repeat with period SEGMENT, so at layer 0 every segment after the first
    has the same keys (conv windows included), its summaries tie exactly and
    ssc's tie rule (more recent wins) decides."""
    gen = torch.Generator().manual_seed(seed)
    T = sum(SPLITS)
    body = torch.randint(3, vocab_size, (T - 1,), generator=gen)
    if periodic:
        body = body[:SEGMENT].repeat(T)[:T - 1]
    return torch.cat([torch.tensor([1]), body])


def properties(spec, m: FlaLM, T):
    c, s = m.c, m.mc
    return dict(
        name=spec["name"], model_type=c.model_type, dtype=spec["dtype"],
        shards=spec.get("shards", 1), tied=c.tie_word_embeddings, use_gate=c.use_gate,
        use_short_conv=c.use_short_conv, conv_size=c.conv_size, use_beta=c.use_beta,
        qk_norm=c.qk_norm, qk_activation=c.qk_activation, allow_neg_eigval=c.allow_neg_eigval,
        hidden_size=c.hidden_size, num_hidden_layers=c.num_hidden_layers,
        num_heads=c.num_heads, num_v_heads=c.num_v_heads, head_k_dim=c.head_k_dim,
        head_v_dim=c.head_v_dim, intermediate_size=c.intermediate_size,
        vocab_size=c.vocab_size, u_proj=m.has_u_proj, f32_o_norm=spec.get("f32_o_norm", False),
        aggregation=s.aggregation,
        **({} if s.aggregation == "none" else dict(
            segment_length=s.segment_length, boundary=s.boundary, gate_scale=s.gate_scale,
            router=s.router, **({"top_k": s.top_k} if s.aggregation == "ssc" else {}))),
        tokens=T, periodic=spec.get("periodic", False))


def make_case(out_dir, spec, vocab_size, seed, tokenizer=None):
    write(out_dir, spec["model_type"], DTYPES[spec["dtype"]], shards=spec.get("shards", 1),
          u_proj=spec.get("u_proj", False), mc=spec["mc"], seed=seed,
          f32_o_norm=spec.get("f32_o_norm", False), vocab_size=vocab_size, **spec["fields"])
    if tokenizer:
        shutil.copyfile(tokenizer, os.path.join(out_dir, "tokenizer.model"))
    m = FlaLM.load(out_dir)
    tokens = case_tokens(vocab_size, seed + 1, spec.get("periodic", False))
    with torch.no_grad():
        logits, _ = m.forward(tokens.tolist())
    safetensors_io.save({
        "tokens": tokens.float(),
        "splits": torch.tensor(SPLITS, dtype=torch.float32),
        "modes": torch.tensor(MODES, dtype=torch.float32),
        "logits": logits.float(),
    }, os.path.join(out_dir, "expected.safetensors"))
    return properties(spec, m, len(tokens))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab_size", type=int, default=512)
    ap.add_argument("--tokenizer", help="a SentencePiece model, copied as tokenizer.model")
    ap.add_argument("--seed", type=int, default=4321)
    args = ap.parse_args()
    torch.set_num_threads(1)
    listed = [make_case(os.path.join(args.out, spec["name"]), spec, args.vocab_size,
                        args.seed + 11 * i, args.tokenizer)
              for i, spec in enumerate(CASES)]
    with open(os.path.join(args.out, "cases.json"), "w") as f:
        json.dump({"splits": SPLITS, "modes": MODES, "cases": listed}, f, indent=2)
        f.write("\n")
    print(f"wrote {len(listed)} fla parity cases to {args.out}")


if __name__ == "__main__":
    main()
