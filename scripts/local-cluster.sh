#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, for `orchestrator k8s run` and its
# end-to-end tests, with no Docker engine, no kind and no container registry:
#
#   scripts/local-cluster.sh build          Debian packages; Kubernetes + CoreDNS built from the
#                                           Go module proxy into a cache (skipped when cached)
#   scripts/local-cluster.sh up             build if needed, start, import the project image;
#                                           ends with `export KUBECONFIG=…` (idempotent)
#   scripts/local-cluster.sh image [--dockerfile]
#                                           (re)build the project image and import it: from
#                                           target/release (default, seconds) or the Dockerfile
#   scripts/local-cluster.sh status         what runs
#   scripts/local-cluster.sh down [--wipe]  stop everything by recorded pid, remove the pods'
#                                           network namespaces and cni0, restore sysctls;
#                                           --wipe also forgets the cluster's state
#   scripts/local-cluster.sh kubeconfig     the admin kubeconfig's path
#
# What runs (all on this machine, nothing listens beyond it but the API server on :6443):
# etcd, containerd + runc + the CNI bridge plugin (Debian's packages), kube-apiserver,
# kube-controller-manager, kube-scheduler and kubelet (Kubernetes, pinned in
# scripts/local-cluster/k8s/go.mod), and CoreDNS (scripts/local-cluster/coredns) on the pod
# bridge's address. No kube-proxy: nothing the testbed does uses a ClusterIP (its Service is
# headless, the launcher reaches pods through the API server's pod proxy, pods never call
# the API); the Service range is blackholed so that nothing can leak towards it.
# docs/kubernetes.md explains each choice and the measured times.
#
# Environment: PUBSUB_TESTBED_CACHE (binary cache, default /var/cache/pubsub-testbed),
# LOCAL_CLUSTER_STATE (default /var/lib/pubsub-testbed/local-cluster). Needs root.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HERE=$ROOT/scripts/local-cluster
K8S_VERSION=v1.34.4
COREDNS_VERSION=1.14.7
CACHE=${PUBSUB_TESTBED_CACHE:-/var/cache/pubsub-testbed}/local-cluster/$K8S_VERSION
BIN=$CACHE/bin
S=${LOCAL_CLUSTER_STATE:-/var/lib/pubsub-testbed/local-cluster}
R=/run/pubsub-testbed-local-cluster
NODE=local-node
POD_CIDR=10.244.0.0/24
GW=10.244.0.1
SERVICE_CIDR=10.96.0.0/24
SOCK=$R/containerd.sock
IMAGE=docker.io/library/pubsub-testbed:dev
PAUSE_IMAGE=registry.k8s.io/pause:3.10
COMPONENTS=(etcd containerd kube-apiserver kube-controller-manager kube-scheduler kubelet coredns)
# The kernel settings the kubelet requires (it would set them itself) and the one the CNI
# bridge sets (ip_forward): saved by `up`, restored by `down`.
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward)
SYSCTL_VALUES=(1 0 10 1 1000000 25000000 1)
PACKAGES=(etcd-server containerd runc containernetworking-plugins conntrack iptables podman
  debootstrap gcc libc6-dev openssl curl)

t0=$(date +%s%N)
step() {
  local ms=$((($(date +%s%N) - t0) / 1000000))
  printf '[%d.%ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*" >&2
}
die() { echo "error: $*" >&2; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "run as root (it starts a kubelet, containerd and changes sysctls)"; }

# (Pipelines end in `grep … >/dev/null`, not `grep -q`: under pipefail, grep -q quitting
# early makes the writer's SIGPIPE fail the test.)

# ---- packages and binaries -------------------------------------------------------------

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep 'install ok installed' >/dev/null || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  step "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The Go linker flags that stamp the version into the components (`kubelet --version`, the
# API server's /version); the same flags every time, so Go's build cache is reused.
ldflags() {
  local minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  echo "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitTreeState=clean"
}

