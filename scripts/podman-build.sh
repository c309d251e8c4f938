#!/usr/bin/env bash
# Builds the project's Dockerfile with podman and checks that the image runs, on a machine
# with no Docker engine and no container registry (this project's dev machines and CI).
# Where a registry exists, `docker build -t pubsub-testbed:dev .` is all you need.
#
#   scripts/podman-build.sh [--tag NAME] [--save FILE.tar] [--no-smoke] [--from-binaries DIR]
#
# The image is named as Docker and containerd name it: `pubsub-testbed:dev` is tagged
# `docker.io/library/pubsub-testbed:dev` (podman alone would call it
# `localhost/pubsub-testbed:dev`, which a cluster then tries to pull from Docker Hub), so the
# archive of `--save` is what `kind load image-archive` and `ctr images import` need for the
# rendered objects' default `--image pubsub-testbed:dev`.
#
# `--from-binaries DIR` (e.g. target/release) skips the Rust build: the Dockerfile's runtime
# stage as written, with `orchestrator` and `pubsub-node` from DIR (built on a Debian
# bookworm host like the image's base, with `--features k8s`). Seconds instead of minutes.
#
# 1. Installs podman, runc and debootstrap from Debian's packages if missing, and writes
#    /etc/containers/containers.conf with `default_ulimits = []` (raising rlimits is refused
#    in this sandbox). podman runs as `podman --runtime runc --cgroup-manager=cgroupfs`.
# 2. Stand-in for `docker.io/library/debian:bookworm-slim`: `debootstrap --variant=minbase
#    bookworm` from the Debian mirror apt already uses, imported under that name.
# 3. Stand-in for the Rust builder image, `localhost/pubsub-testbed-rust:local`: that base
#    plus gcc and libc6-dev (Debian) plus this machine's Rust toolchain (`rustc --print
#    sysroot`) copied in, with cargo/rustc on PATH as in the official rust image.
# 4. `cargo fetch --locked` here, then `podman build --pull=never` with this machine's cargo
#    registry cache mounted into the builder and CARGO_NET_OFFLINE=true: the container needs
#    no network (this machine reaches crates.io through its own egress setup, which a
#    container does not share).
# 5. Smoke test: the binaries run as the non-root user, and a 5-node plan runs inside the
#    container with the local runner.
# Stand-ins are kept between runs (delete them with `podman rmi`); timings go to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=pubsub-testbed:dev
SAVE=""
SMOKE=1
FROM_BINARIES=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) TAG=$2; shift 2 ;;
    --save) SAVE=$2; shift 2 ;;
    --no-smoke) SMOKE=0; shift ;;
    --from-binaries) FROM_BINARIES=$(cd "$2" && pwd); shift 2 ;;
    *) echo "usage: $0 [--tag NAME] [--save FILE.tar] [--no-smoke] [--from-binaries DIR]" >&2; exit 64 ;;
  esac
