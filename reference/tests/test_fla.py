"""The fla reference (mcref.fla_model) against independent evaluations of
fla's equations, MC's equivalences (docs/mc-model.md sections 8 and 10),
and the checkpoint writer's layout, in float64."""
import copy
import dataclasses
import json
import os
import tempfile
import unittest

import torch
import torch.nn.functional as F

from mcref import fla_checkpoint, safetensors_io
from mcref.fla_model import (FlaLM, MCSettings, conv_step, delta_rule_step, read_query,
                             read_tensors, rms_norm)

DN = dict(hidden_size=32, num_hidden_layers=2, num_heads=2, vocab_size=64)
GDN = dict(hidden_size=32, num_hidden_layers=2, num_heads=2, num_v_heads=4, head_dim=8,
           expand_v=2.0, vocab_size=64)


class Tmp(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self._tmp.cleanup)
        self.n = 0

    def model(self, model_type="delta_net", mc=None, seed=1, **kw):
        """Writes a random checkpoint and loads it back."""
        self.n += 1
        d = os.path.join(self._tmp.name, str(self.n))
        fields = dict(DN if model_type == "delta_net" else GDN)
        opts = {k: kw.pop(k) for k in ("dtype", "shards", "u_proj", "f32_o_norm") if k in kw}
        fields.update(kw)
        fla_checkpoint.write(d, model_type, mc=mc, seed=seed, **opts, **fields)
        return FlaLM.load(d)

    def tokens(self, T, seed=5):
        g = torch.Generator().manual_seed(seed)
        return [1] + torch.randint(3, 64, (T - 1,), generator=g).tolist()


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def mc(agg, C=5, **kw):
    return dict(aggregation=agg, segment_length=C, **kw)


# ------------------------------------------------------------------ closed form
def closed_form(S0, q, k, v, beta, g, group):
    """The gated delta rule over a whole sequence at once, derived by hand:
    with A_t = exp(sum_{s<=t} g_s), u_t = beta_t (v_t - A_t S0^T k_t -
    sum_{j<t} (A_t/A_j)(k_t.k_j) u_j) is a unit lower-triangular system, and
    o_t = A_t S0^T q_t + sum_{j<=t} (A_t/A_j)(q_t.k_j) u_j (q scaled).
    q, k [T, H, dk]; v [T, HV, dv]; beta, g [T, HV]; returns o [T, HV, dv], S_T."""
    T = q.shape[0]
    qh = q.repeat_interleave(group, 1).transpose(0, 1) * q.shape[-1] ** -0.5   # [HV, T, dk]
    kh = k.repeat_interleave(group, 1).transpose(0, 1)
    vh, b = v.transpose(0, 1), beta.t()[..., None]                             # [HV, T, *]
    cum = g.t().cumsum(-1)                                                     # [HV, T]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    ratio = torch.exp((cum[:, :, None] - cum[:, None, :]).masked_fill(~causal, -float("inf")))
    A = cum.exp()[..., None]
    strict = (ratio * (kh @ kh.transpose(1, 2))).masked_fill(torch.eye(T, dtype=torch.bool), 0)
    lhs = torch.eye(T, dtype=q.dtype) + b * strict
    U = torch.linalg.solve_triangular(lhs, b * (vh - A * (kh @ S0)), upper=False,
                                      unitriangular=True)
    o = A * (qh @ S0) + (ratio * (qh @ kh.transpose(1, 2))) @ U
    S_T = A[:, -1:, :] * S0 + (kh * ratio[:, -1, :, None]).transpose(1, 2) @ U
    return o.transpose(0, 1), S_T