k8s_cached() {
  local b
  for b in kube-apiserver kube-controller-manager kube-scheduler kubelet; do
    [ -x "$BIN/$b" ] && "$BIN/$b" --version 2>/dev/null | grep -x "Kubernetes $K8S_VERSION" >/dev/null || return 1
  done
}

coredns_cached() {
  [ -x "$BIN/coredns" ] && "$BIN/coredns" -version 2>/dev/null | grep "^CoreDNS-$COREDNS_VERSION\$" >/dev/null
}

build() {
  need_root
  install_packages
  command -v go >/dev/null || die "Go is needed to build Kubernetes (go.mod: $(sed -n 's/^go //p' "$HERE/k8s/go.mod") or later)"
  grep -Eq "^\s+k8s.io/kubernetes $K8S_VERSION( //.*)?\$" "$HERE/k8s/go.mod" || die "$HERE/k8s/go.mod does not require k8s.io/kubernetes $K8S_VERSION"
  mkdir -p "$BIN"
  exec 9>"$CACHE/.build.lock"
  flock 9 # one build at a time; a second caller waits and then finds the cache filled
  if k8s_cached; then
    step "Kubernetes $K8S_VERSION: cached in $BIN"
  else
    step "building Kubernetes $K8S_VERSION (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet): cold about 20 min on 2 cores"
    (cd "$HERE/k8s" && nice -n 10 go build -trimpath -ldflags "$(ldflags)" -o "$BIN/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet)
    k8s_cached || die "the build did not produce Kubernetes $K8S_VERSION binaries in $BIN"
  fi
  if coredns_cached; then
    step "CoreDNS $COREDNS_VERSION: cached"
  else
    step "building CoreDNS $COREDNS_VERSION: cold about 6 min"
    (cd "$HERE/coredns" && nice -n 10 go build -trimpath -ldflags "-s -w" -o "$BIN/coredns" .)
    coredns_cached || die "the build did not produce CoreDNS $COREDNS_VERSION in $BIN"
  fi
  if [ ! -x "$BIN/pause" ]; then
    gcc -O2 -static -o "$BIN/pause" "$HERE/pause.c" && strip "$BIN/pause"
  fi
  step "binaries ready in $BIN"
}

# ---- processes, recorded by pid (and start time, so a reused pid is never signalled) ----

pid_file() { echo "$R/$1.pid"; }
start_time() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null; }

# running NAME: prints the pid of NAME if the process we recorded still runs.
running() {
  local f pid st
  f=$(pid_file "$1")
  [ -f "$f" ] || return 1
  read -r pid st <"$f"
  [ -n "$pid" ] && [ "$(start_time "$pid")" = "$st" ] || return 1
  echo "$pid"
}

start() {
  local n=$1
  shift
  if running "$n" >/dev/null; then
    step "$n already running (pid $(running "$n"))"
    return
  fi
  setsid "$@" >>"$S/logs/$n.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid $(start_time "$pid")" >"$(pid_file "$n")"
  step "started $n (pid $pid, log $S/logs/$n.log)"
}

# stop NAME…: SIGTERM to each (together), then SIGKILL what is left after 10 s.
stop() {
  local n pid pids=() names=()
  for n in "$@"; do
    if pid=$(running "$n"); then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
      names+=("$n")
    fi
    rm -f "$(pid_file "$n")"
  done
  local i
  for _ in $(seq 1 100); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for i in "${!pids[@]}"; do
    kill -0 "${pids[$i]}" 2>/dev/null && kill -KILL "${pids[$i]}" 2>/dev/null
    step "stopped ${names[$i]} (pid ${pids[$i]})"
  done
}

