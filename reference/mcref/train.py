"""Trains an MC model (or the attention baseline) on the recall/text mixture.

  /usr/bin/python3 -m mcref.train --out models/default --steps 3000 ...

AdamW with linear warmup and cosine decay (or a constant rate), gradient clipping, a training
checkpoint every --save_every steps (resumed automatically from --ckpt), a
progress line every --log_every steps, and recall accuracy on held-out
examples. At the end the model is exported as the server loads it.
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn.functional as F

from . import data as data_mod
from . import export
from .config import MCConfig
from .data import Mixture, recall_eval_set
from .init import init_for_training
from .model import MCLM


def parse_pairs(s):
    if "-" in s:
        lo, hi = s.split("-")
        return (int(lo), int(hi))
    return int(s)


def build_parser():
    ap = argparse.ArgumentParser(description="Train an MC language model (mcref).")
    ap.add_argument("--out", help="export the trained model here (config.json + model.safetensors)")
    ap.add_argument("--ckpt", help="training checkpoint file (resumed if present)")
    ap.add_argument("--arch", default="mc", choices=("mc", "attention"))
    ap.add_argument("--d_model", type=int, default=128)
    ap.add_argument("--n_layers", type=int, default=2)
    ap.add_argument("--n_heads", type=int, default=4)
    ap.add_argument("--head_dim", type=int, default=32)
    ap.add_argument("--d_ff", type=int, default=384)
    ap.add_argument("--rule", default="delta")
    ap.add_argument("--decay", default="scalar")
    ap.add_argument("--aggregation", default="grm")
    ap.add_argument("--segment_length", type=int, default=32)
    ap.add_argument("--top_k", type=int, default=2)
    ap.add_argument("--boundary", default="continue")
    ap.add_argument("--memory", default="linear", choices=("linear", "mlp"),
                    help="memory.kind: the matrix memory, or the deep (MLP) memory of section 9")
    ap.add_argument("--expansion", type=int, default=4, help="deep memory: hidden width E*d")
    ap.add_argument("--mem_chunk", type=int, default=1,
                    help="deep memory: tokens per write (memory.chunk; not --chunk)")
    ap.add_argument("--lr_max", type=float, default=0.3,
                    help="deep memory: write step theta = lr_max * sigmoid(W_b x + b_b)")
    ap.add_argument("--no_momentum", action="store_true", help="deep memory: no momentum")
    ap.add_argument("--grad_clip", type=float, default=0.0,
                    help="deep memory: clip each write's gradient to this Frobenius norm (0: off)")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq_len", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=64, help="parallel piece length")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--schedule", default="cosine", choices=("cosine", "constant"),
                    help="after warmup: cosine decay to 0.1x, or a constant rate")
    ap.add_argument("--weight_decay", type=float, default=0.1)
    ap.add_argument("--n_pairs", type=parse_pairs, default=(2, 16),
                    help="facts per recall example: N or LO-HI")
    ap.add_argument("--n_queries", type=int, default=4)
    ap.add_argument("--key_len", type=int, default=3, help="letters per recall key")
    ap.add_argument("--value_len", type=int, default=3, help="digits per recall value")
    ap.add_argument("--recall_frac", type=float, default=0.7)
    ap.add_argument("--kv_sep", default="=",
                    help='key-value separator of the recall task ("" for a one-back lookup)')
    ap.add_argument("--no_packing", action="store_true",
                    help="one recall example per training sequence (padded), not packed")
    ap.add_argument("--recall_only_loss", action="store_true",
                    help="train only on the queried values (pure recall task)")
    ap.add_argument("--eval_pairs", type=int, default=8)
    ap.add_argument("--eval_examples", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--log_every", type=int, default=50)
    ap.add_argument("--save_every", type=int, default=500)
    ap.add_argument("--quiet", action="store_true")
    return ap


def make_model(args):
    if args.arch == "attention":
        from .attention import AttentionLM
        return AttentionLM(args.d_model, args.n_layers, args.n_heads, args.head_dim, args.d_ff)
    c = MCConfig(d_model=args.d_model, n_layers=args.n_layers, n_heads=args.n_heads,
                 head_dim=args.head_dim, d_ff=args.d_ff, rule=args.rule, decay=args.decay,
                 aggregation=args.aggregation, segment_length=args.segment_length,
                 top_k=args.top_k, boundary=args.boundary,
                 **(dict(memory_kind="mlp", expansion=args.expansion, mem_chunk=args.mem_chunk,
                         lr_max=args.lr_max, momentum=not args.no_momentum,
                         grad_clip=args.grad_clip)
                    if getattr(args, "memory", "linear") == "mlp" else {}))
    return MCLM(c)


def forward(model, tokens, chunk):
    if isinstance(model, MCLM):
        return model.forward_chunked(tokens, chunk=chunk)
    return model(tokens)


def lr_at(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    if args.schedule == "constant":
        return args.lr
    t = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


@torch.no_grad()
def recall_accuracy(model, n_pairs, n_queries, n_examples, chunk, seed=0, key_len=3,
                    value_len=3, per_query=None):
    """Fraction of queried values whose digits are all predicted (argmax,
    given the prefix): exactly what greedy decoding returns. If `per_query`
    is a list, it receives the accuracy of the 1st, 2nd, ... query of an
    example (a model that only eliminates values already asked for scores
    1/n, 1/(n-1), ... there; one that recalls scores evenly)."""
    model.eval()
    toks, spans = recall_eval_set(n_examples, n_pairs, n_queries, seed, key_len=key_len,
                                  value_len=value_len)
    correct = total = 0
    by_pos = [[0, 0] for _ in range(n_queries)]
    for i in range(0, n_examples, 32):
        logits = forward(model, toks[i:i + 32], chunk)
        pred = logits.argmax(-1)
        for j, sp in enumerate(spans[i:i + 32]):
            for q, (s, e) in enumerate(sp):
                total += 1
                # the token at position p is predicted by logits at p - 1
                ok = bool((pred[j, s - 1:e - 1] == toks[i + j, s:e]).all())
                correct += ok
                by_pos[q][0] += ok
                by_pos[q][1] += 1
    model.train()
    if per_query is not None:
        per_query[:] = [c / max(1, n) for c, n in by_pos if n]
    return correct / max(1, total)


def train(args):
    data_mod.KV_SEP = getattr(args, "kv_sep", "=")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = make_model(args)
    if isinstance(model, MCLM):
        init_for_training(model, args.seed)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.dim() < 2 or "norm" in name or "embed" in name else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    data = Mixture(args.seq_len, args.n_pairs, args.n_queries, args.recall_frac, args.seed,
                   recall_only_loss=args.recall_only_loss, key_len=args.key_len,
                   value_len=args.value_len, pack=not getattr(args, "no_packing", False))
    step = 0
    if args.ckpt and os.path.exists(args.ckpt):
        saved = torch.load(args.ckpt)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        data.rng.setstate(saved["data_rng"])
        step = saved["step"]
        if not args.quiet:
            print(f"resumed from {args.ckpt} at step {step}", flush=True)
    t0, tokens_seen, ema = time.time(), 0, None
    while step < args.steps:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        x, mask = data.batch(args.batch)
        logits = forward(model, x[:, :-1], args.chunk)
        loss_tok = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                   reduction="none")
        m = mask[:, 1:].reshape(-1)
        loss = (loss_tok * m).sum() / m.sum().clamp_min(1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens_seen += x[:, :-1].numel()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if not args.quiet and (step % args.log_every == 0 or step == args.steps):
            el = time.time() - t0
            print(f"step {step}/{args.steps} loss {ema:.3f} lr {lr_at(step, args):.2e} "
                  f"{tokens_seen / el:.0f} tok/s eta {el / tokens_seen * (args.steps - step) * x[:, :-1].numel():.0f}s",
                  flush=True)
        if args.ckpt and (step % args.save_every == 0 or step == args.steps):
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                        "data_rng": data.rng.getstate(), "step": step}, args.ckpt + ".tmp")
            os.replace(args.ckpt + ".tmp", args.ckpt)
    per_query = []
    acc = recall_accuracy(model, args.eval_pairs, args.n_queries, args.eval_examples, args.chunk,
                          key_len=args.key_len, value_len=args.value_len, per_query=per_query)
    if not args.quiet:
        print(f"recall accuracy ({args.eval_pairs} pairs, {args.n_queries} queries): {acc:.3f}"
              f" (by query: {' '.join(f'{a:.2f}' for a in per_query)})", flush=True)
    if args.out and isinstance(model, MCLM):
        export.export(model, args.out, metadata={"trained_by": "mcref.train",
                                                 "args": json.dumps(vars(args), default=str)})
    return model, acc


def main():
    train(build_parser().parse_args())


if __name__ == "__main__":
    main()
