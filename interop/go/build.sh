#!/usr/bin/env bash
# Builds the Go node (pubsub-node-go) against a chosen go-libp2p-pubsub, one binary per
# version, so that two versions can be variants of one benchmark.
#
#   interop/go/build.sh                 the version in go.mod (the default): bin/pubsub-node-go
#                                       and bin/pubsub-node-go-<that version>
#   interop/go/build.sh v0.14.2         a released go-libp2p-pubsub from the Go module proxy
#   interop/go/build.sh example.com/you/go-libp2p-pubsub@v0.0.0-20250101000000-abcdef123456
#                                       a fork published as a module (its go.mod may keep the
#                                       upstream module path; it replaces it)
#   interop/go/build.sh /path/to/checkout
#                                       a fork in a local directory (absolute or ./relative)
#   interop/go/build.sh psmon-origin psmon-states
#                                       a pinned variant: variants/<name>/ holds its go.mod and
#                                       go.sum (every module version and hash fixed, other
#                                       go-libp2p era included) and the node files that era
#                                       needs instead of the node's own
#
# Several versions may be given at once. Each lands in bin/pubsub-node-go-<name>, where
# <name> is the version text with every character outside [A-Za-z0-9._-] turned into '_'
# (example.com/you/fork@v1.2.3 -> example.com_you_fork_v1.2.3): a plan's `impl_version`
# names the binary the same way. The build happens in a temporary copy of the module, so
# go.mod and go.sum here never change.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
upstream=github.com/libp2p/go-libp2p-pubsub

if ! command -v go >/dev/null 2>&1; then
  echo "error: 'go' is not installed or not on PATH; the Go node needs Go 1.26 or newer (https://go.dev/dl/)." >&2
  exit 127
fi

default_version() {
  (cd "$here" && go list -m -f '{{.Version}}' "$upstream")
}

binary_name() {
  printf 'pubsub-node-go-%s' "$(printf '%s' "$1" | sed 's/[^A-Za-z0-9._-]/_/g')"
}

fail() {
  echo "error: could not build the Go node against go-libp2p-pubsub '$1': $2" >&2
  exit 1
}

# build_variant NAME: variants/NAME/go.mod and go.sum as they are (-mod=readonly: nothing is
# resolved anew), the variant's .go files replacing the node's files of the same name. A fork
# required under its own module path (not replacing the upstream one) is imported there.
build_variant() (
  name="$1"
  vdir="$here/variants/$name"
  out="$here/bin/$(binary_name "$name")"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  cp "$here"/*.go "$tmp"/
  rm -f "$tmp"/*_test.go
  cp "$vdir"/*.go "$vdir"/go.mod "$vdir"/go.sum "$tmp"/
  start=$(date +%s)
  cd "$tmp"
  fork="$(sed -n 's#^[[:space:]]*\([^[:space:]]*/go-libp2p-pubsub\) v[^[:space:]]*.*$#\1#p' go.mod | grep -v "^$upstream\$" | head -1 || true)"
  if [ -n "$fork" ]; then
    sed -i "s#^\([[:space:]]*[A-Za-z_.]* *\)\"$upstream\(/[^\"]*\)\{0,1\}\"\$#\1\"$fork\2\"#" ./*.go
  fi
  mkdir -p "$here/bin"
  CGO_ENABLED=0 go build -mod=readonly -trimpath -o "$out" . ||
    fail "$name" "the pinned variant does not build (see above; its modules come from the Go module proxy, hashes from variants/$name/go.sum)"
  echo "built $(basename "$out") in $(( $(date +%s) - start ))s: $("$out" --version)"
)

build_one() (
  version="$1"
  if [ -f "$here/variants/$version/go.mod" ]; then
    build_variant "$version"
    exit
  fi
  out="$here/bin/$(binary_name "$version")"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  cp "$here"/go.mod "$here"/go.sum "$here"/*.go "$tmp"/
  rm -f "$tmp"/*_test.go
  start=$(date +%s)
  cd "$tmp"
  case "$version" in
    /* | ./* | ../*)
      dir="$(cd "$here" && cd "$version" 2>/dev/null && pwd)" || fail "$version" "no such directory"
      [ -f "$dir/go.mod" ] || fail "$version" "$dir has no go.mod, so it is not a go-libp2p-pubsub checkout"
      go mod edit -replace "$upstream=$dir" || fail "$version" "go mod edit failed"
      ;;
    *@*)
      go mod edit -replace "$upstream=$version" || fail "$version" "go mod edit failed"
      ;;
    v*)
      go get "$upstream@$version" || fail "$version" "the Go module proxy does not serve it (see above; list versions with: go list -m -versions $upstream)"
      ;;
    *)
      echo "error: '$version' is not a version (v0.14.2), a module@version, a directory or a variant ($(cd "$here/variants" && ls -d -- */ | tr -d / | tr '\n' ' '| sed 's/ $//'))" >&2
      exit 2
      ;;
  esac
  go mod tidy || fail "$version" "go mod tidy failed (see above)"
  mkdir -p "$here/bin"
  CGO_ENABLED=0 go build -trimpath -o "$out" . || fail "$version" "it does not compile with this node (see above)"
  echo "built $(basename "$out") in $(( $(date +%s) - start ))s: $("$out" --version)"
)

if [ $# -eq 0 ]; then
  v="$(default_version)"
  build_one "$v"
  ln -sf "$(binary_name "$v")" "$here/bin/pubsub-node-go"
  echo "bin/pubsub-node-go -> $(binary_name "$v") (the default)"
else
  for v in "$@"; do
    build_one "$v"
  done
fi