# wait_for SECONDS WHAT COMMAND…: polls every 0.5 s.
wait_for() {
  local limit=$1 what=$2 i
  shift 2
  for i in $(seq 1 $((limit * 2))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  die "timed out after ${limit}s waiting for $what (logs in $S/logs)"
}

api() { # api PATH: GET through the admin's client certificate
  curl -sf --max-time 5 --cacert "$S/pki/ca.crt" --cert "$S/pki/admin.crt" --key "$S/pki/admin.key" \
    "https://127.0.0.1:6443$1"
}

node_ready() { api "/api/v1/nodes/$NODE" | tr -d ' \n' | grep '"type":"Ready","status":"True"' >/dev/null; }

# ---- certificates and kubeconfigs ---------------------------------------------------------

pki() {
  local ip=$1 d=$S/pki
  [ -f "$d/ca.crt" ] && grep -qx "$ip" "$d/node-ip" 2>/dev/null && return
  rm -rf "$d"
  mkdir -p "$d"
  step "certificates (openssl) for $ip"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/ca.key" -subj /CN=pubsub-testbed-local-ca \
    -days 3650 -out "$d/ca.crt" 2>/dev/null
  cert apiserver kube-apiserver "" \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:10.96.0.1,IP:$ip"
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  cert admin kubernetes-admin system:masters
  cert controller-manager system:kube-controller-manager ""
  cert scheduler system:kube-scheduler ""
  cert kubelet "system:node:$NODE" system:nodes "DNS:$NODE,IP:$ip,IP:127.0.0.1"
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  local who
  for who in admin controller-manager scheduler kubelet; do kubeconfig "$who"; done
  echo "$ip" >"$d/node-ip"
}

cert() { # cert FILE CN O [SAN]
  local d=$S/pki f=$1 cn=$2 o=$3 san=${4:-}
  openssl req -newkey rsa:2048 -nodes -keyout "$d/$f.key" -subj "/CN=$cn${o:+/O=$o}" -out "$d/$f.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth,clientAuth"
    [ -z "$san" ] || echo "subjectAltName=$san"
  } >"$d/$f.ext"
  openssl x509 -req -in "$d/$f.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 3650 \
    -extfile "$d/$f.ext" -out "$d/$f.crt" 2>/dev/null
  rm -f "$d/$f.csr" "$d/$f.ext"
}

kubeconfig() {
  cat >"$S/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local-cluster
  cluster:
    certificate-authority: $S/pki/ca.crt
    server: https://127.0.0.1:6443
users:
- name: $1
  user:
    client-certificate: $S/pki/$1.crt
    client-key: $S/pki/$1.key
contexts:
- name: local-cluster
  context: {cluster: local-cluster, user: $1}
current-context: local-cluster
EOF
}

# ---- configuration files ----------------------------------------------------------------

write_configs() {
  mkdir -p "$S/cni"
  # bridge cni0 with the pods' gateway; no masquerade: pod traffic never leaves this machine.
  cat >"$S/cni/10-local-cluster.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "local-cluster", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$S/cni-ipam",
            "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$GW"}]]}}]}
EOF
  cat >"$S/containerd.toml" <<EOF
version = 2
root = "$S/containerd"
state = "$R/containerd"
[grpc]
  address = "$SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Without CAP_SYS_RESOURCE (as in this sandbox) not even root may lower oom_score_adj, and
  # runc then fails every pod sandbox ("can't get final child's PID from pipe: EOF");
  # containerd clamps the pods' scores to its own instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$S/cni"
EOF
  local cgroupv1=true
  [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] && cgroupv1=false
  cat >"$S/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$S/pki/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$S/pki/kubelet.crt"
tlsPrivateKeyFile: "$S/pki/kubelet.key"
# No systemd here: cgroupfs. On a cgroup v1 host ($cgroupv1 here) the kubelet must be told
# that v1 is fine (Kubernetes 1.35 stops defaulting this to false).
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: "unix://$SOCK"
clusterDNS: ["$GW"]
clusterDomain: cluster.local
podCIDR: "$POD_CIDR"
resolvConf: /etc/resolv.conf
serializeImagePulls: false
# Imported images are never garbage-collected (there is no registry to pull them again).
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
maxPods: 110
# Its iptables chains are for kube-proxy, which does not run here: leave iptables alone.
makeIPTablesUtilChains: false
EOF
  # kubeadm's Corefile without forward (no upstream DNS: only cluster names resolve).
  cat >"$S/Corefile" <<EOF
