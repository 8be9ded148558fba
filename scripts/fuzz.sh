#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ with Debian's clang (ASan + UBSan +
# coverage on the parsers they exercise; the rest links from an existing
# build's libraries) and runs each for a bounded time from its committed
# seed corpus (fuzz/corpus/TARGET, copied: the committed one is not changed).
# Fails on any crash, leak, timeout or sanitizer report; the input that
# caused it is left in OUT/artifacts (add it to the target's regression
# corpus, fuzz/corpus/TARGET, once fixed: every later run replays it).
#   scripts/fuzz.sh [--build DIR] [--seconds N] [--out DIR] [TARGET...]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

build="$MCSERVE_BUILD" seconds=20 out="" targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(snapshot model_config safetensors generate_request metrics_http)
out="${out:-$build/fuzz}"
mkdir -p "$out/obj" "$out/artifacts"
src="$MCSERVE_ROOT"

# Each target and the sources it fuzzes (compiled instrumented).
declare -A sources=(
  [snapshot]="server/engine/session_snapshot.cc"
  [model_config]="server/model/config.cc server/model/fla_config.cc"
  [safetensors]="server/model/safetensors.cc"
  [generate_request]="server/rpc/validation.cc proto/wire/request_decoding.cc"
  [metrics_http]="server/metrics/metrics_routes.cc"
)
# C++17: Debian's LibTorch headers do not compile as C++20 with clang 14.
cxx=(clang++ -std=c++17 -O1 -g -fno-omit-frame-pointer -D_GLIBCXX_USE_CXX11_ABI=1
     -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
     -I"$src" -I"$build/proto/gen" -isystem /usr/include/torch/csrc/api/include
     $(pkg-config --cflags cpp-httplib))
libs=(-Wl,--start-group "$build/server/model/libmcserve_model.a" "$build/server/util/libmcserve_util.a"
      "$build/server/tokenizer/libmcserve_tokenizer.a" "$build/proto/libmcserve_proto.a"
      "$build/server/kernels/libmcserve_kernel_ops.a" "$build/server/kernels/libmcserve_kernels.a"
      -Wl,--end-group)
[ -f /usr/local/cuda/lib/libcudart.so ] && libs+=(/usr/local/cuda/lib/libcudart.so)
libs+=(-ltorch -ltorch_cpu -lc10 -lgrpc++ -lgrpc -lgpr -lprotobuf -lsentencepiece -lcpp-httplib
      -lprometheus-cpp-core $(ls /usr/lib/x86_64-linux-gnu/libabsl_*.so) -lpthread)

for t in "${targets[@]}"; do
  objs=()
  for f in fuzz/${t}_fuzz.cc ${sources[$t]}; do
    o="$out/obj/$(echo "$f" | tr / _).o"
    if [ ! -f "$o" ] || [ "$src/$f" -nt "$o" ]; then "${cxx[@]}" -c "$src/$f" -o "$o"; fi
    objs+=("$o")
  done
  clang++ -fsanitize=fuzzer,address,undefined "${objs[@]}" "${libs[@]}" -o "$out/${t}_fuzz"
  corpus="$out/corpus-$t"
  rm -rf "$corpus" && mkdir -p "$corpus" && cp "$src/fuzz/corpus/$t"/* "$corpus/"
  dict=() && [ -f "$src/fuzz/$t.dict" ] && dict=(-dict="$src/fuzz/$t.dict")
  log "fuzzing $t for ${seconds}s"
  "$out/${t}_fuzz" "${dict[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/${t}-" "$corpus" 2>"$out/$t.log" \
    || { tail -60 "$out/$t.log"; die "fuzz target $t failed: input in $out/artifacts"; }
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$out/$t.log" | tr '\n' ' '; echo
done
log "fuzzing passed: ${targets[*]}"
