"""fla's DeltaNet and GatedDeltaNet causal LMs (flash-linear-attention,
model_type "delta_net" and "gated_deltanet"), with Memory Caching around
their memory as docs/mc-model.md section 10 fixes it.

Written from fla's equations (fla/layers/delta_net.py, gated_deltanet.py,
the fused_recurrent kernels, ShortConvolution's decode step,
FusedRMSNormGated, GatedMLP), not from its code: the oracle for the
server's parity tests. One sequence, one token at a time, float64.

Per layer and token t (x = RMSNorm(h; attn_norm)):
  q~, k~, v~ = W_q x, W_k x, W_v x
  short causal depthwise conv per channel (cache = last W inputs), then
  silu: GatedDeltaNet on q, k, v; DeltaNet on v, and on q, k only when
  qk_activation = silu (relu / elu+1 / identity come after the conv).
  Without conv the same activations apply to the raw projections.
  q, k per key head: l2 (x / sqrt(sum x^2 + 1e-6)) or sum (x / sum x).
  beta = sigmoid(W_b x) (1 when use_beta is false), x2 with allow_neg_eigval.
  GatedDeltaNet: S_j <- exp(g_j) S_j, g = -exp(A_log) softplus(W_a x + dt_bias).
  S_j <- S_j + k u^T, u = beta_j (v_j - S_j^T k); o_j = S_j^T (q dk^-0.5),
  where value head j reads key head j // (HV / H).
  o_j <- RMSNorm(o_j; o_norm) [* silu(W_g x)_j]; h += W_o o; then the SwiGLU MLP.
"""
import dataclasses
import json
import math
import os
from typing import List, Optional

import torch
import torch.nn.functional as F

from . import safetensors_io

MODEL_TYPES = ("delta_net", "gated_deltanet")
ACTIVATIONS = ("silu", "relu", "elu", "identity")
QK_NORMS = ("l2", "sum")
AGGREGATIONS = ("none", "residual", "mean", "grm", "soup", "ssc")
GATED = ("grm", "soup", "ssc")
BOUNDARIES = ("continue", "reset")
ROUTERS = ("query", "u_proj")
L2_EPS = 1e-6          # fla's l2norm (fused_recurrent kernels and l2norm_fwd)
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
MC_FILE = "mc_config.json"

# fla's config-class defaults for the keys this model reads (a key absent
# from config.json takes its class default, as transformers does).
_DEFAULTS = {
    "delta_net": dict(hidden_size=2048, expand_k=1.0, expand_v=1.0, use_gate=False,
                      use_short_conv=True, allow_neg_eigval=False, conv_size=4, use_beta=True,
                      num_heads=16, qk_norm="l2", qk_activation="silu", hidden_ratio=4,
                      intermediate_size=None, hidden_act="swish", num_hidden_layers=24,
                      norm_eps=1e-6, attn=None, tie_word_embeddings=False, bos_token_id=1,
                      eos_token_id=2, vocab_size=32000, attnres_block_size=None),
    "gated_deltanet": dict(hidden_size=2048, expand_v=2.0, use_gate=True, use_short_conv=True,
                           allow_neg_eigval=False, conv_size=4, head_dim=256, num_heads=6,
                           num_v_heads=None, hidden_ratio=4, intermediate_size=None,
                           hidden_act="swish", num_hidden_layers=21, norm_eps=1e-6, attn=None,
                           tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                           vocab_size=32000, attnres_block_size=None),
}


def _need(ok, msg):
    if not ok:
        raise ValueError(msg)


def _exact_int(value, what):
    """fla sizes layers with int(); a non-integral product is a bad config."""
    _need(abs(value - round(value)) < 1e-9, f"{what} = {value} is not an integer")
    return int(round(value))


