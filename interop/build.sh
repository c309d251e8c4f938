#!/usr/bin/env bash
# Builds the non-Rust node implementations in one command:
#
#   interop/build.sh          both: the Go node (default go-libp2p-pubsub version) and the JS node
#   interop/build.sh go       only the Go node   -> interop/go/bin/pubsub-node-go
#   interop/build.sh js       only the JS node   -> interop/js/node_modules (run src/main.js)
#
# More go-libp2p-pubsub versions: interop/go/build.sh VERSION... (see that script).
# The Rust node and orchestrator need none of this.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
what="${1:-all}"
case "$what" in
  all | go | js) ;;
  *)
    echo "usage: interop/build.sh [all|go|js]" >&2
    exit 2
    ;;
esac

need_go() { [ "$what" = all ] || [ "$what" = go ]; }
need_js() { [ "$what" = all ] || [ "$what" = js ]; }

# Check every tool first, so one message names everything that is missing.
missing=()
if need_go; then
  if ! command -v go >/dev/null 2>&1; then
    missing+=("go (Go 1.26 or newer, for interop/go; https://go.dev/dl/)")
  else
    gov="$(go env GOVERSION 2>/dev/null | sed 's/^go//')"
    if [ "$(printf '%s\n' "1.26" "${gov%%[-+ ]*}" | sort -V | head -1)" != "1.26" ]; then
      missing+=("go 1.26 or newer (found go$gov), for interop/go")
    fi
  fi
fi
if need_js; then
  if ! command -v node >/dev/null 2>&1; then
    missing+=("node (Node.js 20 or newer, for interop/js; https://nodejs.org/)")
  else
    major="$(node -p 'process.versions.node.split(".")[0]')"
    if [ "$major" -lt 20 ]; then
      missing+=("node 20 or newer (found $(node --version)), for interop/js")
    fi
  fi
  if ! command -v npm >/dev/null 2>&1; then
    missing+=("npm (comes with Node.js), for interop/js")
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "error: cannot build the interop nodes; missing:" >&2
  for m in "${missing[@]}"; do echo "  - $m" >&2; done
  echo "Build one implementation alone with 'interop/build.sh go' or 'interop/build.sh js'; the Rust node needs neither." >&2
  exit 127
fi

if need_go; then
  echo "== Go node (interop/go)"
  start=$(date +%s)
  "$here/go/build.sh"
  echo "   Go node built in $(( $(date +%s) - start ))s: interop/go/bin/pubsub-node-go"
fi
if need_js; then
  echo "== JS node (interop/js)"
  start=$(date +%s)
  (cd "$here/js" && npm ci --no-audit --no-fund --loglevel=error)
  node "$here/js/src/main.js" --version
  echo "   JS node installed in $(( $(date +%s) - start ))s: node interop/js/src/main.js"
fi
