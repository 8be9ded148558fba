#!/usr/bin/env bash
# Installs dependencies, builds, and runs the whole test suite (CTest).
# Extra arguments go to ctest, e.g. -L unit or -R Generate.
#   scripts/test.sh [ctest args...]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

"$MCSERVE_ROOT/scripts/install-deps.sh"
"$MCSERVE_ROOT/scripts/build.sh"
log "running tests"
cd "$MCSERVE_BUILD"
exec ctest --output-on-failure --timeout 600 -j "$(nproc)" "$@"
