#!/usr/bin/env bash
# From a fresh Debian machine to a running server: installs dependencies,
# builds, and serves the built-in default model on 127.0.0.1:50051.
# Arguments are passed to mcserve (see `build/server/mcserve --help`).
#   scripts/serve.sh [--listen=HOST:PORT] [--model=DIR] [flags...]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

"$MCSERVE_ROOT/scripts/install-deps.sh"
"$MCSERVE_ROOT/scripts/build.sh"
log "serving $MCSERVE_ROOT/models/default on 127.0.0.1:50051 (Ctrl-C to stop)"
log "try, in another shell: $MCSERVE_BUILD/client/mcserve-cli generate \"Hello\""
exec "$MCSERVE_BUILD/server/mcserve" --model="$MCSERVE_ROOT/models/default" \
  --listen=127.0.0.1:50051 "$@"
