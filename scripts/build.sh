#!/usr/bin/env bash
# Configures and builds mcserve into $MCSERVE_BUILD (default: build/).
# Extra arguments go to cmake, e.g. -DMCSERVE_LIBTORCH=/path/to/torch.
#   scripts/build.sh [-DOPTION=VALUE...]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

generator=()
[ -f "$MCSERVE_BUILD/CMakeCache.txt" ] || generator=(-G Ninja)
log "configuring $MCSERVE_BUILD"
cmake -S "$MCSERVE_ROOT" -B "$MCSERVE_BUILD" "${generator[@]}" "$@" >/dev/null
log "building (this takes a few minutes the first time)"
cmake --build "$MCSERVE_BUILD" -j "$(nproc)"
