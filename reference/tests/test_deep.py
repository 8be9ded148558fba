"""Deep memory (docs/mc-model.md section 9): the closed-form gradient against
autograd, the recurrent form against the chunked one for every variant, the
spec's equivalences, config, export and the trainer. float64, tiny models."""
import itertools
import json
import math
import os
import tempfile
import unittest

import torch

from mcref import deep_cases, deep_memory, export, safetensors_io, train
from mcref.config import AGGREGATIONS, MCConfig
from mcref.init import init_for_training, init_random
from mcref.model import MCLM

torch.set_num_threads(1)

SEG = 4


def deep(**kw):
    base = dict(vocab_size=260, d_model=16, n_layers=2, n_heads=2, head_dim=4, d_ff=24,
                segment_length=SEG, top_k=1, memory_kind="mlp", expansion=2, mem_chunk=1,
                lr_max=0.5, momentum=True, decay="scalar", grad_clip=0.0, aggregation="grm")
    base.update(kw)
    return MCConfig(**base)


def model(seed=1, **kw):
    m = MCLM(deep(**kw))
    init_random(m, seed)
    return m.double()


def tokens(b, t, seed=2):
    return torch.randint(0, 256, (b, t), generator=torch.Generator().manual_seed(seed))


def recurrent(m, toks, state=None):
    state = state or m.initial_state(toks.shape[0])
    return torch.stack([m.step(toks[:, i], state) for i in range(toks.shape[1])], 1), state


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def state_tensors(st):
    """Every tensor of a deep layer state, in a fixed order (rows concatenated)."""
    out = [st.W1, st.W2, st.ksum] + st.ckpt_W1 + st.ckpt_W2 + st.ckpt_s
    out += [s for s in (st.S1, st.S2) if s is not None]
    if st.rows:
        out += [torch.cat([r[k] for r in st.rows], 2) for k in sorted(st.rows[0])]
    return out


# A literal M_W(x) for the gradient check: erf gelu and LayerNorm written out.
def literal_memory(x, W1, W2, gamma):
    z = x @ W1
    y = (z * 0.5 * (1 + torch.erf(z / math.sqrt(2)))) @ W2
    mu = y.mean(-1, keepdim=True)
    var = ((y - mu) ** 2).mean(-1, keepdim=True)
    return x + gamma * (y - mu) / torch.sqrt(var + 1e-5)


class ClosedFormTest(unittest.TestCase):
    def test_chunk_gradient_equals_autograd(self):
        g = torch.Generator().manual_seed(0)
        r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)
        for n, E in ((1, 4), (3, 2), (5, 1)):
            B, H, d = 2, 3, 4
            K = torch.nn.functional.normalize(r(B, H, n, d), dim=-1)
            V, theta = r(B, H, n, d), torch.rand(B, H, n, generator=g, dtype=torch.float64)
            W1 = r(B, H, d, E * d).requires_grad_()
            W2 = (r(B, H, E * d, d) / math.sqrt(E * d)).requires_grad_()
            gamma = 0.5 + torch.rand(H, d, generator=g, dtype=torch.float64)
            err = literal_memory(K, W1, W2, gamma[:, None]) - V
            loss = (theta * 0.5 * err.pow(2).sum(-1)).sum()
            A1, A2 = torch.autograd.grad(loss, (W1, W2))
            G1, G2 = deep_memory.chunk_grad(K, V, theta, W1.detach(), W2.detach(), gamma)
            self.assertLess(rel(G1, A1), 1e-12)
            self.assertLess(rel(G2, A2), 1e-12)

    def test_one_token_write_is_one_gradient_step(self):
        # b = 1, no clip, no momentum, no decay: W <- W - theta grad 1/2 ||M_W(k) - v||^2
        m = model(mem_chunk=1, grad_clip=0.0, momentum=False, decay="none")
        tok = tokens(1, 1)[:, 0]
        mix = m.layers[0].mixer
        with torch.no_grad():
            p = mix.project(m.layers[0].mixer_norm(m.embed(tok)))   # layer 0 sees the embedding
            st = m.initial_state(1)
            m.step(tok, st)
        W1 = mix.mem_w1.detach().clone().requires_grad_()
        W2 = mix.mem_w2.detach().clone().requires_grad_()
        k, v = p["k"][0][:, None], p["v"][0][:, None]                 # [H, 1, d]
        gamma = mix.mem_ln.weight.detach()[:, None]
        loss = 0.5 * (literal_memory(k, W1, W2, gamma) - v).pow(2).sum()
        # The heads are independent, so one loss over all heads gives each head's gradient.
        g1, g2 = torch.autograd.grad(loss, (W1, W2))
        theta = p["theta"][0][:, None, None]
        self.assertLess(rel(st.layers[0].W1[0], W1 - theta * g1), 1e-12)
        self.assertLess(rel(st.layers[0].W2[0], W2 - theta * g2), 1e-12)
        self.assertGreater(rel(st.layers[0].W2[0], W2), 1e-3)           # the write did something


