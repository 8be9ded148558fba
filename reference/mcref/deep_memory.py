"""Deep memory (docs/mc-model.md section 9): per head the state is the
weights W = (W1, W2) of a small MLP, written by gradient descent with
momentum and decay once per chunk of b tokens.

  M_W(x) = x + gamma * LN(gelu(x W1) W2)

Both forms of the model use the same closed-form chunk gradient
(`chunk_grad`) and the same write (`write`):
- `step_mixer`: one token, the spec read literally (recurrent form);
- `chunked_mixer`: a token block, chunk by chunk, the reads batched over
  each piece of a segment, every write kept in the autograd graph (so the
  projections, the gates and mem_w1/mem_w2 learn through the writes).
"""
import dataclasses
import math
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

LN_EPS = 1e-5
CLIP_EPS = 1e-6
_SQRT1_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# What the open chunk keeps of each token until the chunk's write.
ROW_KEYS = ("k", "v", "theta", "la", "lm")


@dataclasses.dataclass
class DeepLayerState:
    """One layer's deep memory for a batch of B sequences at the same position."""
    W1: torch.Tensor                  # [B, H, d, E*d]
    W2: torch.Tensor                  # [B, H, E*d, d]
    S1: Optional[torch.Tensor]        # momentum Sigma (same shapes; None without momentum)
    S2: Optional[torch.Tensor]
    rows: List[Dict[str, torch.Tensor]]   # the open chunk's tokens, pieces of [B, H, r(, d)]
    ksum: torch.Tensor                # [B, H, d] key sum of the open segment
    ckpt_W1: List[torch.Tensor]       # n x [B, H, d, E*d] (values rounded to the cache dtype)
    ckpt_W2: List[torch.Tensor]       # n x [B, H, E*d, d]
    ckpt_s: List[torch.Tensor]        # n x [B, H, d] summaries
    n_writes: int = 0                 # diagnostics: chunk writes so far,
    n_clipped: int = 0                # and (sequence, head, j) gradients the clip scaled down


def initial_state(mixer, batch: int) -> DeepLayerState:
    c = mixer.c
    W1, W2 = _initial_weights(mixer, batch)
    mom = c.momentum
    ksum = torch.zeros(batch, c.n_heads, c.head_dim, dtype=W1.dtype, device=W1.device)
    return DeepLayerState(W1, W2, torch.zeros_like(W1) if mom else None,
                          torch.zeros_like(W2) if mom else None, [], ksum, [], [], [])


def _initial_weights(mixer, batch):
    w1, w2 = mixer.mem_w1, mixer.mem_w2
    return w1.expand(batch, *w1.shape), w2.expand(batch, *w2.shape)


