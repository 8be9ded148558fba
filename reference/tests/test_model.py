"""The reference against itself and against the spec's equivalences
(docs/mc-model.md section 8), in float64."""
import itertools
import os
import tempfile
import unittest

import torch

from mcref import export, safetensors_io
from mcref.config import AGGREGATIONS, MCConfig
from mcref.init import init_random
from mcref.model import MCLM


def small(**kw):
    base = dict(vocab_size=260, d_model=32, n_layers=2, n_heads=2, head_dim=8, d_ff=48,
                segment_length=5, top_k=2)
    base.update(kw)
    return MCConfig(**base)


def model(seed=1, **kw):
    m = MCLM(small(**kw))
    init_random(m, seed)
    return m.double()


def tokens(b, t, seed=2):
    return torch.randint(0, 256, (b, t), generator=torch.Generator().manual_seed(seed))


def recurrent(m, toks, state=None):
    state = state or m.initial_state(toks.shape[0])
    return torch.stack([m.step(toks[:, i], state) for i in range(toks.shape[1])], 1), state


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


class FormsTest(unittest.TestCase):
    def test_chunked_equals_recurrent_for_every_variant(self):
        toks = tokens(2, 23)
        for rule, decay, agg, bnd in itertools.product(
                ("hebbian", "delta"), ("none", "scalar"), AGGREGATIONS, ("continue", "reset")):
            with self.subTest(rule=rule, decay=decay, agg=agg, boundary=bnd), torch.no_grad():
                m = model(rule=rule, decay=decay, aggregation=agg, boundary=bnd)
                want, _ = recurrent(m, toks)
                st = m.initial_state(2)
                got = torch.cat([m.forward_chunked(toks[:, :7], st, chunk=3),
                                 m.forward_chunked(toks[:, 7:], st, chunk=4)], 1)
                self.assertLess(rel(got, want), 1e-10)

    def test_soup_equals_grm_and_large_top_k_ssc_equals_grm(self):
        toks = tokens(1, 21)
        with torch.no_grad():
            grm, _ = recurrent(model(aggregation="grm"), toks)
            soup, _ = recurrent(model(aggregation="soup"), toks)
            ssc, _ = recurrent(model(aggregation="ssc", top_k=100), toks)
        self.assertLess(rel(soup, grm), 1e-10)
        self.assertLess(rel(ssc, grm), 1e-10)

    def test_long_segment_or_no_aggregation_is_a_plain_rnn(self):
        toks = tokens(1, 12)
        gated = model(aggregation="grm", segment_length=100)
        plain = MCLM(small(aggregation="none", segment_length=100)).double()
        plain.load_state_dict({k: v for k, v in gated.state_dict().items() if "u_proj" not in k})
        with torch.no_grad():
            long_seg, _ = recurrent(gated, toks)
            plain, _ = recurrent(plain, toks)
        self.assertLess(rel(long_seg, plain), 1e-10)

    def test_residual_and_mean_differ_only_through_rms_eps(self):
        toks = tokens(1, 17)
        with torch.no_grad():
            res, _ = recurrent(model(aggregation="residual", rms_eps=1e-30), toks)
            mean, _ = recurrent(model(aggregation="mean", rms_eps=1e-30), toks)
        self.assertLess(rel(res, mean), 1e-8)

    def test_ssc_changes_the_output_once_it_must_choose(self):
        toks = tokens(1, 21)  # four checkpoints > top_k = 2
        with torch.no_grad():
            grm, _ = recurrent(model(aggregation="grm"), toks)
            ssc, _ = recurrent(model(aggregation="ssc", top_k=2), toks)
        self.assertLess(rel(ssc[:, :11], grm[:, :11]), 1e-10)  # <= 2 checkpoints: same
        self.assertGreater(rel(ssc, grm), 1e-6)

    def test_bf16_checkpoints_stay_close(self):
        toks = tokens(1, 21)
        m = model(aggregation="grm")
        with torch.no_grad():
            f32, _ = recurrent(m, toks)
            m.ckpt_dtype = torch.bfloat16
            bf16, _ = recurrent(m, toks)
        self.assertLess(rel(bf16, f32), 2e-2)
        self.assertGreater(rel(bf16, f32), 0.0)


class ExportTest(unittest.TestCase):
    def test_export_round_trips_config_and_every_tensor(self):
        m = MCLM(small(aggregation="ssc", rule="delta", decay="scalar"))
        init_random(m, 3)
        with tempfile.TemporaryDirectory() as d:
            export.export(m, d)
            back = export.load(d)
            self.assertEqual(back.c, m.c)
            for k, v in m.state_dict().items():
                self.assertTrue(torch.equal(back.state_dict()[k], v), k)
            raw = safetensors_io.load(os.path.join(d, "model.safetensors"))
            self.assertIn("layers.1.mixer.u_proj.weight", raw)
            self.assertNotIn("layers.0.mixer.u_proj.weight", MCLM(small(aggregation="none")).state_dict())

    def test_bad_config_values_name_the_field(self):
        with self.assertRaisesRegex(ValueError, "mc.aggregation"):
            small(aggregation="gated").validate()
        with self.assertRaisesRegex(ValueError, "mc.top_k"):
            small(aggregation="ssc", top_k=0).validate()
        with self.assertRaisesRegex(ValueError, "mc.segment_length"):
            small(segment_length=0).validate()


if __name__ == "__main__":
    unittest.main()