done
# Fully qualified, as Docker and containerd read a short name.
case "${TAG%%/*}" in
  *.*|*:*|localhost) ;;
  *) if [[ "$TAG" == */* ]]; then TAG=docker.io/$TAG; else TAG=docker.io/library/$TAG; fi ;;
esac

BASE=docker.io/library/debian:bookworm-slim
BUILDER=localhost/pubsub-testbed-rust:local
PODMAN=(podman --runtime runc --cgroup-manager=cgroupfs)
t0=$(date +%s)
step() { echo "[$(( $(date +%s) - t0 ))s] $*" >&2; }

if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
  step "installing podman runc debootstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null
fi
if ! grep -qs 'default_ulimits' /etc/containers/containers.conf; then
  mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = []\n' >> /etc/containers/containers.conf
fi

mirror() {
  local m
  m=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1 || true)
  [ -n "$m" ] || m=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | head -n1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}

if ! "${PODMAN[@]}" image exists "$BASE"; then
  step "debootstrap bookworm (minbase) as $BASE"
  root=$(mktemp -d)
  debootstrap --variant=minbase bookworm "$root" "$(mirror)" >/dev/null
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | "${PODMAN[@]}" import - "$BASE" >/dev/null
  rm -rf "$root"
fi

if [ -n "$FROM_BINARIES" ]; then
  for b in orchestrator pubsub-node; do
    [ -x "$FROM_BINARIES/$b" ] || { echo "error: no $FROM_BINARIES/$b" >&2; exit 1; }
  done
  # The runtime stage, unchanged but for where the binaries come from.
  grep -q '^COPY --from=build /out/orchestrator /out/pubsub-node /usr/local/bin/$' Dockerfile ||
    { echo "error: the Dockerfile's runtime stage no longer copies /out/orchestrator /out/pubsub-node" >&2; exit 1; }
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  mkdir -p "$ctx/out"
  cp "$FROM_BINARIES/orchestrator" "$FROM_BINARIES/pubsub-node" "$ctx/out/"
  strip "$ctx/out/orchestrator" "$ctx/out/pubsub-node"
  cp -r testplans "$ctx/testplans"
  sed -n '/^ARG RUNTIME_IMAGE=/p' Dockerfile >"$ctx/Containerfile"
  sed -n '/^FROM ${RUNTIME_IMAGE}$/,$p' Dockerfile |
    sed 's#^COPY --from=build /out/orchestrator /out/pubsub-node #COPY out/orchestrator out/pubsub-node #' >>"$ctx/Containerfile"
  step "podman build -t $TAG (runtime stage, binaries from $FROM_BINARIES)"
  epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)
  "${PODMAN[@]}" build --pull=never --network host -q --build-arg RUNTIME_IMAGE="$BASE" --build-arg SOURCE_DATE_EPOCH="$epoch" \
    -t "$TAG" -f "$ctx/Containerfile" "$ctx" >/dev/null
elif ! "${PODMAN[@]}" image exists "$BUILDER"; then
  sysroot=$(rustc --print sysroot)
  step "Rust builder stand-in $BUILDER (gcc from Debian, toolchain from $sysroot)"
  "${PODMAN[@]}" rm -f pubsub-testbed-rust-standin >/dev/null 2>&1 || true
  "${PODMAN[@]}" run --name pubsub-testbed-rust-standin --network host \
    -v "$sysroot:/toolchain:ro" "$BASE" sh -c '
      set -e
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev ca-certificates >/dev/null
      rm -rf /var/lib/apt/lists/*
      mkdir -p /usr/local/rust /usr/local/cargo/bin
      cp -a /toolchain/bin /toolchain/lib /usr/local/rust/
      for b in cargo rustc rustdoc; do ln -s /usr/local/rust/bin/$b /usr/local/cargo/bin/$b; done
      /usr/local/cargo/bin/cargo --version'
  "${PODMAN[@]}" commit -q \
    --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV CARGO_HOME=/usr/local/cargo' \
    pubsub-testbed-rust-standin "$BUILDER" >/dev/null
  "${PODMAN[@]}" rm -f pubsub-testbed-rust-standin >/dev/null
fi

if [ -z "$FROM_BINARIES" ]; then
  step "cargo fetch --locked (crates for an offline build)"
  cargo fetch --locked >/dev/null
  registry="${CARGO_HOME:-$HOME/.cargo}/registry"

  step "podman build -t $TAG"
  epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)
  # --network host: the build needs no network, and so creates no bridge or firewall rules.
  "${PODMAN[@]}" build --pull=never --network host \
    -v "$registry:/usr/local/cargo/registry" \
    --build-arg CARGO_NET_OFFLINE=true \
    --build-arg RUST_IMAGE="$BUILDER" \
    --build-arg RUNTIME_IMAGE="$BASE" \
    --build-arg SOURCE_DATE_EPOCH="$epoch" \
    -t "$TAG" .
fi
step "built $TAG ($("${PODMAN[@]}" image inspect --format '{{.Size}}' "$TAG") bytes)"

if [ "$SMOKE" = 1 ]; then
  step "smoke test: binaries, user, a 5-node run inside the container"
  "${PODMAN[@]}" run --rm --network none "$TAG" sh -c 'id && orchestrator --version && pubsub-node --help >/dev/null 2>&1; orchestrator k8s --help | head -n 3'
  # Through `sh -c '…; …'` so the orchestrator is not PID 1 (see docs/kubernetes.md:
  # `docker run --init` for local runs in a container).
  "${PODMAN[@]}" run --rm --network none "$TAG" sh -c 'orchestrator run /usr/share/pubsub-testbed/testplans/simple-discovery.yaml \
    --set hosts=5 --set messages=5 --run-id podman-smoke; code=$?; exit $code'

fi
if [ -n "$SAVE" ]; then
  step "saving $TAG to $SAVE (for \`kind load image-archive $SAVE\`)"
  rm -f "$SAVE"
  "${PODMAN[@]}" save -q -o "$SAVE" "$TAG"
fi
step "done"