# ------------------------------------------------------------------ the math
def mm(a, b):
    """a [..., n, k] @ b [..., k, m]. Torch's CPU batched matmul costs a
    fixed ~100 us per call for tiny matrices, so a product with one or two
    rows (or a contraction over one or two) is a broadcast multiply and a
    sum: the recurrent form's and b = 1 training's only kind."""
    if a.shape[-2] <= 2 or a.shape[-1] <= 2:
        return (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(-2)
    return a @ b


def mem_apply(x, W1, W2, gamma):
    """M_W(x) for rows x [..., r, d], W1 [..., d, E*d], W2 [..., E*d, d];
    gamma broadcasts against [..., r, d]. gelu is the exact (erf) form; the
    LayerNorm has biased variance, eps 1e-5 and no bias."""
    y = mm(F.gelu(mm(x, W1)), W2)
    return x + gamma * F.layer_norm(y, y.shape[-1:], eps=LN_EPS)


def chunk_grad(K, V, theta, W1, W2, gamma):
    """Closed-form G = sum_t theta_t grad_W 1/2 ||M_W(k_t) - v_t||^2 (section 9).
    K, V [B, H, n, d], theta [B, H, n], W1 [B, H, d, E*d], W2 [B, H, E*d, d],
    gamma [H, d]. Returns (grad W1, grad W2)."""
    g = gamma[:, None, :]
    Z = mm(K, W1)
    Phi = 0.5 * (1.0 + torch.erf(Z * _SQRT1_2))
    A = Z * Phi
    Y = mm(A, W2)
    Yc = Y - Y.mean(-1, keepdim=True)
    s = torch.sqrt((Yc * Yc).mean(-1, keepdim=True) + LN_EPS)
    Yh = Yc / s
    E = K + g * Yh - V
    GYh = theta[..., None] * E * g
    GY = (GYh - GYh.mean(-1, keepdim=True) - Yh * (GYh * Yh).mean(-1, keepdim=True)) / s
    G2 = mm(A.transpose(-1, -2), GY)
    GZ = mm(GY, W2.transpose(-1, -2)) * (Phi + Z * torch.exp(-0.5 * Z * Z) * _INV_SQRT_2PI)
    G1 = mm(K.transpose(-1, -2), GZ)
    return G1, G2


def _clip(G, clip, st):
    f = (clip / (torch.linalg.matrix_norm(G) + CLIP_EPS)).clamp(max=1.0)    # [B, H]
    st.n_clipped += int((f < 1.0).sum())
    return G * f[..., None, None]


def write(mixer, st: DeepLayerState):
    """The write at the last token of a chunk, from the chunk's rows:
    G at the chunk-start weights, clipped; Sigma <- eta Sigma - G;
    W <- rho W + Sigma."""
    c = mixer.c
    rows = st.rows[0] if len(st.rows) == 1 else \
        {key: torch.cat([r[key] for r in st.rows], 2) for key in st.rows[0]}
    st.rows = []
    G1, G2 = chunk_grad(rows["k"], rows["v"], rows["theta"], st.W1, st.W2, mixer.mem_ln.weight)
    if c.grad_clip > 0:
        G1, G2 = _clip(G1, c.grad_clip, st), _clip(G2, c.grad_clip, st)
    if c.momentum:
        eta = torch.sigmoid(rows["lm"].mean(-1))[..., None, None]
        st.S1, st.S2 = eta * st.S1 - G1, eta * st.S2 - G2
        D1, D2 = st.S1, st.S2
    else:
        D1, D2 = -G1, -G2
    if c.decay == "scalar":
        rho = torch.sigmoid(rows["la"].mean(-1))[..., None, None]
        st.W1, st.W2 = rho * st.W1 + D1, rho * st.W2 + D2
    else:
        st.W1, st.W2 = st.W1 + D1, st.W2 + D2
    st.n_writes += 1


def close_segment(mixer, st: DeepLayerState, ckpt_dtype):
    """After a segment's last token: checkpoint (W1, W2) and the summary,
    then reset or continue."""
    c = mixer.c
    if c.aggregation != "none":
        st.ckpt_W1.append(st.W1.to(ckpt_dtype).to(st.W1.dtype))
        st.ckpt_W2.append(st.W2.to(ckpt_dtype).to(st.W2.dtype))
        st.ckpt_s.append(st.ksum / c.segment_length)
    st.ksum = torch.zeros_like(st.ksum)
    if c.boundary == "reset":
        st.W1, st.W2 = _initial_weights(mixer, st.W1.shape[0])
        if c.momentum:
            st.S1, st.S2 = torch.zeros_like(st.S1), torch.zeros_like(st.S2)


# ------------------------------------------------------------ recurrent form
def step_mixer(mixer, st: DeepLayerState, m, p):
    """Token p (m: its projections, [B, H, d] or [B, H]): seen, written if it
    ends a chunk, then read. Returns o [B, H, d]."""
    c = mixer.c
    st.rows.append({key: m[key].unsqueeze(2) for key in ROW_KEYS if key in m})
    st.ksum = st.ksum + m["k"]
    if (p + 1) % c.mem_chunk == 0:
        write(mixer, st)
    s_on = st.ksum / (p % c.segment_length + 1)
    return _aggregate_one(mixer, st, m["q"], m.get("u"), s_on)


def _aggregate_one(mixer, st, q, u, s_on):
    c = mixer.c
    gamma = mixer.mem_ln.weight[:, None, :]                        # [H, 1, d]
    read = lambda W1, W2: mem_apply(q[:, :, None, :], W1, W2, gamma)[:, :, 0]
    cks = list(zip(st.ckpt_W1, st.ckpt_W2))
    n = len(cks)
    if c.aggregation == "none":
        return read(st.W1, st.W2)
    if c.aggregation in ("residual", "mean"):
        o = read(st.W1, st.W2)
        for W1, W2 in cks:
            o = o + read(W1, W2)
        return o / (1 + n) if c.aggregation == "mean" else o
    z_on = c.gate_scale * (u * s_on).sum(-1)                        # [B, H]
    z = [c.gate_scale * (u * s).sum(-1) for s in st.ckpt_s]
    if c.aggregation == "ssc":
        return _ssc_one(c, read(st.W1, st.W2), [read(W1, W2) for W1, W2 in cks], z_on, z)
    g = torch.softmax(torch.stack([z_on] + z, -1), -1)              # [B, H, 1+n]
    if c.aggregation == "grm":
        o = g[..., 0, None] * read(st.W1, st.W2)
        for i, (W1, W2) in enumerate(cks):
            o = o + g[..., i + 1, None] * read(W1, W2)
        return o
    # soup: mix the weights (j = 1, 2), read once
    gw = lambda i: g[..., i, None, None]
    W1b, W2b = gw(0) * st.W1, gw(0) * st.W2
    for i, (W1, W2) in enumerate(cks):
        W1b, W2b = W1b + gw(i + 1) * W1, W2b + gw(i + 1) * W2
    return read(W1b, W2b)


def _ssc_one(c, r_on, reads, z_on, z):
    """Top-k checkpoints per (sequence, head) by z; ties go to the more recent."""
    B, H = z_on.shape
    out = torch.empty_like(r_on)
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


# -------------------------------------------------------------- chunked form
def chunked_mixer(mixer, st: DeepLayerState, m, p0, piece_len, ckpt_dtype):
    """Tokens p0 .. p0+T-1 (m: projections [B, T, H, d] or [B, T, H]).
    Pieces never cross a segment end and hold at most piece_len tokens;
    within a piece, writes happen chunk by chunk in order and the reads are
    batched. Returns o [B, T, H, d]."""
    c = mixer.c
    T = m["q"].shape[1]
    sizes, t, p = [], 0, p0
    while t < T:
        sizes.append(min(piece_len, T - t, c.segment_length - p % c.segment_length))
        t, p = t + sizes[-1], p + sizes[-1]
    parts = {key: val.transpose(1, 2).split(sizes, 2) for key, val in m.items()}  # [B, H, n, ...]
    outs, p = [], p0
    for i, n in enumerate(sizes):
        outs.append(_segment_piece(mixer, st, {key: val[i] for key, val in parts.items()}, p))
        p += n
        if p % c.segment_length == 0:
            close_segment(mixer, st, ckpt_dtype)
    return torch.cat(outs, 2).transpose(1, 2)


def _segment_piece(mixer, st, m, p):
    """n tokens of one segment from position p: writes, then reads [B, H, n, d]."""
    c = mixer.c
    q, k = m["q"], m["k"]
    n = q.shape[2]
    sizes, t = [], 0                             # pieces of chunks
    while t < n:
        sizes.append(min(n - t, c.mem_chunk - (p + t) % c.mem_chunk))
        t += sizes[-1]
    rows = {key: m[key].split(sizes, 2) for key in ROW_KEYS if key in m}
    runs, t = [], 0                              # (tokens, W1, W2): runs read alike
    for i, r in enumerate(sizes):
        st.rows.append({key: val[i] for key, val in rows.items()})
        if (p + t + r) % c.mem_chunk == 0:       # the piece's last token closes the chunk
            if r > 1:
                runs.append((r - 1, st.W1, st.W2))
            write(mixer, st)
            runs.append((1, st.W1, st.W2))
        else:
            runs.append((r, st.W1, st.W2))
        t += r
    count0 = p % c.segment_length
    # Key sums added in token order, as the recurrent form adds them: segments
    # with bitwise equal keys get bitwise equal summaries however they are cut
    # into pieces (ssc's ties stay ties).
    ks_cum = torch.cat([st.ksum[:, :, None], k], 2).cumsum(2)[:, :, 1:]   # [B, H, n, d]
    s_on = ks_cum / torch.arange(count0 + 1, count0 + n + 1, device=q.device,
                                 dtype=q.dtype)[:, None]
    st.ksum = ks_cum[:, :, -1]
    return _aggregate_piece(mixer, st, q, m.get("u"), s_on, runs)


def _per_token(runs, j):
    """The weights W_j each token reads, [B, H, n, ...] (a copy per token)."""
    return torch.cat([run[j][:, :, None].expand(-1, -1, run[0], -1, -1) for run in runs], 2)


def _aggregate_piece(mixer, st, q, u, s_on, runs):
    c = mixer.c
    gamma = mixer.mem_ln.weight
    N = len(st.ckpt_W1)
    soup = c.aggregation == "soup"
    if not soup or N == 0:
        if len(runs) <= 2:   # one product per run of tokens that read the same weights
            splits = q.split([r for r, _, _ in runs], 2)
            r_on = torch.cat([mem_apply(x, W1, W2, gamma[:, None, :])
                              for x, (_, W1, W2) in zip(splits, runs)], 2)   # [B, H, n, d]
        else:                # short chunks: one product over every token's own weights
            r_on = mem_apply(q[..., None, :], _per_token(runs, 1), _per_token(runs, 2),
                             gamma[:, None, None, :])[..., 0, :]
        if c.aggregation == "none" or N == 0:
            return r_on   # with no checkpoint every rule is the online read
    CK1, CK2 = torch.stack(st.ckpt_W1, 2), torch.stack(st.ckpt_W2, 2)   # [B, H, N, ...]
    if c.aggregation in ("residual", "mean"):
        reads = mem_apply(q[:, :, None], CK1, CK2, gamma[:, None, None, :])  # [B, H, N, n, d]
        o = r_on + reads.sum(2)
        return o / (1 + N) if c.aggregation == "mean" else o
    z_on = c.gate_scale * (u * s_on).sum(-1, keepdim=True)           # [B, H, n, 1]
    S = torch.stack(st.ckpt_s, 2)[:, :, None]                         # [B, H, 1, N, d]
    z = c.gate_scale * (u[:, :, :, None] * S).sum(-1)                 # [B, H, n, N]
    if c.aggregation == "ssc" and N > c.top_k:
        # Stable descending sort of the reversed list: ties keep the more recent first.
        _, order = torch.sort(z.flip(-1), dim=-1, descending=True, stable=True)
        mask = torch.zeros_like(z, dtype=torch.bool).scatter(-1, N - 1 - order[..., :c.top_k], True)
        z = z.masked_fill(~mask, -float("inf"))
    g = torch.softmax(torch.cat([z_on, z], -1), -1)                   # [B, H, n, 1+N]
    if not soup:
        reads = mem_apply(q[:, :, None], CK1, CK2, gamma[:, None, None, :])
        return g[..., :1] * r_on + torch.einsum("bhtn,bhntd->bhtd", g[..., 1:], reads)
    # soup: per token W_bar_j = g_on W_j(t) + sum_i g_i W_i,j, then one read each
    g_on = g[..., 0, None, None]
    W1b = g_on * _per_token(runs, 1) + torch.einsum("bhtn,bhnde->bhtde", g[..., 1:], CK1)
    W2b = g_on * _per_token(runs, 2) + torch.einsum("bhtn,bhnde->bhtde", g[..., 1:], CK2)
    return mem_apply(q[..., None, :], W1b, W2b, gamma[:, None, None, :])[..., 0, :]