def parallel_mixer(m: FlaLM, i, X):
    """One fla layer's mixer on a whole sequence X [T, D] (normed inputs),
    evaluated in parallel from fla's equations: projections for all tokens,
    the short conv as a padded depthwise conv1d, the closed-form memory."""
    c, w, p = m.c, m.w, f"model.layers.{i}.attn."
    T, gdn = X.shape[0], c.model_type == "gated_deltanet"
    q, k, v = (X @ w[p + n + "_proj.weight"].t() for n in "qkv")
    if c.use_short_conv:
        conv = lambda y, n: F.conv1d(y.t()[None], w[p + n + "_conv1d.weight"],
                                     padding=c.conv_size - 1, groups=y.shape[1])[0, :, :T].t()
        q, k, v = conv(q, "q"), conv(k, "k"), conv(v, "v")
    if gdn or c.qk_activation == "silu":
        q, k = F.silu(q), F.silu(k)
    elif c.qk_activation == "relu":
        q, k = q.relu(), k.relu()
    elif c.qk_activation == "elu":
        q, k = F.elu(q) + 1, F.elu(k) + 1
    v = F.silu(v)
    q, k = q.view(T, c.num_heads, -1), k.view(T, c.num_heads, -1)
    if c.qk_norm == "l2":
        q = q / (q.pow(2).sum(-1, keepdim=True) + 1e-6).sqrt()
        k = k / (k.pow(2).sum(-1, keepdim=True) + 1e-6).sqrt()
    else:
        q, k = q / q.sum(-1, keepdim=True), k / k.sum(-1, keepdim=True)
    beta = torch.sigmoid(X @ w[p + "b_proj.weight"].t()) if c.use_beta \
        else torch.ones(T, c.num_v_heads, dtype=X.dtype)
    beta = beta * (2.0 if c.allow_neg_eigval else 1.0)
    g = -w[p + "A_log"].exp() * F.softplus(X @ w[p + "a_proj.weight"].t() + w[p + "dt_bias"]) \
        if gdn else torch.zeros(T, c.num_v_heads, dtype=X.dtype)
    S0 = torch.zeros(c.num_v_heads, c.head_k_dim, c.head_v_dim, dtype=X.dtype)
    o, _ = closed_form(S0, q, k, v.view(T, c.num_v_heads, -1), beta, g, c.group)
    o = rms_norm(o, w[p + "o_norm.weight"], c.norm_eps)
    if c.use_gate:
        o = o * F.silu(X @ w[p + "g_proj.weight"].t()).view(T, c.num_v_heads, -1)
    return o.flatten(1) @ w[p + "o_proj.weight"].t()


class LayerTest(Tmp):
    def test_delta_rule_step_equals_the_closed_form(self):
        gen = torch.Generator().manual_seed(3)
        T, H, G, dk, dv = 11, 2, 3, 5, 4
        r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)
        q, k, v = F.normalize(r(T, H, dk), dim=-1), F.normalize(r(T, H, dk), dim=-1), r(T, H * G, dv)
        beta, g = 2 * torch.rand(T, H * G, generator=gen).double(), -torch.rand(T, H * G, generator=gen).double()
        S0 = r(H * G, dk, dv)
        S, outs = S0.clone(), []
        for t in range(T):
            S = delta_rule_step(S, k[t], v[t], beta[t], g[t], G)
            outs.append(torch.einsum("hkv,hk->hv", S, read_query(q[t], G)))
        want_o, want_S = closed_form(S0, q, k, v, beta, g, G)
        self.assertLess(rel(torch.stack(outs), want_o), 1e-12)
        self.assertLess(rel(S, want_S), 1e-12)

    def test_conv_cache_equals_a_padded_causal_conv(self):
        gen = torch.Generator().manual_seed(4)
        x, wt = torch.randn(9, 6, generator=gen).double(), torch.randn(6, 1, 4, generator=gen).double()
        cache, ys = torch.zeros(6, 4, dtype=torch.float64), []
        for t in range(9):
            cache, y = conv_step(cache, x[t], wt)
            ys.append(y)
        want = F.conv1d(x.t()[None], wt, padding=3, groups=6)[0, :, :9].t()
        self.assertLess(rel(torch.stack(ys), want), 1e-14)
        self.assertTrue(torch.equal(cache, x[-4:].t()))   # the cache is the last W inputs

    def test_each_layer_variant_equals_its_parallel_evaluation(self):
        variants = [("delta_net", {}),
                    ("delta_net", dict(use_short_conv=False, use_gate=True, qk_activation="relu",
                                       allow_neg_eigval=True, tie_word_embeddings=True)),
                    ("delta_net", dict(use_gate=True, qk_activation="elu", expand_v=2.0)),
                    ("delta_net", dict(qk_activation="identity", use_beta=False, qk_norm="sum",
                                       allow_neg_eigval=True)),
                    ("gated_deltanet", {}),
                    ("gated_deltanet", dict(use_short_conv=False, use_gate=False,
                                            allow_neg_eigval=True))]
        X = torch.randn(13, 32, generator=torch.Generator().manual_seed(6)).double()
        for model_type, kw in variants:
            with self.subTest(model_type=model_type, **kw):
                m = self.model(model_type, **kw)
                st = m.initial_state().layers[1]
                got = torch.stack([m.mixer(1, X[t], st, t) for t in range(13)])
                self.assertLess(rel(got, parallel_mixer(m, 1, X)), 1e-11)

    def test_value_head_j_reads_key_head_j_over_the_group(self):
        """GatedDeltaNet with H = 2, HV = 4 equals H = HV = 4 with each key
        head's q/k weights repeated for its value heads (j // (HV / H))."""
        grouped = self.model("gated_deltanet", mc=mc("grm"))
        full = self.model("gated_deltanet", mc=mc("grm"), num_heads=4, head_dim=8)
        for n in list(full.w):
            if any(s in n for s in ("q_proj", "k_proj", "q_conv1d", "k_conv1d")):
                src = grouped.w[n]
                full.w[n] = src.view(2, 8, *src.shape[1:]).repeat_interleave(2, 0).reshape(src.shape[0] * 2, *src.shape[1:])
            else:
                full.w[n] = grouped.w[n]
        toks = self.tokens(17)
        a, _ = grouped.forward(toks)
        b, _ = full.forward(toks)
        self.assertLess(rel(a, b), 1e-12)


