#!/usr/bin/env bash
# Reproduces models/default: the built-in model the server serves when
# started without --model. About 30 minutes on 2 CPU cores.
#   reference/train_default.sh [OUT_DIR]   (default: models/default)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../models/default}"
cd "$here"
PYTHONPATH="$here" exec /usr/bin/python3 -m mcref.train \
  --out "$out" --ckpt "${TMPDIR:-/tmp}/mcserve-default-train.pt" \
  --d_model 128 --n_layers 2 --n_heads 4 --head_dim 32 --d_ff 384 \
  --rule delta --decay scalar --aggregation grm --segment_length 32 --boundary continue \
  --steps 1500 --batch 16 --seq_len 256 --lr 3e-3 --seed 0 \
  --key_len 1 --value_len 1 --n_pairs 2-24 --recall_frac 0.8 --recall_only_loss --eval_pairs 8 \
  --log_every 100 --save_every 250
