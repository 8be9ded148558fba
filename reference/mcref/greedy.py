"""Greedy completion by the reference, for the serving tests: the recurrent
form in float64 on an exported model's float32 weights, with the server's
rules (docs/mc-model.md section 6: bos first, then the prompt's UTF-8 bytes;
only bytes 0-255 and eos are ever chosen; eos ends the completion).

  /usr/bin/python3 -m mcref.greedy --model DIR --prompt TEXT --max_tokens N --out FILE.json

FILE.json: {"prompt_ids": [...], "tokens": [...], "finish": "eos" | "length",
"min_margin": gap between the chosen and the runner-up logit, smallest over
the completion (a tiny margin would make a float32 server's argmax a coin
toss; the test checks it)}.
"""
import argparse
import json

import torch

from .export import load


def greedy(model, prompt_ids, max_tokens):
    c = model.c
    allowed = torch.full((c.vocab_size,), float("-inf"), dtype=torch.float64)
    allowed[:256] = 0
    allowed[c.eos_id] = 0
    with torch.no_grad():
        state = model.initial_state(1)
        for t in prompt_ids:
            logits = model.step(torch.tensor([t]), state)[0]
        out, margin, finish = [], float("inf"), "length"
        for _ in range(max_tokens):
            z = logits + allowed
            top = torch.topk(z, 2)
            margin = min(margin, float(top.values[0] - top.values[1]))
            tok = int(top.indices[0])
            if tok == c.eos_id:
                finish = "eos"
                break
            out.append(tok)
            logits = model.step(torch.tensor([tok]), state)[0]
    return out, finish, margin


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--max_tokens", type=int, default=32)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load(args.model).double()
    prompt_ids = [model.c.bos_id] + list(args.prompt.encode("utf-8"))
    tokens, finish, margin = greedy(model, prompt_ids, args.max_tokens)
    with open(args.out, "w") as f:
        json.dump({"prompt_ids": prompt_ids, "tokens": tokens, "finish": finish,
                   "min_margin": margin}, f)
    print(f"{len(tokens)} tokens ({finish}), smallest margin {margin:.3g}: "
          f"{bytes(tokens).decode('utf-8', 'replace')!r}")


if __name__ == "__main__":
    main()