.:53 {
    bind $GW
    errors
    health 127.0.0.1:18080
    ready 127.0.0.1:18181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $S/admin.kubeconfig local-cluster
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    cache 30
    loop
}
EOF
}

# ---- sysctls, bridge, routes -------------------------------------------------------------

set_sysctls() {
  if [ ! -f "$S/sysctl.saved" ]; then
    local k
    for k in "${SYSCTLS[@]}"; do echo "$k=$(sysctl -n "$k")"; done >"$S/sysctl.saved"
  fi
  local i
  for i in "${!SYSCTLS[@]}"; do sysctl -qw "${SYSCTLS[$i]}=${SYSCTL_VALUES[$i]}"; done
}

restore_sysctls() {
  [ -f "$S/sysctl.saved" ] || return 0
  local kv
  while read -r kv; do sysctl -qw "$kv"; done <"$S/sysctl.saved"
  rm -f "$S/sysctl.saved"
  step "sysctls restored"
}

# The kubelet's iptables chains (KUBE-*), should a kubelet with makeIPTablesUtilChains on
# have made them: the jumps to them, then the chains.
remove_kube_iptables() {
  local ipt t rule chain
  for ipt in iptables ip6tables; do
    command -v "$ipt-save" >/dev/null || continue
    for t in mangle filter nat; do
      "$ipt-save" -t "$t" 2>/dev/null | grep ':KUBE-' >/dev/null || continue
      { "$ipt-save" -t "$t" | grep -E '^-A [A-Z]+ .*-j KUBE-' || true; } | while read -r rule; do
        eval "$ipt -t $t -D ${rule#-A }" 2>/dev/null || true
      done
      for chain in $("$ipt-save" -t "$t" | sed -n 's/^:\(KUBE-[A-Z-]*\) .*/\1/p'); do
        "$ipt" -t "$t" -F "$chain" 2>/dev/null || true
        "$ipt" -t "$t" -X "$chain" 2>/dev/null || true
      done
      step "removed the kubelet's $ipt chains ($t)"
    done
  done
}

# ---- images ------------------------------------------------------------------------------

ctr_() { ctr --address "$SOCK" -n k8s.io "$@"; }

pause_image() {
  ctr_ images ls -q | grep -x "$PAUSE_IMAGE" >/dev/null && return
  mkdir -p "$S/images"
  if [ ! -f "$S/images/pause.tar" ]; then
    local d
    d=$(mktemp -d)
    cp "$BIN/pause" "$d/pause"
    tar -C "$d" -cf "$d/rootfs.tar" pause
    podman --runtime runc --cgroup-manager=cgroupfs import -q --change 'ENTRYPOINT ["/pause"]' \
      "$d/rootfs.tar" "$PAUSE_IMAGE" >/dev/null
    podman --runtime runc --cgroup-manager=cgroupfs save -q --format docker-archive -o "$S/images/pause.tar" "$PAUSE_IMAGE"
    rm -rf "$d"
  fi
  ctr_ images import "$S/images/pause.tar" >/dev/null
  step "imported $PAUSE_IMAGE (stand-in built from scripts/local-cluster/pause.c)"
}

