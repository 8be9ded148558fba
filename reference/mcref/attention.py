"""The softmax-attention baseline for the recall table: a causal Transformer
of the same width and block layout as MCLM (pre-norm RMSNorm, SwiGLU MLP),
with rotary position embeddings. Reference and training only; the server
does not serve it."""
import torch
import torch.nn.functional as F
from torch import nn

from .model import MLP, RMSNorm
from .config import MCConfig


def rotary(x, base=10000.0):
    """x [B, H, T, d] -> x with rotary position embedding applied."""
    d = x.shape[-1]
    half = d // 2
    freqs = base ** (-torch.arange(half, dtype=x.dtype, device=x.device) / half)
    ang = torch.arange(x.shape[2], dtype=x.dtype, device=x.device)[:, None] * freqs
    cos, sin = ang.cos(), ang.sin()
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)


def causal_attention(q, k, v):
    """softmax(q k^T / sqrt(d) + causal mask) v (torch 1.13 has no SDPA)."""
    T = q.shape[2]
    scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
    return scores.masked_fill(mask, -float("inf")).softmax(-1) @ v


class AttentionBlock(nn.Module):
    def __init__(self, c: MCConfig):
        super().__init__()
        hd = c.n_heads * c.head_dim
        self.c = c
        self.mixer_norm = RMSNorm(c.d_model, c.rms_eps)
        self.qkv = nn.Linear(c.d_model, 3 * hd, bias=False)
        self.o_proj = nn.Linear(hd, c.d_model, bias=False)
        self.mlp_norm = RMSNorm(c.d_model, c.rms_eps)
        self.mlp = MLP(c)

    def forward(self, h):
        B, T, _ = h.shape
        q, k, v = self.qkv(self.mixer_norm(h)).view(B, T, 3, self.c.n_heads, self.c.head_dim) \
            .permute(2, 0, 3, 1, 4)
        o = causal_attention(rotary(q), rotary(k), v)
        h = h + self.o_proj(o.transpose(1, 2).reshape(B, T, -1))
        return h + self.mlp(self.mlp_norm(h))


class AttentionLM(nn.Module):
    def __init__(self, d_model, n_layers, n_heads, head_dim, d_ff, vocab_size=258):
        super().__init__()
        c = MCConfig(vocab_size=vocab_size, d_model=d_model, n_layers=n_layers,
                     n_heads=n_heads, head_dim=head_dim, d_ff=d_ff, aggregation="none")
        self.embed = nn.Embedding(vocab_size, d_model)
        self.blocks = nn.ModuleList(AttentionBlock(c) for _ in range(n_layers))
        self.norm = RMSNorm(d_model, c.rms_eps)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, tokens):
        h = self.embed(tokens)
        for b in self.blocks:
            h = b(h)
        return self.lm_head(self.norm(h))