class MCTest(Tmp):
    def test_a_segment_longer_than_the_sequence_is_plain_fla(self):
        toks = self.tokens(14)
        plain, _ = self.model("gated_deltanet").forward(toks)
        for agg in ("residual", "mean", "grm", "soup", "ssc"):
            for bnd in ("continue", "reset"):
                with self.subTest(agg=agg, boundary=bnd):
                    cfg = mc(agg, C=100, boundary=bnd, **({"top_k": 1} if agg == "ssc" else {}))
                    got, _ = self.model("gated_deltanet", mc=cfg).forward(toks)
                    self.assertLess(rel(got, plain), 1e-12)

    def test_soup_and_large_top_k_ssc_equal_grm_and_small_top_k_does_not(self):
        toks = self.tokens(23)   # four checkpoints
        for model_type in ("delta_net", "gated_deltanet"):
            with self.subTest(model_type=model_type):
                grm, _ = self.model(model_type, mc=mc("grm")).forward(toks)
                soup, _ = self.model(model_type, mc=mc("soup")).forward(toks)
                ssc, _ = self.model(model_type, mc=mc("ssc", top_k=4)).forward(toks)
                ssc2, _ = self.model(model_type, mc=mc("ssc", top_k=2)).forward(toks)
                self.assertLess(rel(soup, grm), 1e-12)
                self.assertLess(rel(ssc, grm), 1e-12)
                self.assertLess(rel(ssc2[:15], grm[:15]), 1e-12)  # <= 2 checkpoints: the same
                self.assertGreater(rel(ssc2, grm), 1e-4)

    def test_aggregation_changes_the_output_and_residual_equals_mean_up_to_eps(self):
        toks = self.tokens(18)
        none, _ = self.model().forward(toks)
        res, _ = self.model(mc=mc("residual"), norm_eps=1e-30).forward(toks)
        mean, _ = self.model(mc=mc("mean"), norm_eps=1e-30).forward(toks)
        grm, _ = self.model(mc=mc("grm")).forward(toks)
        self.assertLess(rel(res, mean), 1e-9)
        self.assertLess(rel(none[:5], grm[:5]), 1e-12)   # first segment: nothing cached yet
        self.assertGreater(rel(grm, none), 1e-2)

    def test_u_proj_router_is_used_and_the_default_follows_the_weights(self):
        toks = self.tokens(18)
        routed = self.model("gated_deltanet", mc=mc("grm"), u_proj=True)
        self.assertEqual(routed.mc.router, "u_proj")
        by_query = self.model("gated_deltanet", mc=mc("grm", router="query"), u_proj=True)
        a, _ = routed.forward(toks)
        b, _ = by_query.forward(toks)
        self.assertGreater(rel(a, b), 1e-4)
        self.assertEqual(self.model(mc=mc("grm")).mc.router, "query")

    def test_reset_zeroes_the_memory_but_not_the_conv_caches(self):
        m = self.model(mc=mc("grm", boundary="reset"))
        st = m.initial_state()
        m.forward(self.tokens(10), st)
        self.assertEqual(float(st.layers[0].S.abs().max()), 0.0)
        self.assertGreater(float(st.layers[0].conv[0].abs().max()), 0.0)
        self.assertEqual(len(st.layers[0].ckpt_M), 2)

    def test_bad_mc_configs_are_refused_with_the_reason(self):
        with self.assertRaisesRegex(ValueError, "not defined for qk_norm 'sum'"):
            self.model(mc=mc("grm"), qk_norm="sum")
        with self.assertRaisesRegex(ValueError, "no attn.u_proj.weight"):
            self.model(mc=mc("grm", router="u_proj"))
        for bad, msg in ((dict(aggregation="ssc", segment_length=4), "top_k"),
                         (dict(aggregation="mean"), "segment_length"),
                         (dict(aggregation="mean", segment_length=4, boundry="reset"), "unknown key"),
                         (dict(aggregation="gated", segment_length=4), "aggregation"),
                         (dict(aggregation="mean", segment_length=4, boundary="stop"), "boundary")):
            with self.subTest(bad=bad), self.assertRaisesRegex(ValueError, msg):
                MCSettings.from_json(bad, has_u_proj=False)


