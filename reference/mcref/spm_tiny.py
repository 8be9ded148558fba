"""Trains tiny SentencePiece models for the server's tokenizer tests, and
writes what python3-sentencepiece makes of a list of test strings.

  /usr/bin/python3 -m mcref.spm_tiny --root REPO --out DIR

The models are trained, deterministically (one thread, every sentence, a
sorted list of input files), on text the project ships: docs/*.md and
README.md. Nothing binary is committed; CTest runs this as a fixture.

  DIR/tokenizer.model, DIR/golden.json
      BPE like Mistral's and Llama's: byte_fallback, identity normalization,
      spaces kept as they are (remove_extra_whitespaces off), a dummy-prefix
      space, split digits. vocab_size 512; unk 0, bos 1, eos 2, no pad.
  DIR/nmt/tokenizer.model, DIR/nmt/golden.json
      The same, but with SentencePiece's default normalizer (nmt_nfkc,
      extra whitespace removed), whose decoder strips every leading space.

golden.json: {"vocab_size", "bos_id", "eos_id", "unk_id", "cases": [...]}
with one case per test string: text, ids (no BOS), pieces, decoded
(Decode(ids)), decoded_after_bos (Decode([bos] + ids)) and prefix_decodes
(Decode(ids[:k]) for k = 0 .. len(ids)).
"""
import argparse
import glob
import json
import os

import sentencepiece as spm

VOCAB_SIZE = 512
UNK, BOS, EOS = 0, 1, 2

# ASCII, spaces (leading, repeated, trailing, alone), newlines and tabs,
# accented Latin, CJK and emoji (byte fallback: the docs hold none of them),
# digits, and the empty string.
TEST_STRINGS = [
    "",
    "x",
    " ",
    "Hello world",
    "The server streams text token by token.",
    " leading space",
    "   three leading spaces",
    "multiple   spaces  inside",
    "trailing space ",
    "line one\nline two\n\nline four\n",
    "\n",
    "tab\tseparated\tvalues",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "\U0001F600",
    "emoji \U0001F600 and \U0001F389!",
    "a\U0001F600b",
    "mixed: \u00e9\u65e5\U0001F600 end",
    "digits 12345 and 3.14",
    "checkpoint pool (mc-model.md \u00a76) \u2192 ok",
]

# What must fall back to bytes, so the tests really cover byte pieces.
MUST_BYTE_FALLBACK = ["\U0001F600", "\U0001F389", "\u65e5", "\u30c6"]


def training_files(root):
    files = sorted(glob.glob(os.path.join(root, "docs", "*.md")))
    files.append(os.path.join(root, "README.md"))
    for f in files:
        if not os.path.isfile(f):
            raise SystemExit(f"spm_tiny: missing training text {f}")
    return files


def train(files, out_dir, mistral_like):
    os.makedirs(out_dir, exist_ok=True)
    opts = dict(
        input=",".join(files),
        model_prefix=os.path.join(out_dir, "tokenizer"),
        model_type="bpe",
        vocab_size=VOCAB_SIZE,
        byte_fallback=True,
        unk_id=UNK, bos_id=BOS, eos_id=EOS, pad_id=-1,
        num_threads=1,
        input_sentence_size=0,  # every sentence: no random sampling
        shuffle_input_sentence=False,
        max_sentence_length=1 << 16,
        split_digits=True,
        minloglevel=2,
    )
    if mistral_like:
        opts.update(normalization_rule_name="identity", remove_extra_whitespaces=False,
                    add_dummy_prefix=True, allow_whitespace_only_pieces=True)
    # The test strings' CJK and emoji are not in the docs, so they fall back
    # to bytes (checked in golden()).
    spm.SentencePieceTrainer.train(**opts)
    return os.path.join(out_dir, "tokenizer.model")


def golden(model_path):
    sp = spm.SentencePieceProcessor(model_file=model_path)
    if sp.get_piece_size() != VOCAB_SIZE:
        raise SystemExit(f"spm_tiny: {model_path} has {sp.get_piece_size()} pieces, "
                         f"want {VOCAB_SIZE}")
    if (sp.unk_id(), sp.bos_id(), sp.eos_id()) != (UNK, BOS, EOS):
        raise SystemExit("spm_tiny: unexpected special ids")
    for s in MUST_BYTE_FALLBACK:
        if not all(sp.is_byte(i) for i in sp.encode(s) if sp.id_to_piece(i) != "\u2581"):
            raise SystemExit(f"spm_tiny: {s!r} does not fall back to bytes")
    cases = []
    for text in TEST_STRINGS:
        ids = sp.encode(text)
        cases.append({
            "text": text,
            "ids": ids,
            "pieces": [sp.id_to_piece(i) for i in ids],
            "decoded": sp.decode(ids),
            "decoded_after_bos": sp.decode([BOS] + ids),
            "prefix_decodes": [sp.decode(ids[:k]) for k in range(len(ids) + 1)],
        })
    return {"vocab_size": sp.get_piece_size(), "bos_id": sp.bos_id(), "eos_id": sp.eos_id(),
            "unk_id": sp.unk_id(), "cases": cases}


def write(files, out_dir, mistral_like):
    model = train(files, out_dir, mistral_like)
    g = golden(model)
    with open(os.path.join(out_dir, "golden.json"), "w", encoding="utf-8") as f:
        json.dump(g, f, indent=1)
    print(f"wrote {model}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True, help="repository root (training text)")
    ap.add_argument("--out", required=True, help="output directory")
    args = ap.parse_args()
    files = training_files(args.root)
    write(files, args.out, mistral_like=True)
    write(files, os.path.join(args.out, "nmt"), mistral_like=False)


if __name__ == "__main__":
    main()
