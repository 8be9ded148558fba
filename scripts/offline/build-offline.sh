#!/usr/bin/env bash
# On an offline CUDA host: builds mcserve against the host's PyTorch LibTorch
# and CUDA, taking gRPC, Protobuf, Abseil, prometheus-cpp, nlohmann-json and
# GoogleTest from a bundle of Debian .deb files made beforehand on a
# connected machine (bundle-debs.sh). Nothing is installed system-wide: the
# .debs are unpacked under BUNDLE/root. The Dockerfile runs this same script.
#   scripts/offline/build-offline.sh [BUNDLE] [cmake args...]
# Environment: PYTHON (default python3) finds torch; MCSERVE_BUILD (default
# build/) is the build directory; MCSERVE_CUDA=0 skips the CUDA kernels.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

bundle="$(cd "${1:-$MCSERVE_ROOT/.deb}" && pwd)"
[ $# -gt 0 ] && shift
root="$bundle/root"
ls "$bundle"/*.deb >/dev/null 2>&1 || die "no .deb files in $bundle (make them with scripts/offline/bundle-debs.sh)"

if [ ! -f "$root/.unpacked" ] || [ -n "$(find "$bundle" -maxdepth 1 -name '*.deb' -newer "$root/.unpacked")" ]; then
  log "unpacking $(ls "$bundle"/*.deb | wc -l) packages into $root"
  rm -rf "$root" && mkdir -p "$root"
  for deb in "$bundle"/*.deb; do
    if command -v dpkg-deb >/dev/null; then dpkg-deb -x "$deb" "$root"
    else (cd "$root" && ar p "$deb" "$(ar t "$deb" | grep '^data.tar')" | tar -x --zstd -f - 2>/dev/null ||
          ar p "$deb" "$(ar t "$deb" | grep '^data.tar')" | tar -xJf -)
    fi
  done
  touch "$root/.unpacked"
fi
libdir="$root/usr/lib/$(uname -m)-linux-gnu"
export PATH="$root/usr/bin:$PATH"
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

args=(-DCMAKE_PREFIX_PATH="$root/usr" -DProtobuf_PROTOC_EXECUTABLE="$root/usr/bin/protoc")
torch_dir="$("${PYTHON:-python3}" -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null || true)"
if [ -n "$torch_dir" ] && [ -d "$torch_dir/share/cmake/Torch" ]; then
  log "LibTorch from PyTorch at $torch_dir"
  args+=(-DMCSERVE_LIBTORCH="$torch_dir")
else
  log "no PyTorch with LibTorch CMake files for ${PYTHON:-python3}; using the system LibTorch"
fi
if [ "${MCSERVE_CUDA:-1}" != 0 ] && command -v nvcc >/dev/null; then
  args+=(-DMCSERVE_CUDA=ON)
fi
"$MCSERVE_ROOT/scripts/build.sh" "${args[@]}" "$@"

# What running the binaries needs: the bundle's shared libraries.
cat > "$MCSERVE_BUILD/offline-env.sh" <<ENV
# Source before running mcserve from this build: the bundle's libraries.
export LD_LIBRARY_PATH="$libdir\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
ENV
log "built; run with: source $MCSERVE_BUILD/offline-env.sh"
