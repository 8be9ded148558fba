#!/usr/bin/env bash
# On a CUDA host (offline is fine): builds mcserve from the .deb bundle
# (build-offline.sh) and verifies the CUDA path end to end:
#   1. kernel parity with the CPU reference (ctest -L cuda); a skip fails;
#   2. compute-sanitizer memcheck, racecheck and initcheck on the kernels;
#   3. the model's parity with the Python references (mc-lm, deep memory and fla), the engine and the
#      real gRPC server tests, all on the GPU (MCSERVE_TEST_DEVICE=cuda);
#   4. mcserve-kernel-bench, its tables written to $REPORT_DIR;
#   5. with FLA_PATH (a local flash-linear-attention checkout), the no-cache
#      peer bench/fla_peer.py against our aggregation-none step.
#   scripts/offline/gpu-check.sh [BUNDLE] [--quick]
# --quick benchmarks fewer shapes. Needs python3 with torch (the reference).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

bundle="${1:-$MCSERVE_ROOT/.deb}"
quick="${2:-}"
report="${REPORT_DIR:-$MCSERVE_BUILD}"
mkdir -p "$report"
python="$(command -v python3)"
MCSERVE_CUDA=1 "$MCSERVE_ROOT/scripts/offline/build-offline.sh" "$bundle" \
  -DMCSERVE_SYSTEM_TESTS=OFF -DMCSERVE_PYTHON="$python" -DCMAKE_CUDA_ARCHITECTURES=native
source "$MCSERVE_BUILD/offline-env.sh"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$report/gpu.txt"

log "1. kernel parity on the GPU"
(cd "$MCSERVE_BUILD" && ctest -L cuda --output-on-failure -j 4) | tee "$report/cuda-tests.txt"
if grep -q "Skipped\|Not Run" "$report/cuda-tests.txt"; then
  die "CUDA tests were skipped on a CUDA host"
fi

log "2. compute-sanitizer"
sanitizer="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
for tool in memcheck racecheck initcheck; do
  "$sanitizer" --tool "$tool" --error-exitcode 1 "$MCSERVE_BUILD/tests/cuda_kernel_test" \
    --gtest_filter='*grm_delta_decay_bf16*:*ssck4_hebbian_decay_f32*:*none_delta_nodecay_f32*:*Checkpoint*' \
    > "$report/sanitizer-$tool.txt" 2>&1 || { tail -40 "$report/sanitizer-$tool.txt"; die "$tool found errors"; }
  tail -1 "$report/sanitizer-$tool.txt"
done

log "3. parity, engine and server tests on CUDA"
(cd "$MCSERVE_BUILD" &&
  MCSERVE_TEST_DEVICE=cuda ctest -L 'parity|integration' --output-on-failure -j 4 &&
  MCSERVE_TEST_DEVICE=cuda ctest -R 'EnginePoolTest|LossyPolicyTest|FlaEngineTest|DeepEngineTest' --output-on-failure -j 4) |
  tee "$report/cuda-integration.txt" | grep -E "tests passed|tests failed"

log "4. kernel benchmark"
bench_args=()
[ "$quick" = --quick ] && bench_args=(--contexts=4096,65536 --batches=1,64)
"$MCSERVE_BUILD/bench/mcserve-kernel-bench" "${bench_args[@]}" | tee "$report/kernel-bench.md"
if [ -n "${FLA_PATH:-}" ]; then  # a local flash-linear-attention checkout, never committed
  log "5. no-cache peer: flash-linear-attention fused recurrent"
  python3 "$MCSERVE_ROOT/bench/fla_peer.py" --fla "$FLA_PATH" --ours "$report/kernel-bench.md" |
    tee "$report/fla-peer.md"
fi
log "GPU checks passed; reports in $report"
