#!/usr/bin/env bash
# Runs the objects `orchestrator k8s render` produces with the real image, as podman
# containers instead of pods: the coordinator Job's exact command, and for every completion
# index of every Job the node container's exact shell line and environment. This checks the
# image and the rendered commands together, short of a cluster (there is none here).
#
#   scripts/podman-k8s-sim.sh [--image pubsub-testbed:dev] [PLAN] [--set k=v ...]
#
# Stand-ins: host networking; `--add-host coordinator:127.0.0.1` for the headless Service's
# DNS name; 127.0.0.1 for status.podIP. The results land in target/k8s-sim/.
# Needs: the image (scripts/podman-build.sh), python3 with PyYAML.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=pubsub-testbed:dev
PLAN=testplans/k8s-smoke.yaml
SETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --image) IMAGE=$2; shift 2 ;;
    --set) SETS+=(--set "$2"); shift 2 ;;
    *) PLAN=$1; shift ;;
  esac
done
PODMAN=(podman --runtime runc --cgroup-manager=cgroupfs)
OUT=target/k8s-sim
rm -rf "$OUT" && mkdir -p "$OUT"
t0=$(date +%s)

# Render with the image's own orchestrator (the plan file is mounted read-only).
"${PODMAN[@]}" run --rm -v "$PWD/$PLAN:/in/plan.yaml:ro" "$IMAGE" \
  orchestrator k8s render /in/plan.yaml --run-id sim --namespace sim "${SETS[@]}" > "$OUT/objects.yaml"

python3 - "$OUT" "$IMAGE" <<'PY'
import json, sys, yaml
out, image = sys.argv[1], sys.argv[2]
docs = [d for d in yaml.safe_load_all(open(f"{out}/objects.yaml")) if d]
cm = next(d for d in docs if d["kind"] == "ConfigMap")
open(f"{out}/plan.yaml", "w").write(cm["data"]["plan.yaml"])
coordinator = next(d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] == "coordinator")
cmd = coordinator["spec"]["template"]["spec"]["containers"][0]["command"]
cmd = [a.replace("0.0.0.0:", "127.0.0.1:") for a in cmd]
json.dump(cmd, open(f"{out}/coordinator.json", "w"))
nodes = []
for job in (d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] != "coordinator"):
    c = job["spec"]["template"]["spec"]["containers"][0]
    for ci in range(job["spec"]["completions"]):
        env = {"JOB_COMPLETION_INDEX": str(ci)}
        for e in c["env"]:
            env[e["name"]] = e.get("value", "127.0.0.1")  # valueFrom status.podIP
        nodes.append({"name": f'{job["metadata"]["name"]}-{ci}', "command": c["command"], "env": env})
json.dump(nodes, open(f"{out}/nodes.json", "w"))
print(f"{len(nodes)} node pods, coordinator: {' '.join(cmd)}")
PY

cleanup() { "${PODMAN[@]}" rm -f -t 1 $("${PODMAN[@]}" ps -aq --filter label=pubsub-testbed-sim) >/dev/null 2>&1 || true; }
trap cleanup EXIT
COMMON=(--label pubsub-testbed-sim --network host --add-host coordinator:127.0.0.1 --read-only --tmpfs /tmp --user 10001:10001)
# /results is an emptyDir in the cluster; a world-writable host folder here.
mkdir -p "$OUT/coordinator-results" && chmod 1777 "$OUT/coordinator-results"
"${PODMAN[@]}" run -d --name sim-coordinator "${COMMON[@]}" -v "$PWD/$OUT/coordinator-results:/results" \
  -v "$PWD/$OUT/plan.yaml:/plan/plan.yaml:ro" "$IMAGE" \
  $(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))))' "$OUT/coordinator.json") >/dev/null
python3 - "$OUT" "$IMAGE" <<'PY' > "$OUT/run-nodes.sh"
import json, shlex, sys
out, image = sys.argv[1], sys.argv[2]
for n in json.load(open(f"{out}/nodes.json")):
    env = " ".join(f"-e {shlex.quote(k + '=' + v)}" for k, v in n["env"].items())
    cmd = " ".join(shlex.quote(a) for a in n["command"])
    print(f'"${{PODMAN[@]}}" run -d --name sim-{n["name"]} "${{COMMON[@]}}" {env} {shlex.quote(image)} {cmd} >/dev/null')
PY
source "$OUT/run-nodes.sh"
echo "[$(( $(date +%s) - t0 ))s] coordinator and $(grep -c 'run -d' "$OUT/run-nodes.sh") node containers started" >&2

status=""
for _ in $(seq 1 600); do
  status=$(curl -fsS http://127.0.0.1:7001/status 2>/dev/null || true)
  case "$status" in *'"running"'*|"") sleep 1 ;; *) break ;; esac
done
echo "[$(( $(date +%s) - t0 ))s] /status: $status" >&2
curl -fsS http://127.0.0.1:7001/results.tar -o "$OUT/results.tar"
mkdir -p "$OUT/results" && tar -xf "$OUT/results.tar" -C "$OUT/results"
"${PODMAN[@]}" logs sim-coordinator > "$OUT/coordinator.log" 2>&1 || true
python3 - "$OUT/results/run.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["summary"]
print(f'{r["outcome"]["status"]}: delivery ratio {s.get("delivery_ratio")} ({s["delivered"]} / {s["expected_deliveries"]}), '
      f'nodes {[ (n["index"], n["group"]) for n in r["nodes"] ]}')
sys.exit(0 if r["outcome"]["status"] == "passed" else 2)
PY