# image [--dockerfile]: the project image into containerd under the name the rendered objects
# use (`pubsub-testbed:dev` is docker.io/library/pubsub-testbed:dev to containerd).
image() {
  running containerd >/dev/null || die "the cluster is not up: scripts/local-cluster.sh up"
  mkdir -p "$S/images"
  local archive=$S/images/pubsub-testbed.tar
  if [ "${1:-}" = --dockerfile ]; then
    step "project image from the Dockerfile (podman; a cold release build takes about 15 min)"
    "$ROOT/scripts/podman-build.sh" --tag "$IMAGE" --no-smoke --save "$archive"
  else
    local rel=$ROOT/target/release
    [ -x "$rel/orchestrator" ] && [ -x "$rel/pubsub-node" ] ||
      die "no release binaries: cargo build --release -p pubsub-node -p orchestrator --features orchestrator/k8s (or: image --dockerfile)"
    "$rel/orchestrator" k8s --help >/dev/null 2>&1 ||
      die "$rel/orchestrator was built without the k8s feature: cargo build --release -p orchestrator --features k8s"
    step "project image from $rel (the Dockerfile's runtime stage)"
    "$ROOT/scripts/podman-build.sh" --tag "$IMAGE" --from-binaries "$rel" --no-smoke --save "$archive"
  fi
  ctr_ images import "$archive" >/dev/null
  step "imported $IMAGE into containerd (k8s.io)"
}

# ---- up / down / status ------------------------------------------------------------------

