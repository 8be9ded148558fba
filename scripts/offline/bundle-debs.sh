#!/usr/bin/env bash
# On a connected Debian 12 (bookworm) machine: downloads the .deb files an
# offline CUDA host needs to build mcserve (bundle-packages.txt plus their
# dependency closure, minus the C/C++ runtime every host has) into OUT
# (default .deb/ in the checkout, which git ignores).
#   scripts/offline/bundle-debs.sh [OUT]
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

out="${1:-$MCSERVE_ROOT/.deb}"
# Provided by any Linux host with a C++ toolchain: never bundled.
base='^(libc6|libc6-dev|libc-dev-bin|gcc-[0-9]+-base|libgcc-s1|libstdc\+\+6|linux-libc-dev|libcrypt1|libcrypt-dev|libnsl2|libnsl-dev|libtirpc3|libtirpc-dev|libtirpc-common|rpcsvc-proto)$'
mapfile -t wanted < <(package_list "$MCSERVE_ROOT/scripts/offline/bundle-packages.txt")
mapfile -t closure < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances "${wanted[@]}" | grep -v '^[ <]' | sort -u | grep -Ev "$base")
mkdir -p "$out"
log "downloading ${#closure[@]} packages into $out"
(cd "$out" && apt-get download "${closure[@]}" >/dev/null)
printf '%s\n' "${closure[@]}" > "$out/PACKAGES"
log "bundle: $(ls "$out"/*.deb | wc -l) files, $(du -sh "$out" | cut -f1)"
