"""The MC language model of docs/mc-model.md, in PyTorch.

Parameter names equal the safetensors names of section 3, so
`model.state_dict()` is what the server loads.

Two forms of the same function:
- `step()`: one token for a batch of sequences, the spec read literally
  (the recurrent form; the oracle for parity tests);
- `forward_chunked()`: a whole token block, parallel within each piece of a
  segment (matrix products over the piece, state carried between pieces,
  checkpoints taken at segment ends). Used for training and long prompts.
Both continue from and return a `State`, so a session can be fed in several
calls. With memory.kind = "mlp" (section 9) the memory is deep_memory's
(a layer's state is then a deep_memory.DeepLayerState).
"""
import dataclasses
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from . import deep_memory
from .config import GATED, MCConfig


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def l2norm(y):
    return y / y.norm(dim=-1, keepdim=True).clamp_min(1e-6)


@dataclasses.dataclass
class LayerState:
    """One layer's memory for a batch of B sequences at the same position."""
    S: torch.Tensor                 # [B, H, d, d] online memory
    ksum: torch.Tensor              # [B, H, d] key sum of the open segment
    ckpt_M: List[torch.Tensor]      # n x [B, H, d, d] (values rounded to the cache dtype)
    ckpt_s: List[torch.Tensor]      # n x [B, H, d] summaries (float32)


@dataclasses.dataclass
class State:
    position: int                   # tokens fed so far (the next token's position)
    layers: List[LayerState]        # (deep_memory.DeepLayerState for deep memory)


class Gain(nn.Module):
    """A fixed-shape gain (the deep memory's LayerNorm gamma, [H, d])."""
    def __init__(self, *shape):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(*shape))


class Mixer(nn.Module):
    def __init__(self, c: MCConfig):
        super().__init__()
        hd = c.n_heads * c.head_dim
        self.c = c
        self.q_proj = nn.Linear(c.d_model, hd, bias=False)
        self.k_proj = nn.Linear(c.d_model, hd, bias=False)
        self.v_proj = nn.Linear(c.d_model, hd, bias=False)
        self.g_proj = nn.Linear(c.d_model, hd, bias=False)
        if c.aggregation in GATED:
            self.u_proj = nn.Linear(c.d_model, hd, bias=False)
        if c.decay == "scalar":
            self.a_proj = nn.Linear(c.d_model, c.n_heads, bias=True)
        if c.rule == "delta":
            self.b_proj = nn.Linear(c.d_model, c.n_heads, bias=True)
        if c.memory_kind == "mlp":
            hidden = c.expansion * c.head_dim
            self.mem_w1 = nn.Parameter(torch.zeros(c.n_heads, c.head_dim, hidden))
            self.mem_w2 = nn.Parameter(torch.zeros(c.n_heads, hidden, c.head_dim))
            self.mem_ln = Gain(c.n_heads, c.head_dim)
            if c.momentum:
                self.m_proj = nn.Linear(c.d_model, c.n_heads, bias=True)
        self.o_norm = RMSNorm(c.head_dim, c.rms_eps)
        self.o_proj = nn.Linear(hd, c.d_model, bias=False)

    def heads(self, y):
        return y.unflatten(-1, (self.c.n_heads, self.c.head_dim))

    def project(self, x):
        """x [..., D] -> dict of per-head inputs, each [..., H, d] or [..., H]."""
        c = self.c
        p = {
            "q": l2norm(self.heads(self.q_proj(x))),
            "k": l2norm(self.heads(self.k_proj(x))),
            "v": self.heads(self.v_proj(x)),
        }
        if c.aggregation in GATED:
            p["u"] = self.heads(self.u_proj(x))
        if c.memory_kind == "mlp":
            # theta (the write step) and the retention / momentum logits
            p["theta"] = c.lr_max * torch.sigmoid(self.b_proj(x))
            if c.decay == "scalar":
                p["la"] = self.a_proj(x)
            if c.momentum:
                p["lm"] = self.m_proj(x)
            return p
        if c.decay == "scalar":
            p["log_alpha"] = F.logsigmoid(self.a_proj(x))
        if c.rule == "delta":
            p["beta"] = torch.sigmoid(self.b_proj(x))
        return p

    def finish(self, o, x):
        """o [..., H, d] per-head reads -> the mixer output [..., D]."""
        o = self.o_norm(o).flatten(-2)
        return self.o_proj(o * F.silu(self.g_proj(x)))