class StateTest(Tmp):
    def test_feeding_in_several_calls_equals_one_call_and_a_copy_forks(self):
        toks = self.tokens(33)
        for model_type, cfg in (("delta_net", mc("ssc", top_k=2)), ("gated_deltanet", mc("grm"))):
            with self.subTest(model_type=model_type):
                m = self.model(model_type, mc=cfg)
                whole, _ = m.forward(toks)
                st, parts, t = m.initial_state(), [], 0
                for n in (7, 5, 12, 3):
                    parts.append(m.forward(toks[t:t + n], st)[0])
                    t += n
                fork = copy.deepcopy(st)
                parts.append(m.forward(toks[t:], st)[0])
                self.assertTrue(torch.equal(torch.cat(parts), whole))
                self.assertTrue(torch.equal(m.forward(toks[t:], fork)[0], whole[t:]))
                self.assertEqual(st.position, 33)


# ------------------------------------------------------------------ checkpoints
def layer_names(model_type, *, conv=True, gate=False, beta=True, u=False):
    names = ["attn_norm.weight", "attn.q_proj.weight", "attn.k_proj.weight", "attn.v_proj.weight",
             "attn.o_norm.weight", "attn.o_proj.weight", "mlp_norm.weight",
             "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"]
    if model_type == "gated_deltanet":
        names += ["attn.a_proj.weight", "attn.b_proj.weight", "attn.A_log", "attn.dt_bias"]
    elif beta:
        names.append("attn.b_proj.weight")
    if conv:
        names += ["attn.q_conv1d.weight", "attn.k_conv1d.weight", "attn.v_conv1d.weight"]
    names += ["attn.g_proj.weight"] * gate + ["attn.u_proj.weight"] * u
    return names