def mlp_width(hidden_size, hidden_ratio, intermediate_size):
    """fla's GatedMLP: 256 * ceil(int(D * ratio * 2/3) / 256) when not given."""
    if intermediate_size is not None:
        return intermediate_size
    ratio = 4 if hidden_ratio is None else hidden_ratio
    width = int(hidden_size * ratio * 2 / 3)
    return 256 * ((width + 255) // 256)


@dataclasses.dataclass
class FlaConfig:
    """The fields of an fla config.json that fix the function, resolved."""
    model_type: str
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_heads: int          # H: query/key heads
    num_v_heads: int        # HV: value heads (= H for DeltaNet)
    head_k_dim: int
    head_v_dim: int
    intermediate_size: int
    use_gate: bool
    use_short_conv: bool
    conv_size: int
    use_beta: bool
    qk_norm: str
    qk_activation: str
    allow_neg_eigval: bool
    norm_eps: float
    tie_word_embeddings: bool
    bos_token_id: Optional[int]
    eos_token_id: Optional[int]

    @property
    def key_dim(self):
        return self.num_heads * self.head_k_dim

    @property
    def value_dim(self):
        return self.num_v_heads * self.head_v_dim

    @property
    def group(self):
        """Value heads per key head: value head j reads key head j // group."""
        return self.num_v_heads // self.num_heads

    @staticmethod
    def from_json(j):
        mt = j.get("model_type")
        _need(mt in MODEL_TYPES, f"model_type must be one of {MODEL_TYPES}, got {mt!r}")
        c = dict(_DEFAULTS[mt])
        c.update({k: v for k, v in j.items() if k in c})
        _need(c["attn"] is None, "config.json: hybrid softmax-attention layers ('attn') "
              "are not supported")
        _need(c["attnres_block_size"] is None, "config.json: 'attnres_block_size' "
              "(attention residuals) is not supported")
        _need(c["hidden_act"] == "swish", f"hidden_act must be 'swish', got {c['hidden_act']!r}")
        D, H = c["hidden_size"], c["num_heads"]
        if mt == "delta_net":
            _need(c["qk_activation"] in ACTIVATIONS,
                  f"qk_activation must be one of {ACTIVATIONS}, got {c['qk_activation']!r}")
            _need(c["qk_norm"] in QK_NORMS, f"qk_norm must be one of {QK_NORMS}, got {c['qk_norm']!r}")
            key_dim, value_dim = int(D * c["expand_k"]), int(D * c["expand_v"])
            _need(key_dim % H == 0 and value_dim % H == 0,
                  f"key dim {key_dim} and value dim {value_dim} must divide by num_heads {H}")
            HV, dk, dv = H, key_dim // H, value_dim // H
            qk_norm, qk_act, use_beta = c["qk_norm"], c["qk_activation"], c["use_beta"]
        else:
            HV = H if c["num_v_heads"] is None else c["num_v_heads"]
            _need(HV >= H and HV % H == 0,
                  f"num_v_heads {HV} must be a multiple of num_heads {H}")
            dk = c["head_dim"]
            dv = _exact_int(dk * c["expand_v"], "head_dim * expand_v")
            qk_norm, qk_act, use_beta = "l2", "silu", True
        for f in ("vocab_size", "num_hidden_layers", "conv_size"):
            _need(isinstance(c[f], int) and c[f] >= 1, f"{f} must be an integer >= 1")
        _need(D >= 1 and H >= 1 and dk >= 1 and dv >= 1, "layer sizes must be >= 1")
        return FlaConfig(
            model_type=mt, vocab_size=c["vocab_size"], hidden_size=D,
            num_hidden_layers=c["num_hidden_layers"], num_heads=H, num_v_heads=HV,
            head_k_dim=dk, head_v_dim=dv,
            intermediate_size=mlp_width(D, c["hidden_ratio"], c["intermediate_size"]),
            use_gate=bool(c["use_gate"]), use_short_conv=bool(c["use_short_conv"]),
            conv_size=c["conv_size"], use_beta=bool(use_beta), qk_norm=qk_norm,
            qk_activation=qk_act, allow_neg_eigval=bool(c["allow_neg_eigval"]),
            norm_eps=float(c["norm_eps"]), tie_word_embeddings=bool(c["tie_word_embeddings"]),
            bos_token_id=c["bos_token_id"], eos_token_id=c["eos_token_id"])

    @staticmethod
    def load(model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            return FlaConfig.from_json(json.load(f))


def layout(c: FlaConfig, u_proj: bool = False):
    """Every tensor of the checkpoint, in fla's names: [(name, shape)]."""
    D, K, V, I = c.hidden_size, c.key_dim, c.value_dim, c.intermediate_size
    gdn = c.model_type == "gated_deltanet"
    out = [("model.embeddings.weight", [c.vocab_size, D])]
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        out += [(p + "attn_norm.weight", [D]),
                (p + "attn.q_proj.weight", [K, D]),
                (p + "attn.k_proj.weight", [K, D]),
                (p + "attn.v_proj.weight", [V, D])]
        if gdn:
            out += [(p + "attn.a_proj.weight", [c.num_v_heads, D]),
                    (p + "attn.b_proj.weight", [c.num_v_heads, D]),
                    (p + "attn.A_log", [c.num_v_heads]),
                    (p + "attn.dt_bias", [c.num_v_heads])]
        elif c.use_beta:
            out.append((p + "attn.b_proj.weight", [c.num_heads, D]))
        if c.use_short_conv:
            out += [(p + "attn.q_conv1d.weight", [K, 1, c.conv_size]),
                    (p + "attn.k_conv1d.weight", [K, 1, c.conv_size]),
                    (p + "attn.v_conv1d.weight", [V, 1, c.conv_size])]
        if c.use_gate:
            out.append((p + "attn.g_proj.weight", [V, D]))
        if u_proj:
            out.append((p + "attn.u_proj.weight", [K, D]))
        out += [(p + "attn.o_norm.weight", [c.head_v_dim]),
                (p + "attn.o_proj.weight", [D, V]),
                (p + "mlp_norm.weight", [D]),
                (p + "mlp.gate_proj.weight", [I, D]),
                (p + "mlp.up_proj.weight", [I, D]),
                (p + "mlp.down_proj.weight", [D, I])]
    out.append(("model.norm.weight", [D]))
    if not c.tie_word_embeddings:
        out.append(("lm_head.weight", [c.vocab_size, D]))
    return out


def read_tensors(model_dir):
    """All tensors of model.safetensors, or of the shards that
    model.safetensors.index.json's weight_map names (each shard must hold
    exactly the tensors the map gives it)."""
    index = os.path.join(model_dir, INDEX_FILE)
    if not os.path.exists(index):
        path = os.path.join(model_dir, SINGLE_FILE)
        _need(os.path.exists(path), f"{model_dir}: neither {SINGLE_FILE} nor {INDEX_FILE}")
        return safetensors_io.load(path)
    with open(index) as f:
        weight_map = json.load(f)["weight_map"]
    out = {}
    for shard in sorted(set(weight_map.values())):
        tensors = safetensors_io.load(os.path.join(model_dir, shard))
        listed = {n for n, s in weight_map.items() if s == shard}
        _need(set(tensors) == listed, f"{shard}: its tensors differ from the index's weight_map "
              f"by {sorted(set(tensors) ^ listed)}")
        out.update(tensors)
    return out


def check_tensors(c: FlaConfig, tensors):
    """Validates names and shapes; returns whether the file has u_proj.
    A tied checkpoint's stored lm_head.weight is ignored (transformers ties it)."""
    has_u = any(n.endswith("attn.u_proj.weight") for n in tensors)
    want = dict(layout(c, u_proj=has_u))
    extra = set(tensors) - set(want)
    if c.tie_word_embeddings:
        extra.discard("lm_head.weight")
    if extra:
        raise ValueError(f"unexpected tensor {sorted(extra)[0]!r} ({len(extra)} unexpected in all)")
    for name, shape in want.items():
        _need(name in tensors, f"missing tensor {name!r}")
        _need(list(tensors[name].shape) == shape,
              f"tensor {name!r} has shape {list(tensors[name].shape)}, want {shape}")
    return has_u


@dataclasses.dataclass
class MCSettings:
    """mc_config.json beside the checkpoint (absent: aggregation none)."""
    aggregation: str = "none"
    segment_length: int = 1
    top_k: int = 1
    boundary: str = "continue"
    gate_scale: float = 1.0
    router: str = "query"

    KEYS = ("aggregation", "segment_length", "top_k", "boundary", "gate_scale", "router")

    @staticmethod
    def from_json(j, has_u_proj, qk_norm="l2"):
        unknown = sorted(set(j) - set(MCSettings.KEYS))
        _need(not unknown, f"{MC_FILE}: unknown key {unknown[:1]}")
        agg = j.get("aggregation", "none")
        _need(agg in AGGREGATIONS, f"{MC_FILE}: aggregation must be one of {AGGREGATIONS}, "
              f"got {agg!r}")
        m = MCSettings(aggregation=agg)
        if agg == "none":
            return m
        C = j.get("segment_length")
        _need(type(C) is int and C >= 1, f"{MC_FILE}: segment_length must be an integer >= 1, "
              f"got {C!r}")
        m.segment_length = C
        if agg == "ssc":
            k = j.get("top_k")
            _need(type(k) is int and k >= 1, f"{MC_FILE}: top_k must be an integer >= 1 for "
                  f"ssc, got {k!r}")
            m.top_k = k
        m.boundary = j.get("boundary", "continue")
        _need(m.boundary in BOUNDARIES, f"{MC_FILE}: boundary must be one of {BOUNDARIES}, "
              f"got {m.boundary!r}")
        gs = j.get("gate_scale", 1.0)
        _need(type(gs) in (int, float) and math.isfinite(gs),
              f"{MC_FILE}: gate_scale must be a finite number, got {gs!r}")
        m.gate_scale = float(gs)
        m.router = j.get("router", "u_proj" if has_u_proj else "query")
        _need(m.router in ROUTERS, f"{MC_FILE}: router must be one of {ROUTERS}, "
              f"got {m.router!r}")
        _need(m.router != "u_proj" or has_u_proj,
              f"{MC_FILE}: router 'u_proj' but the checkpoint has no attn.u_proj.weight")
        _need(agg not in GATED or qk_norm == "l2",
              f"{MC_FILE}: aggregation {agg!r} needs l2-normalised keys; it is not defined "
              f"for qk_norm 'sum'")
        return m

    @staticmethod
    def load(model_dir, has_u_proj, qk_norm="l2"):
        path = os.path.join(model_dir, MC_FILE)
        if not os.path.exists(path):
            return MCSettings()
        with open(path) as f:
            return MCSettings.from_json(json.load(f), has_u_proj, qk_norm)


@dataclasses.dataclass
class LayerState:
    """One layer of one sequence."""
    S: torch.Tensor                         # [HV, dk, dv] online memory
    conv: Optional[List[torch.Tensor]]      # q, k, v caches [dim, W] (None without conv)
    ksum: torch.Tensor                      # [H, dk] key sum of the open segment
    ckpt_M: List[torch.Tensor] = dataclasses.field(default_factory=list)   # [HV, dk, dv]
    ckpt_s: List[torch.Tensor] = dataclasses.field(default_factory=list)   # [H, dk]


@dataclasses.dataclass
class State:
    position: int                           # tokens fed so far
    layers: List[LayerState]


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def l2_normalize(x):
    """fla's l2norm: x / sqrt(sum x^2 + 1e-6) (eps inside the root)."""
    return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + L2_EPS)


def conv_step(cache, x, weight):
    """ShortConvolution's decode step: shift the [dim, W] cache left, append
    x, y_c = sum_j w[c, 0, j] cache[c, j]. Returns (new cache, y)."""
    cache = torch.cat([cache[:, 1:], x[:, None]], 1)
    return cache, (cache * weight[:, 0, :]).sum(-1)


def delta_rule_step(S, k, v, beta, g, group):
    """One token of the gated delta rule (fla's fused_recurrent kernels):
    S [HV, dk, dv]; k [H, dk]; v [HV, dv]; beta, g [HV]; value head j uses
    key head j // group. Decay first, then the delta update:
    S_j <- exp(g_j) S_j;  S_j <- S_j + k (beta_j (v_j - S_j^T k))^T."""
    kr = k.repeat_interleave(group, 0)                             # [HV, dk]
    S = torch.exp(g)[:, None, None] * S
    u = beta[:, None] * (v - torch.einsum("hkv,hk->hv", S, kr))
    return S + kr[:, :, None] * u[:, None, :]


def read_query(q, group):
    """q [H, dk] -> the query fla reads S with, per value head: q dk^-0.5."""
    return q.repeat_interleave(group, 0) * q.shape[-1] ** -0.5


def qk_activation(x, kind):
    if kind == "relu":
        return F.relu(x)
    if kind == "elu":
        return F.elu(x) + 1.0
    return x  # identity (silu is applied with the conv or the projection)


class FlaLM:
    """An fla checkpoint directory as a float64 recurrent model."""

    def __init__(self, c: FlaConfig, weights, mc: MCSettings, has_u_proj=False):
        self.c, self.mc, self.has_u_proj = c, mc, has_u_proj
        self.w = {k: v.to(torch.float64) for k, v in weights.items()}
        self.ckpt_dtype = torch.float32   # checkpoints are rounded to this, as the server stores them

    @staticmethod
    def load(model_dir):
        c = FlaConfig.load(model_dir)
        tensors = read_tensors(model_dir)
        has_u = check_tensors(c, tensors)
        return FlaLM(c, tensors, MCSettings.load(model_dir, has_u, c.qk_norm), has_u)

    # ------------------------------------------------------------------ state
    def initial_state(self) -> State:
        c, f64 = self.c, torch.float64
        conv = lambda: ([torch.zeros(c.key_dim, c.conv_size, dtype=f64),
                         torch.zeros(c.key_dim, c.conv_size, dtype=f64),
                         torch.zeros(c.value_dim, c.conv_size, dtype=f64)]
                        if c.use_short_conv else None)
        return State(0, [LayerState(torch.zeros(c.num_v_heads, c.head_k_dim, c.head_v_dim, dtype=f64),
                                    conv(), torch.zeros(c.num_heads, c.head_k_dim, dtype=f64))
                         for _ in range(c.num_hidden_layers)])

    # ------------------------------------------------------------- one layer
    def mixer_inputs(self, i, x, st: LayerState):
        """x [D] (the normed layer input) -> per-head q, k [H, dk] (normalised,
        q not yet scaled), v [HV, dv], beta [HV], log-decay g [HV] (0 for
        DeltaNet); advances the conv caches."""
        c, w, p = self.c, self.w, f"model.layers.{i}.attn."
        gdn = c.model_type == "gated_deltanet"
        q, k, v = (w[p + n + "_proj.weight"] @ x for n in "qkv")
        qk_silu = gdn or c.qk_activation == "silu"
        if c.use_short_conv:
            st.conv[0], q = conv_step(st.conv[0], q, w[p + "q_conv1d.weight"])
            st.conv[1], k = conv_step(st.conv[1], k, w[p + "k_conv1d.weight"])
            st.conv[2], v = conv_step(st.conv[2], v, w[p + "v_conv1d.weight"])
        if qk_silu:
            q, k = F.silu(q), F.silu(k)
        v = F.silu(v)
        q, k = q.view(c.num_heads, c.head_k_dim), k.view(c.num_heads, c.head_k_dim)
        v = v.view(c.num_v_heads, c.head_v_dim)
        if not qk_silu:
            q, k = qk_activation(q, c.qk_activation), qk_activation(k, c.qk_activation)
        if c.qk_norm == "l2":
            q, k = l2_normalize(q), l2_normalize(k)
        else:
            q, k = q / q.sum(-1, keepdim=True), k / k.sum(-1, keepdim=True)
        if c.use_beta:
            beta = torch.sigmoid(w[p + "b_proj.weight"] @ x)
        else:
            beta = torch.ones(c.num_v_heads, dtype=x.dtype)
        if c.allow_neg_eigval:
            beta = beta * 2.0
        if gdn:
            a = w[p + "a_proj.weight"] @ x + w[p + "dt_bias"]
            g = -torch.exp(w[p + "A_log"]) * F.softplus(a)   # softplus: identity above 20
        else:
            g = torch.zeros(c.num_v_heads, dtype=x.dtype)
        return q, k, v, beta, g

    def memory_step(self, st: LayerState, q, k, v, beta, g):
        """Advances st.S by one token; returns q as fla reads S, repeated
        to the value heads [HV, dk]."""
        st.S = delta_rule_step(st.S, k, v, beta, g, self.c.group)
        return read_query(q, self.c.group)

    def aggregate(self, st: LayerState, qr, u, s_on):
        """Section 5's aggregation of the online read and the checkpoints'
        reads. qr [HV, dk] scaled query; u, s_on [H, dk] (key heads)."""
        mc, G = self.mc, self.c.group
        read = lambda M: torch.einsum("hkv,hk->hv", M, qr)         # M^T q per value head
        r_on, n = read(st.S), len(st.ckpt_M)
        if mc.aggregation == "none":
            return r_on
        reads = [read(M) for M in st.ckpt_M]
        if mc.aggregation == "residual":
            return r_on + sum(reads, torch.zeros_like(r_on))
        if mc.aggregation == "mean":
            return (r_on + sum(reads, torch.zeros_like(r_on))) / (1 + n)
        z_on = mc.gate_scale * (u * s_on).sum(-1)                  # [H]
        z = [mc.gate_scale * (u * s).sum(-1) for s in st.ckpt_s]   # n x [H]
        out = torch.empty_like(r_on)
        for h in range(self.c.num_heads):
            chosen = list(range(n))
            if mc.aggregation == "ssc":
                order = sorted(chosen, key=lambda i: (float(z[i][h]), i), reverse=True)
                chosen = sorted(order[:mc.top_k])
            gate = torch.softmax(torch.stack([z_on[h]] + [z[i][h] for i in chosen]), 0)
            heads = slice(h * G, (h + 1) * G)
            o = gate[0] * r_on[heads]
            for j, i in enumerate(chosen):
                o = o + gate[j + 1] * reads[i][heads]
            out[heads] = o
        return out

    def close_segment(self, st: LayerState):
        """After a segment's last token: checkpoint, then reset or continue."""
        mc = self.mc
        if mc.aggregation != "none":
            st.ckpt_M.append(st.S.to(self.ckpt_dtype).to(torch.float64))
            st.ckpt_s.append(st.ksum / mc.segment_length)
        st.ksum = torch.zeros_like(st.ksum)
        if mc.boundary == "reset":
            st.S = torch.zeros_like(st.S)

    def mixer(self, i, x, st: LayerState, position):
        c, mc, w, p = self.c, self.mc, self.w, f"model.layers.{i}.attn."
        q, k, v, beta, g = self.mixer_inputs(i, x, st)
        qr = self.memory_step(st, q, k, v, beta, g)
        st.ksum = st.ksum + k
        s_on = st.ksum / (position % mc.segment_length + 1)
        u = (w[p + "u_proj.weight"] @ x).view(c.num_heads, c.head_k_dim) \
            if mc.router == "u_proj" else q
        o = self.aggregate(st, qr, u, s_on)
        o = rms_norm(o, w[p + "o_norm.weight"], c.norm_eps)
        if c.use_gate:
            o = o * F.silu(w[p + "g_proj.weight"] @ x).view(c.num_v_heads, c.head_v_dim)
        return w[p + "o_proj.weight"] @ o.flatten()

    # ------------------------------------------------------------- the model
    def step(self, token: int, state: State) -> torch.Tensor:
        """Feeds one token; returns the next-token logits [V]."""
        c, w, pos = self.c, self.w, state.position
        h = w["model.embeddings.weight"][int(token)]
        for i, st in enumerate(state.layers):
            p = f"model.layers.{i}."
            h = h + self.mixer(i, rms_norm(h, w[p + "attn_norm.weight"], c.norm_eps), st, pos)
            z = rms_norm(h, w[p + "mlp_norm.weight"], c.norm_eps)
            h = h + w[p + "mlp.down_proj.weight"] @ (
                F.silu(w[p + "mlp.gate_proj.weight"] @ z) * (w[p + "mlp.up_proj.weight"] @ z))
            if self.mc.aggregation != "none" and (pos + 1) % self.mc.segment_length == 0:
                self.close_segment(st)
        state.position += 1
        head = w["model.embeddings.weight"] if c.tie_word_embeddings else w["lm_head.weight"]
        return head @ rms_norm(h, w["model.norm.weight"], c.norm_eps)

    def forward(self, tokens, state: Optional[State] = None):
        """Feeds a token list; returns (logits [T, V], state)."""
        state = state or self.initial_state()
        return torch.stack([self.step(t, state) for t in tokens]), state