class MLP(nn.Module):
    def __init__(self, c: MCConfig):
        super().__init__()
        self.gate_proj = nn.Linear(c.d_model, c.d_ff, bias=False)
        self.up_proj = nn.Linear(c.d_model, c.d_ff, bias=False)
        self.down_proj = nn.Linear(c.d_ff, c.d_model, bias=False)

    def forward(self, z):
        return self.down_proj(F.silu(self.gate_proj(z)) * self.up_proj(z))


class Layer(nn.Module):
    def __init__(self, c: MCConfig):
        super().__init__()
        self.mixer_norm = RMSNorm(c.d_model, c.rms_eps)
        self.mixer = Mixer(c)
        self.mlp_norm = RMSNorm(c.d_model, c.rms_eps)
        self.mlp = MLP(c)


class MCLM(nn.Module):
    def __init__(self, c: MCConfig):
        super().__init__()
        self.c = c.validate()
        self.embed = nn.Embedding(c.vocab_size, c.d_model)
        self.layers = nn.ModuleList(Layer(c) for _ in range(c.n_layers))
        self.norm = RMSNorm(c.d_model, c.rms_eps)
        if not c.tie_embeddings:
            self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        # Storage dtype of checkpoints (float32 or bfloat16); reads are in the
        # compute dtype.
        self.ckpt_dtype = torch.float32

    # ------------------------------------------------------------------ state
    def initial_state(self, batch: int) -> State:
        c = self.c
        kw = dict(device=self.embed.weight.device, dtype=self.embed.weight.dtype)
        if c.memory_kind == "mlp":
            return State(0, [deep_memory.initial_state(layer.mixer, batch)
                             for layer in self.layers])
        return State(0, [
            LayerState(torch.zeros(batch, c.n_heads, c.head_dim, c.head_dim, **kw),
                       torch.zeros(batch, c.n_heads, c.head_dim, **kw), [], [])
            for _ in range(c.n_layers)])

    def logits(self, h):
        w = self.embed.weight if self.c.tie_embeddings else self.lm_head.weight
        return self.norm(h) @ w.t()

    def _close_segment(self, st: LayerState, mixer=None):
        """Checkpoint at the end of a segment (section 5), then reset/continue."""
        c = self.c
        if c.memory_kind == "mlp":
            return deep_memory.close_segment(mixer, st, self.ckpt_dtype)
        if c.aggregation != "none":
            st.ckpt_M.append(st.S.to(self.ckpt_dtype).to(st.S.dtype))
            st.ckpt_s.append(st.ksum / c.segment_length)
        st.ksum = torch.zeros_like(st.ksum)
        if c.boundary == "reset":
            st.S = torch.zeros_like(st.S)

    # -------------------------------------------------------- recurrent form
    def step(self, tokens: torch.Tensor, state: State) -> torch.Tensor:
        """Feeds one token per sequence (tokens [B]); returns logits [B, V]."""
        c = self.c
        p = state.position
        h = self.embed(tokens)
        for layer, st in zip(self.layers, state.layers):
            x = layer.mixer_norm(h)
            m = layer.mixer.project(x)
            if c.memory_kind == "mlp":
                o = deep_memory.step_mixer(layer.mixer, st, m, p)
                h = h + layer.mixer.finish(o, x)
                h = h + layer.mlp(layer.mlp_norm(h))
                if (p + 1) % c.segment_length == 0:
                    self._close_segment(st, layer.mixer)
                continue
            q, k, v = m["q"], m["k"], m["v"]                      # [B, H, d]
            alpha = m["log_alpha"].exp()[..., None, None] if "log_alpha" in m else 1.0
            if c.rule == "hebbian":
                st.S = alpha * st.S + k[..., :, None] * v[..., None, :]
            else:
                beta = m["beta"][..., None, None]
                kS = torch.einsum("bhi,bhij->bhj", k, st.S)       # k^T S
                st.S = alpha * (st.S - beta * k[..., :, None] * kS[..., None, :]) \
                    + beta * k[..., :, None] * v[..., None, :]
            st.ksum = st.ksum + k
            count = p % c.segment_length + 1
            o = self._aggregate_one(st, q, m.get("u"), st.ksum / count)
            h = h + layer.mixer.finish(o, x)
            h = h + layer.mlp(layer.mlp_norm(h))
            if (p + 1) % c.segment_length == 0:
                self._close_segment(st)
        state.position += 1
        return self.logits(h)

    def _aggregate_one(self, st: LayerState, q, u, s_on):
        c = self.c
        read = lambda M: torch.einsum("bhij,bhi->bhj", M, q)   # M^T q
        n = len(st.ckpt_M)
        if c.aggregation == "none":
            return read(st.S)
        if c.aggregation == "residual":
            return read(st.S) + sum((read(M) for M in st.ckpt_M), torch.zeros_like(q))
        if c.aggregation == "mean":
            return (read(st.S) + sum((read(M) for M in st.ckpt_M), torch.zeros_like(q))) / (1 + n)
        z_on = c.gate_scale * (u * s_on).sum(-1)                 # [B, H]
        z = [c.gate_scale * (u * s).sum(-1) for s in st.ckpt_s]
        if c.aggregation == "ssc":
            return self._ssc_one(st, read, z_on, z)
        g = torch.softmax(torch.stack([z_on] + z, -1), -1)       # [B, H, 1+n]
        if c.aggregation == "grm":
            o = g[..., 0, None] * read(st.S)
            for i, M in enumerate(st.ckpt_M):
                o = o + g[..., i + 1, None] * read(M)
            return o
        # soup: mix the memories, then read once.
        mixed = g[..., 0, None, None] * st.S
        for i, M in enumerate(st.ckpt_M):
            mixed = mixed + g[..., i + 1, None, None] * M
        return read(mixed)

    def _ssc_one(self, st, read, z_on, z):
        """Top-k checkpoints per (sequence, head) by z; ties go to the more recent."""
        c = self.c
        B, H = z_on.shape
        out = torch.empty(B, H, c.head_dim, dtype=z_on.dtype, device=z_on.device)
        r_on = read(st.S)
        reads = [read(M) for M in st.ckpt_M]
        for b in range(B):
            for hh in range(H):
                order = sorted(range(len(z)), key=lambda i: (float(z[i][b, hh]), i), reverse=True)
                chosen = order[:c.top_k]
                g = torch.softmax(torch.stack([z_on[b, hh]] + [z[i][b, hh] for i in chosen]), 0)
                o = g[0] * r_on[b, hh]
                for j, i in enumerate(chosen):
                    o = o + g[j + 1] * reads[i][b, hh]
                out[b, hh] = o
        return out

    # ---------------------------------------------------------- chunked form
    def forward_chunked(self, tokens: torch.Tensor, state: Optional[State] = None,
                        chunk: int = 64) -> torch.Tensor:
        """Feeds tokens [B, T] (all sequences at the same position); returns
        logits [B, T, V]. Pieces never cross a segment end and hold at most
        `chunk` tokens."""
        c = self.c
        B, T = tokens.shape
        if state is None:
            state = self.initial_state(B)
        h = self.embed(tokens)
        pieces = []
        t, p = 0, state.position
        while t < T:
            n = min(chunk, T - t, c.segment_length - p % c.segment_length)
            pieces.append((t, n, p))
            t, p = t + n, p + n
        for layer, st in zip(self.layers, state.layers):
            x = layer.mixer_norm(h)
            m = layer.mixer.project(x)
            if c.memory_kind == "mlp":
                o = deep_memory.chunked_mixer(layer.mixer, st, m, state.position, chunk,
                                              self.ckpt_dtype)
            else:
                outs = []
                for t0, n, p0 in pieces:
                    piece = {key: val[:, t0:t0 + n] for key, val in m.items()}
                    outs.append(self._mixer_piece(st, piece, p0))
                    if (p0 + n) % c.segment_length == 0:
                        self._close_segment(st)
                o = torch.cat(outs, 1)                           # [B, T, H, d]
            h = h + layer.mixer.finish(o, x)
            h = h + layer.mlp(layer.mlp_norm(h))
        state.position += T
        return self.logits(h)

    def _mixer_piece(self, st: LayerState, m, p0):
        """One piece of one segment, in parallel: returns o [B, n, H, d] and
        advances st.S and st.ksum to the end of the piece."""
        c = self.c
        q, k, v = (m[key].transpose(1, 2) for key in ("q", "k", "v"))   # [B, H, n, d]
        n = q.shape[2]
        if "log_alpha" in m:
            cum = m["log_alpha"].transpose(1, 2).cumsum(-1)              # [B, H, n] log A_t
        else:
            cum = torch.zeros(q.shape[:3], dtype=q.dtype, device=q.device)
        causal = torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
        # decay[t, j] = A_t / A_j for j <= t, else 0
        decay = torch.exp((cum[..., :, None] - cum[..., None, :]).masked_fill(~causal, -float("inf")))
        A = cum.exp()[..., None]                                         # [B, H, n, 1]
        if c.rule == "delta":
            beta = m["beta"].transpose(1, 2)[..., None]                  # [B, H, n, 1]
            strict = decay * (k @ k.transpose(-1, -2))
            strict = strict.masked_fill(torch.eye(n, dtype=torch.bool, device=q.device), 0.0)
            lhs = torch.eye(n, dtype=q.dtype, device=q.device) + beta * strict
            rhs = beta * (v - A * (k @ st.S))
            w = torch.linalg.solve_triangular(lhs, rhs, upper=False, unitriangular=True)
        else:
            w = v
        # Online reads: A_t S0^T q_t + sum_{j<=t} (A_t/A_j)(q_t . k_j) w_j
        r_on = A * (q @ st.S) + (decay * (q @ k.transpose(-1, -2))) @ w
        S_end = A[..., -1:, :] * st.S + (k * (decay[..., -1, :, None])).transpose(-1, -2) @ w
        count0 = p0 % c.segment_length
        ks_cum = st.ksum[..., None, :] + k.cumsum(2)                     # [B, H, n, d]
        s_on = ks_cum / torch.arange(count0 + 1, count0 + n + 1, device=q.device,
                                     dtype=q.dtype)[:, None]
        o = self._aggregate_piece(st, q, m.get("u"), r_on, s_on)
        st.S = S_end
        st.ksum = ks_cum[..., -1, :]
        return o.transpose(1, 2)

    def _aggregate_piece(self, st, q, u, r_on, s_on):
        c = self.c
        if c.aggregation == "none" or not st.ckpt_M:
            if c.aggregation in ("none", "residual", "mean"):
                return r_on
        Ms = torch.stack(st.ckpt_M, 2) if st.ckpt_M else None            # [B, H, n, d, d]
        reads = torch.einsum("bhtd,bhnde->bhtne", q, Ms) if Ms is not None else None
        n = 0 if Ms is None else Ms.shape[2]
        if c.aggregation == "residual":
            return r_on + reads.sum(3)
        if c.aggregation == "mean":
            return (r_on + reads.sum(3)) / (1 + n)
        u = u.transpose(1, 2)                                            # [B, H, t, d]
        z_on = c.gate_scale * (u * s_on).sum(-1, keepdim=True)           # [B, H, t, 1]
        if n == 0:
            return r_on  # softmax over the online logit alone is 1
        z = c.gate_scale * torch.einsum("bhtd,bhnd->bhtn", u, torch.stack(st.ckpt_s, 2))
        if c.aggregation == "ssc" and n > c.top_k:
            # Stable descending sort of the reversed list: ties keep the more recent first.
            rev = z.flip(-1)
            _, order = torch.sort(rev, dim=-1, descending=True, stable=True)
            keep_rev = order[..., :c.top_k]
            mask = torch.zeros_like(z, dtype=torch.bool).scatter(-1, n - 1 - keep_rev, True)
            z = z.masked_fill(~mask, -float("inf"))
        g = torch.softmax(torch.cat([z_on, z], -1), -1)
        return g[..., :1] * r_on + (g[..., 1:, None] * reads).sum(3)