class FormsTest(unittest.TestCase):
    def test_chunked_equals_recurrent_for_every_variant(self):
        toks = tokens(2, 13)        # three segments closed, one open; a chunk open for b = 2, 4
        combos = itertools.product(AGGREGATIONS, ("continue", "reset"), ("none", "scalar"),
                                   (True, False), (1, 2, SEG), (0.0, 0.05))
        for i, (agg, bnd, decay, mom, b, clip) in enumerate(combos):
            with self.subTest(agg=agg, boundary=bnd, decay=decay, momentum=mom, chunk=b,
                              grad_clip=clip), torch.no_grad():
                m = model(seed=i, aggregation=agg, boundary=bnd, decay=decay, momentum=mom,
                          mem_chunk=b, grad_clip=clip)
                want, st_r = recurrent(m, toks)
                st_c = m.initial_state(2)
                # 5 is inside a chunk for b = 2 and 4; pieces of 3 cut further
                got = torch.cat([m.forward_chunked(toks[:, :5], st_c, chunk=3),
                                 m.forward_chunked(toks[:, 5:], st_c, chunk=3)], 1)
                self.assertLess(rel(got, want), 1e-10)
                for lr, lc in zip(st_r.layers, st_c.layers):
                    a, c = state_tensors(lr), state_tensors(lc)
                    self.assertEqual(len(a), len(c))
                    for x, y in zip(a, c):
                        scale = max(1.0, x.abs().max().item())
                        self.assertLess((x - y).abs().max().item(), 1e-10 * scale)
                    self.assertEqual((lr.n_writes, lr.n_clipped), (lc.n_writes, lc.n_clipped))
                if clip > 0:
                    self.assertGreater(sum(s.n_clipped for s in st_r.layers), 0)

    def test_splitting_inside_chunks_gives_the_same_logits(self):
        toks = tokens(1, 23)
        m = model(aggregation="ssc", mem_chunk=2, top_k=2, grad_clip=0.05)
        with torch.no_grad():
            want, _ = recurrent(m, toks)
            st, outs, t = m.initial_state(1), [], 0
            for n, chunked in ((3, True), (2, False), (5, True), (1, False), (7, True), (5, False)):
                if chunked:
                    outs.append(m.forward_chunked(toks[:, t:t + n], st, chunk=4))
                else:
                    outs.append(recurrent(m, toks[:, t:t + n], st)[0])
                t += n
        self.assertLess(rel(torch.cat(outs, 1), want), 1e-10)

    def test_ssc_ties_go_to_the_more_recent_in_both_forms(self):
        toks = tokens(1, 25)
        toks[:, SEG:] = toks[:, SEG:2 * SEG].repeat(1, 6)[:, :25 - SEG]   # equal segments 1..5
        m = model(aggregation="ssc", top_k=2, mem_chunk=2)
        with torch.no_grad():
            want, st_r = recurrent(m, toks)
            st_c = m.initial_state(1)
            # pieces of 3 cut segments, so the key sums continue across pieces
            got = m.forward_chunked(toks, st_c, chunk=3)
        for st in (st_r, st_c):
            s = st.layers[0].ckpt_s
            self.assertTrue(all(torch.equal(s[1], x) for x in s[2:]) and len(s) > 3)
        self.assertLess(rel(got, want), 1e-10)

    def test_large_top_k_ssc_equals_grm_and_soup_differs(self):
        toks = tokens(1, 17)
        with torch.no_grad():
            grm, _ = recurrent(model(aggregation="grm"), toks)
            ssc, _ = recurrent(model(aggregation="ssc", top_k=100), toks)
            soup, _ = recurrent(model(aggregation="soup"), toks)
            ssc1, _ = recurrent(model(aggregation="ssc", top_k=1), toks)
        self.assertLess(rel(ssc, grm), 1e-10)
        # Deep memory: mixing the weights is not mixing the reads (unlike section 5).
        self.assertLess(rel(soup[:, :SEG], grm[:, :SEG]), 1e-10)   # no checkpoint yet: same
        self.assertGreater(rel(soup, grm), 1e-3)
        self.assertGreater(rel(ssc1, grm), 1e-3)

    def test_residual_and_mean_differ_only_through_rms_eps(self):
        toks = tokens(1, 13)
        with torch.no_grad():
            res, _ = recurrent(model(aggregation="residual", rms_eps=1e-30), toks)
            mean, _ = recurrent(model(aggregation="mean", rms_eps=1e-30), toks)
        self.assertLess(rel(res, mean), 1e-8)

    def test_long_segment_or_no_aggregation_is_a_plain_rnn(self):
        toks = tokens(1, 11)
        gated = model(aggregation="grm", segment_length=100, mem_chunk=2)
        plain = MCLM(deep(aggregation="none", segment_length=100, mem_chunk=2)).double()
        plain.load_state_dict({k: v for k, v in gated.state_dict().items() if "u_proj" not in k})
        with torch.no_grad():
            a, _ = recurrent(gated, toks)
            b, _ = recurrent(plain, toks)
        self.assertLess(rel(a, b), 1e-10)

    def test_bf16_checkpoints_stay_close(self):
        toks = tokens(1, 13)
        m = model(aggregation="soup")
        with torch.no_grad():
            f32, _ = recurrent(m, toks)
            m.ckpt_dtype = torch.bfloat16
            bf16, _ = recurrent(m, toks)
        self.assertLess(rel(bf16, f32), 3e-2)
        self.assertGreater(rel(bf16, f32), 0.0)

    def test_training_graph_reaches_every_weight_through_the_writes(self):
        for agg in ("none", "soup"):
            m = MCLM(deep(aggregation=agg, mem_chunk=2, grad_clip=1.0))
            init_for_training(m, 0)
            m.forward_chunked(tokens(2, 11), chunk=64).logsumexp(-1).sum().backward()
            # With aggregation none, k, v, theta and the retention / momentum
            # logits reach the output only through the writes.
            for name, p in m.named_parameters():
                with self.subTest(agg=agg, name=name):
                    self.assertIsNotNone(p.grad)
                    self.assertGreater(p.grad.abs().max().item(), 0.0)


