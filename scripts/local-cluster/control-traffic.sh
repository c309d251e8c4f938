#!/usr/bin/env bash
# Bytes the coordinator receives and sends during a run on the local cluster
# (scripts/local-cluster.sh up): everything on the coordinator pod's network interface, read
# from the coordinator process's /proc/PID/net/dev once it starts (before any node exists)
# and after the run (before the results are fetched). That is the control channel of every
# node (hello, acks, snapshots, final results; commands the other way) plus the launcher's
# status polls through the API server and the kubelet's readiness probes, which are small.
#
#   scripts/local-cluster/control-traffic.sh PLAN [orchestrator k8s run options…]
#   e.g. scripts/local-cluster/control-traffic.sh testplans/k8s-scale.yaml --set nodes=100
#
# Prints one line: nodes, pods, seconds, bytes in/out in total and per node, and the size of
# the final results (run.json's nodes[].result) per node.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ORCH=${ORCHESTRATOR:-$ROOT/target/release/orchestrator}
[ $# -ge 1 ] || { sed -n '2,12p' "$0" >&2; exit 64; }
KUBECONFIG=${KUBECONFIG:-$("$ROOT/scripts/local-cluster.sh" kubeconfig)}
export KUBECONFIG
S=${LOCAL_CLUSTER_STATE:-/var/lib/pubsub-testbed/local-cluster}
id=traffic-$(date +%s)
out=$(mktemp -d)
# --keep: the coordinator stays for the second reading; the namespace is deleted below.
"$ORCH" k8s run "$@" --run-id "$id" --results "$out" --keep >"$out/launcher.out" 2>&1 &
launcher=$!
pid=""
for _ in $(seq 1 600); do
  pid=$(pgrep -f "orchestrator k8s coordinate .*--run-id $id" | head -n 1 || true)
  [ -n "$pid" ] && break
  sleep 0.1
done
[ -n "$pid" ] || { echo "error: no coordinator process for run $id" >&2; cat "$out/launcher.out" >&2; exit 1; }
counters() { awk '$1 == "eth0:" {print $2, $10}' "/proc/$pid/net/dev"; }
read -r rx0 tx0 < <(counters)
t0=$(date +%s.%N)
# The run is over when the coordinator says so (its results are then served, not yet fetched).
for _ in $(seq 1 30000); do
  grep -q "coordinator | coordinator: .*results in" "$out/launcher.out" 2>/dev/null && break
  kill -0 "$launcher" 2>/dev/null || break
  sleep 0.1
done
read -r rx1 tx1 < <(counters)
t1=$(date +%s.%N)
wait "$launcher" || true
dir=$(find "$out" -name run.json -printf '%h\n' | head -n 1)
python3 - "$dir/run.json" "$rx0" "$tx0" "$rx1" "$tx1" "$t0" "$t1" <<'PY'
import json, sys
rec = json.load(open(sys.argv[1]))
rx0, tx0, rx1, tx1 = map(int, sys.argv[2:6])
secs = float(sys.argv[7]) - float(sys.argv[6])
n = len(rec["nodes"])
k = rec.get("extra", {}).get("kubernetes", {})
pods = sum(1 for p in k.get("pods", []) if p["role"] != "the coordinator")
result = sum(len(json.dumps(x.get("result"))) for x in rec["nodes"]) / max(n, 1)
rx, tx = rx1 - rx0, tx1 - tx0
print(f"nodes {n} pods {pods} nodes_per_pod {k.get('nodes_per_pod')} run {secs:.1f} s "
      f"status {rec['outcome']['status']} delivery_ratio {rec['summary'].get('delivery_ratio')} "
      f"launch_to_ready {rec['summary'].get('launch_to_ready_ms')} ms | "
      f"coordinator in {rx} B ({rx / n:.0f} B/node, {rx / n / secs:.0f} B/node/s) "
      f"out {tx} B ({tx / n:.0f} B/node) | final result JSON {result:.0f} B/node")
PY
curl -sf -X DELETE --cacert "$S/pki/ca.crt" --cert "$S/pki/admin.crt" --key "$S/pki/admin.key" \
  "https://127.0.0.1:6443/api/v1/namespaces/testbed-$id" >/dev/null
echo "results: $dir" >&2