class CheckpointTest(Tmp):
    def written(self, model_type, **kw):
        self.n += 1
        d = os.path.join(self._tmp.name, f"w{self.n}")
        fla_checkpoint.write(d, model_type, **kw)
        return d, read_tensors(d)

    def test_names_and_shapes_are_flas_for_every_option(self):
        # D 32, H 2; delta_net dk = dv = 16 (expand_v 2: dv 32); gdn dk 8, dv 16, HV 4; I = 256.
        cases = [
            ("delta_net", {}, dict(), {"attn.q_proj.weight": [32, 32], "attn.b_proj.weight": [2, 32],
                                        "attn.v_conv1d.weight": [32, 1, 4], "attn.o_norm.weight": [16],
                                        "mlp.gate_proj.weight": [256, 32], "mlp.down_proj.weight": [32, 256]}),
            ("delta_net", dict(use_short_conv=False, use_gate=True, use_beta=False, tie_word_embeddings=True),
             dict(conv=False, gate=True, beta=False), {"attn.g_proj.weight": [32, 32]}),
            ("delta_net", dict(expand_v=2.0, conv_size=3), dict(),
             {"attn.v_proj.weight": [64, 32], "attn.v_conv1d.weight": [64, 1, 3],
              "attn.o_norm.weight": [32], "attn.o_proj.weight": [32, 64], "attn.k_conv1d.weight": [32, 1, 3]}),
            ("gated_deltanet", dict(u_proj=True), dict(gate=True, u=True),
             {"attn.q_proj.weight": [16, 32], "attn.v_proj.weight": [64, 32], "attn.a_proj.weight": [4, 32],
              "attn.b_proj.weight": [4, 32], "attn.A_log": [4], "attn.dt_bias": [4],
              "attn.g_proj.weight": [64, 32], "attn.u_proj.weight": [16, 32],
              "attn.o_norm.weight": [16], "attn.o_proj.weight": [32, 64], "attn.q_conv1d.weight": [16, 1, 4]}),
            ("gated_deltanet", dict(use_gate=False, use_short_conv=False, intermediate_size=40),
             dict(conv=False), {"mlp.up_proj.weight": [40, 32]}),
        ]
        for model_type, kw, opts, shapes in cases:
            with self.subTest(model_type=model_type, **kw):
                fields = dict(DN if model_type == "delta_net" else GDN)
                fields.update(kw)
                _, t = self.written(model_type, **fields)
                want = {"model.embeddings.weight", "model.norm.weight"}
                if not fields.get("tie_word_embeddings"):
                    want.add("lm_head.weight")
                for i in range(2):
                    want |= {f"model.layers.{i}.{n}" for n in layer_names(model_type, **opts)}
                self.assertEqual(set(t), want)
                self.assertEqual(list(t["model.embeddings.weight"].shape), [64, 32])
                for n, s in shapes.items():
                    self.assertEqual(list(t[f"model.layers.1.{n}"].shape), s, n)

    def test_config_json_has_flas_keys(self):
        d, _ = self.written("delta_net", dtype=torch.bfloat16, **DN)
        with open(os.path.join(d, "config.json")) as f:
            j = json.load(f)
        self.assertEqual(sorted(j), sorted([
            "allow_neg_eigval", "architectures", "attn", "attn_mode", "attnres_block_size",
            "bos_token_id", "conv_size", "eos_token_id", "expand_k", "expand_v",
            "fuse_cross_entropy", "fuse_linear_cross_entropy", "fuse_norm", "fuse_swiglu",
            "hidden_act", "hidden_ratio", "hidden_size", "initializer_range", "intermediate_size",
            "max_position_embeddings", "model_type", "norm_eps", "num_heads", "num_hidden_layers",
            "qk_activation", "qk_norm", "tie_word_embeddings", "torch_dtype", "transformers_version",
            "use_beta", "use_cache", "use_gate", "use_l2warp", "use_output_norm", "use_short_conv",
            "vocab_size"]))
        self.assertEqual((j["model_type"], j["architectures"], j["torch_dtype"]),
                         ("delta_net", ["DeltaNetForCausalLM"], "bfloat16"))
        g = fla_checkpoint.fla_config("gated_deltanet", num_v_heads=4)
        self.assertEqual(set(g) - set(j), {"head_dim", "num_v_heads"})
        self.assertEqual(set(j) - set(g), {"expand_k", "use_beta", "use_output_norm", "qk_norm",
                                           "qk_activation"})
        self.assertEqual(g["architectures"], ["GatedDeltaNetForCausalLM"])
        with self.assertRaisesRegex(ValueError, "not a field"):
            fla_checkpoint.fla_config("delta_net", head_dim=8)

    def test_sharded_and_half_precision_round_trip(self):
        _, f32 = self.written("gated_deltanet", seed=7, **GDN)
        for dtype in (torch.bfloat16, torch.float16):
            with self.subTest(dtype=dtype):
                d, sharded = self.written("gated_deltanet", seed=7, dtype=dtype, shards=3, **GDN)
                with open(os.path.join(d, "model.safetensors.index.json")) as f:
                    index = json.load(f)
                shards = sorted(set(index["weight_map"].values()))
                self.assertEqual(shards, [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)])
                self.assertEqual(set(index["weight_map"]), set(f32))
                self.assertEqual(index["metadata"]["total_size"], sum(t.numel() * 2 for t in f32.values()))
                for n, t in f32.items():
                    self.assertTrue(torch.equal(sharded[n], t.to(dtype)), n)
                self.assertFalse(os.path.exists(os.path.join(d, "model.safetensors")))
                m = FlaLM.load(d)
                self.assertEqual(m.w["model.layers.0.attn.A_log"].dtype, torch.float64)

    def test_f32_o_norm_keeps_only_that_tensor_in_f32(self):
        d, _ = self.written("gated_deltanet", dtype=torch.bfloat16, f32_o_norm=True,
                            **dict(GDN, use_gate=False))
        h = safetensors_io.read_header(os.path.join(d, "model.safetensors"))
        dtypes = {n: v["dtype"] for n, v in h.items() if n != "__metadata__"}
        self.assertEqual({n for n, t in dtypes.items() if t == "F32"},
                         {"model.layers.0.attn.o_norm.weight", "model.layers.1.attn.o_norm.weight"})
        FlaLM.load(d)

    def test_random_weights_are_flas_init_for_the_gates(self):
        _, t = self.written("gated_deltanet", **dict(GDN, num_hidden_layers=1, num_v_heads=64,
                                                     num_heads=4))
        A = t["model.layers.0.attn.A_log"].exp()
        dt = F.softplus(t["model.layers.0.attn.dt_bias"])
        self.assertTrue(bool((A > 0).all() and (A <= 16).all()))
        self.assertTrue(bool((dt >= 1e-3 * 0.999).all() and (dt <= 0.1 * 1.001).all()))

    def test_loader_names_the_bad_tensor_and_refuses_hybrid_configs(self):
        d, t = self.written("delta_net", **DN)
        path = os.path.join(d, "model.safetensors")
        for edit, msg in ((lambda t: t.pop("model.layers.1.attn.b_proj.weight"), "missing tensor 'model.layers.1.attn.b_proj.weight'"),
                          (lambda t: t.update({"model.layers.0.attn.q_conv1d.bias": torch.zeros(32)}), "unexpected tensor 'model.layers.0.attn.q_conv1d.bias'"),
                          (lambda t: t.update({"model.norm.weight": torch.zeros(31)}), "'model.norm.weight' has shape")):
            with self.subTest(msg=msg):
                bad = dict(t)
                edit(bad)
                safetensors_io.save(bad, path)
                with self.assertRaisesRegex(ValueError, msg):
                    FlaLM.load(d)
        safetensors_io.save(t, path)
        with open(os.path.join(d, "config.json")) as f:
            j = json.load(f)
        j["attn"] = {"layers": [1], "num_heads": 2}
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(j, f)
        with self.assertRaisesRegex(ValueError, "hybrid"):
            FlaLM.load(d)

    def test_tied_checkpoint_reads_logits_through_the_embeddings(self):
        m = self.model(tie_word_embeddings=True)
        self.assertNotIn("lm_head.weight", m.w)
        st = m.initial_state()
        logits = m.step(1, st)
        self.assertEqual(list(logits.shape), [64])

    def test_preset_is_the_published_delta_net_shape(self):
        a = fla_checkpoint.build_parser().parse_args(["--preset", "delta_net-1.3B", "--out", "x"])
        model_type, fields = fla_checkpoint.fields_from_args(a)
        from mcref.fla_model import FlaConfig, layout
        c = FlaConfig.from_json(fla_checkpoint.fla_config(model_type, torch.bfloat16, **fields))
        self.assertEqual((c.hidden_size, c.num_heads, c.num_hidden_layers, c.head_k_dim,
                          c.head_v_dim, c.intermediate_size, c.vocab_size, c.conv_size),
                         (2048, 16, 24, 128, 128, 5632, 32000, 4))
        self.assertEqual((c.use_gate, c.tie_word_embeddings, c.qk_activation, c.qk_norm,
                          c.norm_eps, c.bos_token_id, c.eos_token_id),
                         (False, False, "silu", "l2", 1e-6, 1, 2))
        # per layer: 3 * 2048^2 (q, k, v) + 2048^2 (o) + 3 * 5632 * 2048 (mlp) + 16 * 2048 (b)
        # + 3 * 2048 * 4 (convs) + 2 * 2048 + 128 (norms) = 51,441,792; plus 2 * 32000 * 2048 + 2048
        self.assertEqual(sum(torch.Size(s).numel() for _, s in layout(c)),
                         24 * 51441792 + 2 * 32000 * 2048 + 2048)


if __name__ == "__main__":
    unittest.main()
