#!/usr/bin/env bash
# Outside CI (about 10 minutes on 2 cores, 3 GB of disk): the real
# fla-hub/delta_net-1.3B-100B config with random bf16 weights, written in
# fla's exact layout (reference/mcref/fla_checkpoint.py, tensor by tensor),
# then (1) loaded and timed by mcserve-model-bench (prefill and decode tokens/s
# against the step's bytes/FLOPs floor on this machine) and (2) served by
# mcserve and answered over gRPC by mcserve-cli, recording the server's peak
# resident memory.
#   scripts/offline/fla-1p3b.sh [OUT_DIR]   (default /tmp/fla-1p3b)
# Needs a build (scripts/build.sh) and a SentencePiece model for the
# directory's tokenizer.model (the tiny test model is used: the checkpoint's
# vocabulary is larger, and the ids past it are never sampled).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
out=${1:-/tmp/fla-1p3b}
model="$out/delta_net-1.3B"
build=${MCSERVE_BUILD}
mkdir -p "$out"

if [ ! -f "$model/model.safetensors" ]; then
  log "writing $model (random bf16 weights)"
  (cd "$MCSERVE_ROOT/reference" &&
    /usr/bin/python3 -m mcref.fla_checkpoint --preset delta_net-1.3B --dtype bf16 --out "$model")
fi
if [ ! -f "$model/tokenizer.model" ]; then
  spm="$build/tests/spm_tiny/tokenizer.model"  # the tests' fixture, if they ran
  if [ ! -f "$spm" ]; then
    (cd "$MCSERVE_ROOT/reference" &&
      /usr/bin/python3 -m mcref.spm_tiny --root "$MCSERVE_ROOT" --out "$out/spm")
    spm="$out/spm/tokenizer.model"
  fi
  cp "$spm" "$model/tokenizer.model"
fi
du -sh "$model"

log "model bench (no MC, then mean with C=64)"
echo '{"aggregation": "mean", "segment_length": 64}' > "$out/mean.json"
for mc in "" "$out/mean.json"; do
  /usr/bin/time -f '{"phase":"rss","max_rss_kb":%M}' "$build/bench/mcserve-model-bench" \
    --model="$model" --mc_config="$mc" --prefill_tokens=256 --context=64 --batches=1,4 \
    --decode_steps=8 --repeats=2 2>&1 | tee "$out/bench${mc:+-mean}.jsonl"
done

log "serving over gRPC"
port=$((20000 + RANDOM % 20000))
/usr/bin/time -f '%M' -o "$out/server-rss-kb" "$build/server/mcserve" --model="$model" \
  --listen="127.0.0.1:$port" > "$out/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  "$build/client/mcserve-cli" --addr="127.0.0.1:$port" info > "$out/info.txt" 2>/dev/null && break
  sleep 1
done
cat "$out/info.txt"
"$build/client/mcserve-cli" --addr="127.0.0.1:$port" generate --max_tokens=8 \
  "The memory of a recurrent network" | tee "$out/generate.txt"
pkill -INT -P $server  # time(1) ignores SIGINT itself; the server drains and exits
wait $server || true
echo "server peak RSS: $(( $(cat "$out/server-rss-kb") / 1024 )) MiB"
