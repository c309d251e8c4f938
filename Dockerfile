# pubsub-testbed image: `orchestrator` and `pubsub-node` on Debian bookworm, non-root.
# The same image runs the coordinator pod and every node pod on Kubernetes
# (see docs/kubernetes.md), and works for a local run too:
#   docker run --rm pubsub-testbed:dev orchestrator run /usr/share/pubsub-testbed/testplans/simple-discovery.yaml --set hosts=5
#
# Build (with a registry): docker build -t pubsub-testbed:dev .
# Build here (no registry, no Docker engine): scripts/podman-build.sh (podman, with local
# stand-ins for the two base images under the names below).
#
# Reproducible: pinned base images by argument, `--locked`, no timestamps in the binaries'
# paths (--remap-path-prefix), SOURCE_DATE_EPOCH for the image's own metadata, stripped,
# single codegen unit per crate as set in Cargo.toml's release profile.

# Any image with Rust >= 1.88 (edition 2024), cargo, a C compiler and libc headers.
ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
ARG SOURCE_DATE_EPOCH=0
# `k8s` gives the coordinator its `orchestrator k8s coordinate` command (and `k8s run`).
ARG CARGO_FEATURES=k8s
# `true` when the crates come from a registry cache mounted at /usr/local/cargo/registry
# (scripts/podman-build.sh) instead of the network.
ARG CARGO_NET_OFFLINE=false
ENV CARGO_NET_OFFLINE=${CARGO_NET_OFFLINE} \
    CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0 \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH} \
    RUSTFLAGS="--remap-path-prefix=/src=/pubsub-testbed --remap-path-prefix=/usr/local/cargo/registry/src=/cargo"
WORKDIR /src
# The workspace: every member (tests/dockerfile.rs checks this list against Cargo.toml).
COPY Cargo.toml Cargo.lock ./
COPY contract contract
COPY node node
COPY orchestrator orchestrator
COPY netsim netsim
COPY patches/futures-timer patches/futures-timer
COPY patches/libp2p-gossipsub patches/libp2p-gossipsub
RUN --mount=type=cache,target=/src/target \
    cargo build --release --locked -p pubsub-node -p orchestrator --features "orchestrator/${CARGO_FEATURES}" \
 && mkdir -p /out \
 && cp target/release/orchestrator target/release/pubsub-node /out/

FROM ${RUNTIME_IMAGE}
ARG SOURCE_DATE_EPOCH=0
LABEL org.opencontainers.image.title="pubsub-testbed" \
      org.opencontainers.image.description="Runs fleets of real libp2p pubsub peers from YAML test plans" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"
# uid/gid 10001: the pods' securityContext (orchestrator/src/k8s/render.rs IMAGE_UID) runs as it.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /work --shell /usr/sbin/nologin testbed \
 && mkdir -p /work /results \
 && chown testbed:testbed /work /results
COPY --from=build /out/orchestrator /out/pubsub-node /usr/local/bin/
COPY testplans /usr/share/pubsub-testbed/testplans
USER 10001:10001
WORKDIR /work
CMD ["orchestrator", "--help"]