class ConfigExportTest(unittest.TestCase):
    def test_json_keys_and_round_trip(self):
        c = deep(aggregation="ssc", mem_chunk=2, grad_clip=0.25).validate()
        j = c.to_json()
        self.assertEqual(j["memory"], {"kind": "mlp", "rule": "delta", "decay": "scalar",
                                       "expansion": 2, "chunk": 2, "lr_max": 0.5,
                                       "momentum": True, "grad_clip": 0.25})
        self.assertEqual(MCConfig.from_json(json.loads(json.dumps(j))), c)
        # linear configs write exactly the keys they always did
        self.assertEqual(MCConfig().to_json()["memory"], {"rule": "delta", "decay": "scalar"})
        j2 = json.loads(json.dumps(j))
        del j2["memory"]["lr_max"]
        with self.assertRaisesRegex(ValueError, "memory.lr_max"):
            MCConfig.from_json(j2)
        j3 = MCConfig().to_json()
        j3["memory"]["expansion"] = 4
        with self.assertRaisesRegex(ValueError, "memory.expansion"):
            MCConfig.from_json(j3)

    def test_bad_values_name_the_field(self):
        for kw, field in ((dict(memory_kind="deep"), "memory.kind"),
                          (dict(rule="hebbian"), "memory.rule"),
                          (dict(expansion=0), "memory.expansion"),
                          (dict(mem_chunk=0), "memory.chunk"),
                          (dict(mem_chunk=3), "memory.chunk"),      # 3 does not divide 4
                          (dict(lr_max=None), "memory.lr_max"),
                          (dict(lr_max=0.0), "memory.lr_max"),
                          (dict(momentum=1), "memory.momentum"),
                          (dict(grad_clip=-1.0), "memory.grad_clip")):
            with self.subTest(**kw), self.assertRaisesRegex(ValueError, field):
                deep(**kw).validate()

    def test_export_round_trips_every_tensor(self):
        for mom, decay in ((True, "scalar"), (False, "none")):
            m = MCLM(deep(aggregation="grm", momentum=mom, decay=decay, expansion=3))
            init_random(m, 3)
            with tempfile.TemporaryDirectory() as d:
                export.export(m, d)
                back = export.load(d)
                raw = safetensors_io.load(os.path.join(d, "model.safetensors"))
            self.assertEqual(back.c, m.c)
            for k, v in m.state_dict().items():
                self.assertTrue(torch.equal(back.state_dict()[k], v), k)
            H, d, D, pre = 2, 4, 16, "layers.1.mixer."
            shapes = {"mem_w1": [H, d, 3 * d], "mem_w2": [H, 3 * d, d], "mem_ln.weight": [H, d],
                      "b_proj.weight": [H, D], "b_proj.bias": [H], "u_proj.weight": [H * d, D]}
            if mom:
                shapes.update({"m_proj.weight": [H, D], "m_proj.bias": [H]})
            if decay == "scalar":
                shapes.update({"a_proj.weight": [H, D], "a_proj.bias": [H]})
            for name, shape in shapes.items():
                self.assertEqual(list(raw[pre + name].shape), shape, name)
            mixer_names = {k[len(pre):] for k in raw if k.startswith(pre)}
            self.assertEqual(mixer_names - set(shapes), {"q_proj.weight", "k_proj.weight",
                             "v_proj.weight", "g_proj.weight", "o_proj.weight", "o_norm.weight"})