host_ip() {
  local ip
  ip=$(ip -4 -o route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
  [ -n "$ip" ] || ip=$(hostname -I | awk '{print $1}')
  [ -n "$ip" ] || die "cannot tell this machine's address"
  echo "$ip"
}

up() {
  need_root
  if k8s_cached && coredns_cached && [ -x "$BIN/pause" ]; then install_packages; else build; fi
  mkdir -p "$S/logs" "$R"
  local ip
  ip=$(host_ip)
  pki "$ip"
  write_configs
  set_sysctls
  # Nothing may use a ClusterIP here (no kube-proxy): packets towards the Service range are
  # dropped on this machine instead of following the default route.
  ip route show type blackhole | grep "^blackhole $SERVICE_CIDR" >/dev/null || ip route add blackhole "$SERVICE_CIDR"

  start etcd etcd --name local-cluster --data-dir "$S/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster local-cluster=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381
  start containerd containerd --config "$S/containerd.toml"
  # The bridge exists before the first pod, so that CoreDNS can bind the pods' gateway.
  ip link show cni0 >/dev/null 2>&1 || ip link add cni0 type bridge
  ip -4 addr show cni0 | grep "inet $GW/" >/dev/null || ip addr add "$GW/24" dev cni0
  ip link set cni0 up
  wait_for 60 etcd curl -sf http://127.0.0.1:2379/health
  start kube-apiserver "$BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=0.0.0.0 --secure-port=6443 --advertise-address="$ip" \
    --client-ca-file="$S/pki/ca.crt" --tls-cert-file="$S/pki/apiserver.crt" --tls-private-key-file="$S/pki/apiserver.key" \
    --kubelet-client-certificate="$S/pki/apiserver-kubelet-client.crt" --kubelet-client-key="$S/pki/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$S/pki/sa.pub" --service-account-signing-key-file="$S/pki/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction
  wait_for 60 containerd ctr --address "$SOCK" version
  pause_image
  wait_for 180 kube-apiserver api /readyz
  start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig="$S/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$S/controller-manager.kubeconfig" --authorization-kubeconfig="$S/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$S/pki/sa.key" --root-ca-file="$S/pki/ca.crt" \
    --cluster-signing-cert-file="$S/pki/ca.crt" --cluster-signing-key-file="$S/pki/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR"
  start kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$S/scheduler.kubeconfig" \
    --authentication-kubeconfig="$S/scheduler.kubeconfig" --authorization-kubeconfig="$S/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false
  start kubelet "$BIN/kubelet" --config="$S/kubelet.yaml" --kubeconfig="$S/kubelet.kubeconfig" \
    --root-dir="$S/kubelet" --hostname-override="$NODE" --node-ip="$ip" --v=1
  start coredns "$BIN/coredns" -conf "$S/Corefile"
  wait_for 180 "node $NODE Ready" node_ready
  wait_for 60 "CoreDNS ready" curl -sf http://127.0.0.1:18181/ready
  local orch=$ROOT/target/release/orchestrator
  if [ -x "$orch" ] && [ -x "$ROOT/target/release/pubsub-node" ] && "$orch" k8s --help >/dev/null 2>&1; then
    image
  else
    step "no image imported: build the release binaries with the k8s feature, then scripts/local-cluster.sh image"
    step "  cargo build --release -p pubsub-node -p orchestrator --features orchestrator/k8s"
  fi
  step "cluster up: node $NODE Ready, cluster DNS on $GW"
  echo "export KUBECONFIG=$S/admin.kubeconfig"
}

# The network namespaces of the pods that our containerd created (before it stops).
pod_netns() {
  [ -S "$SOCK" ] || return 0
  local c
  for c in $(ctr_ containers ls -q 2>/dev/null); do
    # A container without a pod network (not a sandbox) matches nothing: not a failure (with
    # pipefail it ended `down` here and left the cluster running).
    ctr_ containers info "$c" 2>/dev/null | grep -o '"/var/run/netns/cni-[0-9a-f-]*"' | tr -d '"' || true
  done | sort -u >>"$S/netns.list"
}

down() {
  need_root
  mkdir -p "$S"
  stop coredns kubelet kube-scheduler kube-controller-manager
  if running containerd >/dev/null && [ -S "$SOCK" ]; then
    pod_netns
    local t c
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s KILL "$t" >/dev/null 2>&1 || true; done
    sleep 1
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$t" >/dev/null 2>&1 || true; done
    for c in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$c" >/dev/null 2>&1 || true; done
  fi
  stop kube-apiserver containerd
  stop etcd
  # Shims of our containerd outlive it (they are meant to); they carry its socket in argv.
  local p
  for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $SOCK" || true); do
    kill -KILL "$p" 2>/dev/null && step "killed containerd shim $p"
  done
  if [ -f "$S/netns.list" ]; then
    local ns
    while read -r ns; do
      [ -e "$ns" ] || continue
      umount "$ns" 2>/dev/null || true
      rm -f "$ns" && step "removed network namespace $(basename "$ns")"
    done <"$S/netns.list"
    rm -f "$S/netns.list"
  fi
  if ip link show cni0 >/dev/null 2>&1; then ip link delete cni0 && step "removed cni0"; fi
  ip route del blackhole "$SERVICE_CIDR" 2>/dev/null || true
  remove_kube_iptables
  local m
  for m in $(awk -v s="$S/" -v r="$R/" 'index($2, s) == 1 || index($2, r) == 1 {print $2}' /proc/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  restore_sysctls
  # The kubelet's cgroups (cgroupfs): empty kubepods trees.
  for c in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  if [ "${1:-}" = --wipe ]; then
    rm -rf "$S" "$R"
    step "wiped $S (the binary cache $BIN stays)"
  fi
  step "down"
}

status() {
  local n pid any=0
  for n in "${COMPONENTS[@]}"; do
    if pid=$(running "$n"); then
      printf '%-24s running (pid %s)\n' "$n" "$pid"
      any=1
    else
      printf '%-24s not running\n' "$n"
    fi
  done
  if ip link show cni0 >/dev/null 2>&1; then echo "cni0                     present"; else echo "cni0                     absent"; fi
  if [ -f "$S/sysctl.saved" ]; then echo "sysctls                  changed (saved in $S/sysctl.saved)"; else echo "sysctls                  as before"; fi
  if running kube-apiserver >/dev/null && [ -f "$S/pki/admin.crt" ] && node_ready; then
    echo "node $NODE           Ready"
    echo "export KUBECONFIG=$S/admin.kubeconfig"
  fi
  if k8s_cached && coredns_cached; then echo "binaries                 cached in $BIN"; else echo "binaries                 not built (scripts/local-cluster.sh build)"; fi
  [ "$any" = 1 ] || return 0
}

case "${1:-}" in
  build) build ;;
  up) up ;;
  down) shift; down "$@" ;;
  status) status ;;
  image) need_root; shift; image "$@" ;;
  kubeconfig) echo "$S/admin.kubeconfig" ;;
  *)
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 64
    ;;
esac