class DeepCasesTest(unittest.TestCase):
    def test_cases_replay_in_their_requests(self):
        names = {n for n, _, _ in deep_cases.all_cases()}
        self.assertEqual(len(names), 98)
        with tempfile.TemporaryDirectory() as d:
            for agg, bnd, b, setting in (("soup", "reset", 3, "mom_clip"),
                                         ("ssc", "continue", 3, "decay_mom")):
                out = os.path.join(d, "case")
                deep_cases.make_case(out, deep_cases.config(agg, bnd, b, setting), seed=5)
                m = export.load(out).double()
                exp = safetensors_io.load(os.path.join(out, "expected.safetensors"))
                toks, st, outs, t = exp["tokens"].long()[None], m.initial_state(1), [], 0
                with torch.no_grad():
                    for n, mode in zip(exp["splits"].long().tolist(), exp["modes"].tolist()):
                        piece = toks[:, t:t + n]
                        outs.append(m.forward_chunked(piece, st, chunk=4) if mode
                                    else recurrent(m, piece, st)[0])
                        t += n
                self.assertLess(rel(torch.cat(outs, 1)[0].float(), exp["logits"]), 1e-6)


class TrainerTest(unittest.TestCase):
    def test_deep_model_trains_exports_and_loads(self):
        with tempfile.TemporaryDirectory() as d:
            args = train.build_parser().parse_args([
                "--memory", "mlp", "--expansion", "2", "--mem_chunk", "2", "--lr_max", "0.3",
                "--grad_clip", "1.0", "--no_momentum", "--d_model", "16", "--n_layers", "1",
                "--n_heads", "2", "--head_dim", "4", "--d_ff", "24", "--segment_length", "4",
                "--steps", "3", "--batch", "2", "--seq_len", "16", "--warmup", "1",
                "--eval_examples", "2", "--eval_pairs", "2", "--threads", "1", "--quiet",
                "--out", d])
            model, _ = train.train(args)
            back = export.load(d)
            self.assertEqual(back.c.memory_kind, "mlp")
            self.assertEqual((back.c.expansion, back.c.mem_chunk, back.c.lr_max, back.c.momentum,
                              back.c.grad_clip), (2, 2, 0.3, False, 1.0))
            toks = tokens(1, 9)
            with torch.no_grad():
                self.assertLess(rel(back.forward_chunked(toks), model.forward_chunked(toks)), 1e-6)


if __name__ == "__main__":
    unittest.main()
