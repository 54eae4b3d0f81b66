#!/usr/bin/env bash
# One real Kubernetes site of the test bed: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, and a node (kubelet, a private containerd with runc and CNI, kube-proxy),
# all in the site's own network namespace. Binaries from hack/install-kube.sh, containerd,
# runc and the CNI plugins from hack/install-node-runtime.sh.
#
# Usage: hack/site.sh up DIR [--name NAME] [--sandbox-image REF --sandbox-archive FILE] [--import FILE]...
#          start the site in DIR (idempotent: a site already up is left as it is); prints the
#          admin kubeconfig's path; DIR/site.json says the rest (addresses, socket, names).
#          Without --sandbox-image the pause image of hack/build-images.sh is used.
#          --import: OCI archives imported into the node's containerd (`ctr -n k8s.io
#          images import`); pods use them with imagePullPolicy: Never.
#        hack/site.sh import DIR FILE...   import more archives into a running site
#        hack/site.sh down DIR             stop it and remove every process, mount,
#                                          namespace and veth it made (idempotent), its
#                                          VM nodes first (hack/site-vm-node.sh)
#
# Topology: sites share one host bridge and reach each other only through their node
# addresses (nothing is routed or forwarded by the host: ip_forward stays as it is).
#
#   host netns                       site netns bms<N> (one per site)
#   ─────────────                    ────────────────────────────────────────────────
#   bmsites0 (bridge) 10.127.0.1/16  eth0 10.127.<N>.1/16  node 1's address: apiserver :6443,
#     ├── bms<N>h ◄──── veth ────►     kubelet :10250, hostPorts; etcd, controller-manager
#     └── bms<M>h ◄──── veth ────►     and scheduler on the namespace's 127.0.0.1
#                                    cni0 (bridge) 10.<128+N>.1.1/24  pods of node 1
#                                    no default route: nothing outside the sites is reached;
#                                    the service CIDR is routed to lo (kube-proxy DNATs it)
#
#   site N:  node k address 10.127.N.k   pod CIDR 10.<128+N>.0.0/16 (node k: 10.<128+N>.k.0/24)
#            service CIDR 10.96.0.0/16 (per site, served by the site's kube-proxy)
# Pod traffic leaving the node is masqueraded to the node's address (CNI bridge ipMasq), so
# a pod of site A reaches site B's node address and hostPorts, and nothing else of B.
#
# The containerd has no registry configuration at all and its sandbox image is the local
# pause image: nothing is ever pulled. Its root, state, socket, runc root, CNI state and pod
# network namespaces all live under DIR; so do the kubelet's --root-dir (its plugin
# registration dir included) and pod logs; `down` also detaches loop devices over files under
# DIR (a CSI driver's volumes: hack/site-csi.sh). The kubelet's root dir is a shared bind mount of
# itself (the host's / is private here) so that pods may use mount propagation.
set -euo pipefail
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=hack/lib/site-pki.sh
source "$ROOT/hack/lib/site-pki.sh"
# shellcheck source=hack/lib/kubelet-config.sh
source "$ROOT/hack/lib/kubelet-config.sh"
# shellcheck source=hack/lib/kube-proxy-config.sh
source "$ROOT/hack/lib/kube-proxy-config.sh"
# shellcheck source=hack/lib/containerd-config.sh
source "$ROOT/hack/lib/containerd-config.sh"
# shellcheck source=hack/lib/cni-conflist.sh
source "$ROOT/hack/lib/cni-conflist.sh"
# shellcheck source=hack/lib/kubeconfig.sh
source "$ROOT/hack/lib/kubeconfig.sh"
# shellcheck source=hack/lib/site-env.sh
source "$ROOT/hack/lib/site-env.sh"
# shellcheck source=hack/lib/processes.sh
source "$ROOT/hack/lib/processes.sh"
# shellcheck source=hack/lib/loop-devices.sh
source "$ROOT/hack/lib/loop-devices.sh"
# shellcheck source=hack/lib/timing.sh
source "$ROOT/hack/lib/timing.sh"
KUBE_VERSION=${KUBE_VERSION:-v1.36.3}
BIN=${BLOCKMIRROR_CACHE:-$HOME/.cache/blockmirror}/kube-$KUBE_VERSION/bin
CNI_BIN=${CNI_BIN:-/usr/lib/cni}
BRIDGE=bmsites0
BRIDGE_ADDR=10.127.0.1/16
SERVICE_CIDR=10.96.0.0/16
LOCK=/run/lock/blockmirror-sites.lock

SITE_LABEL=site
log() { printf 'site %s: %s\n' "$SITE_LABEL" "$*" >&2; }
die() { log "$*"; exit 1; }

PHASES=()
# phase NAME START: records how long NAME took since START (from `now`).
phase() {
  local s
  s=$(secs_since "$2")
  PHASES+=("$1 ${s}s")
  log "$1 took $s s"
}

# --- processes -----------------------------------------------------------------------

# pids_in_netns FILE...: processes whose network namespace is one of these namespace files.
pids_in_netns() {
  local f inodes=" " p ino
  for f in "$@"; do
    [[ -e $f ]] || continue
    ino=$(stat -L -c %i "$f" 2>/dev/null) || continue
    inodes+="net:[$ino] "
  done
  [[ $inodes == " " ]] && return 0
  for p in /proc/[0-9]*; do
    ino=$(readlink "$p/ns/net" 2>/dev/null) || continue
    [[ $inodes == *" $ino "* ]] && printf '%s\n' "${p#/proc/}"
  done
  return 0
}

# --- network -------------------------------------------------------------------------

# Sites claim indexes and share the bridge: changes to either are serialized by a lock
# (fd 9, held by this shell only: released before any long-running process starts).
lock() {
  mkdir -p "${LOCK%/*}"
  exec 9>"$LOCK"
  flock 9
}
unlock() { exec 9>&-; }

# Claims the first free site index (a namespace bms<N> that does not exist yet).
claim_index() {
  local n
  for n in $(seq 1 126); do
    [[ -e /run/netns/bms$n ]] && continue
    ip netns add "bms$n" && { echo "$n"; return 0; }
  done
  return 1
}

net_up() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$BRIDGE_ADDR" dev "$BRIDGE"
    ip link set "$BRIDGE" up
  fi
  local n
  n=$(claim_index) || die "no free site index"
  local ns=bms$n host_if=bms${n}h
  ip link add "$host_if" type veth peer name eth0 netns "$ns"
  ip link set "$host_if" master "$BRIDGE" up
  ip -n "$ns" addr add "10.127.$n.1/16" dev eth0
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
  # No default route: nothing outside the sites is reachable. The service CIDR is local
  # to the namespace, so that kube-proxy's DNAT of a ClusterIP applies to the node's own
  # connections too, and an address no Service has ends here.
  ip -n "$ns" route add local "$SERVICE_CIDR" dev lo
  echo "$n"
}

net_down() {
  local ns=$1
  [[ -e /run/netns/$ns ]] && ip netns delete "$ns"
  # Usually gone with the namespace (its peer was in there), but asynchronously.
  ip link delete "${ns}h" >/dev/null 2>&1 || true
  # The bridge goes with the last site.
  if ip link show "$BRIDGE" >/dev/null 2>&1 && [[ -z $(ls "/sys/class/net/$BRIDGE/brif" 2>/dev/null) ]]; then
    ip link delete "$BRIDGE"
  fi
  return 0
}

# --- certificates and credentials -------------------------------------------------------

certs() {
  local d=$DIR/pki ip=$1
  mkdir -p "$d"
  # Kept across down/up, unless the node address changed (the API server's SAN).
  [[ -f $d/done && $(cat "$d/done") == "$ip" ]] && return 0
  pki_key "$d/ca.key"
  openssl req -x509 -new -key "$d/ca.key" -days 30 -subj "/CN=blockmirror-$SITE_LABEL-ca" -out "$d/ca.crt" 2>/dev/null
  # The API server: its node address, the kubernetes Service's ClusterIP and names.
  pki_issue "$d" "$d" apiserver /CN=kube-apiserver \
    "subjectAltName=IP:$ip,IP:10.96.0.1,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  # What the API server presents to kubelets (logs, exec): a cluster admin's client certificate.
  pki_issue "$d" "$d" apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" extendedKeyUsage=clientAuth
  # Service-account token signing key (TokenRequest, the controller-manager's tokens).
  pki_key "$d/sa.key"
  openssl ec -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  printf '%s\n' "$ip" >"$d/done"
}

token() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# kubeconfig NAME USER: DIR/NAME.kubeconfig with USER's token from tokens.csv.
kubeconfig() {
  local name=$1 user=$2 tok
  tok=$(awk -F, -v u="$user" '$2 == u { print $1 }' "$DIR/tokens.csv")
  kubeconfig_file "$DIR/$name.kubeconfig" "$SITE_LABEL" "https://$NODE_IP:6443" "$DIR/pki/ca.crt" "$name" \
    --token "$tok" --namespace default
}

credentials() {
  # Kept across down/up, unless the node's name changed (its token names it).
  if ! grep -F ",system:node:$NODE_NAME," "$DIR/tokens.csv" >/dev/null 2>&1; then
    # Static tokens: the admin, the control-plane components and the node, each with the
    # identity (and so the built-in RBAC roles and Node authorizer) a real cluster gives it.
    {
      printf '%s,admin,admin-uid,system:masters\n' "$(token)"
      printf '%s,system:kube-controller-manager,kcm-uid\n' "$(token)"
      printf '%s,system:kube-scheduler,scheduler-uid\n' "$(token)"
      printf '%s,system:kube-proxy,kube-proxy-uid\n' "$(token)"
      printf '%s,system:node:%s,node-uid,system:nodes\n' "$(token)" "$NODE_NAME"
    } >"$DIR/tokens.csv.tmp"
    mv "$DIR/tokens.csv.tmp" "$DIR/tokens.csv"
  fi
  kubeconfig admin admin
  kubeconfig controller-manager system:kube-controller-manager
  kubeconfig scheduler system:kube-scheduler
  kubeconfig kube-proxy system:kube-proxy
  kubeconfig kubelet "system:node:$NODE_NAME"
  cp "$DIR/admin.kubeconfig" "$DIR/kubeconfig"
}

# --- configuration files ------------------------------------------------------------------

# runtime_config: the node's containerd and CNI configuration.
runtime_config() {
  local c=$DIR/containerd
  mkdir -p "$c" "$DIR/cni/net.d"
  # Everything under DIR: the host has other sites' containerds.
  containerd_config "$c/config.toml" --root "$c/root" --state "$c/state" --socket "$c/containerd.sock" \
    --ttrpc-socket "$c/containerd.sock.ttrpc" --opt-dir "$c/opt" --runc-root "$c/runc" \
    --sandbox-image "$SANDBOX_IMAGE" --netns-under-state --restrict-oom-score-adj \
    --cni-bin "$CNI_BIN" --cni-conf-dir "$DIR/cni/net.d"
  # Pods of this node: a bridge with masquerading to the node's address, host-local
  # addresses from the node's pod CIDR (allocations kept under DIR), hostPorts.
  cni_conflist "$DIR/cni/net.d/10-bms$INDEX.conflist" "bms$INDEX" "$NODE_POD_CIDR" "$DIR/cni/ipam"
}

node_kubelet_config() {
  mkdir -p "$DIR/kubelet" "$DIR/pod-logs"
  # Pods get no name servers: nothing outside the sites is reachable.
  printf 'options ndots:1\n' >"$DIR/resolv.conf"
  kubelet_config "$DIR/kubelet-config.yaml" --cgroup-v1 --address "$NODE_IP" \
    --runtime-endpoint "unix://$DIR/containerd/containerd.sock" --client-ca "$DIR/pki/ca.crt" \
    --resolv-conf "$DIR/resolv.conf" --pod-logs-dir "$DIR/pod-logs" \
    --volume-plugin-dir "$DIR/kubelet/volume-plugins" --pod-cidr "$NODE_POD_CIDR"
}

# --- up / down ----------------------------------------------------------------------------

site_running() {
  site_env "$DIR" || return 1
  [[ -e /run/netns/$NETNS ]] || return 1
  local n
  for n in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy; do
    pidfile_alive "$DIR/$n.pid" || return 1
  done
}

ctr_() { ctr --address "$DIR/containerd/containerd.sock" --namespace k8s.io "$@"; }

import_images() {
  local f
  for f in "$@"; do
    [[ -f $f ]] || die "no image archive $f"
    ctr_ images import "$f" >/dev/null 2>"$DIR/import.err" ||
      { cat "$DIR/import.err" >&2; die "ctr images import $f failed"; }
    log "imported $(basename "$f")"
  done
}

up() {
  local name=site sandbox_image='' sandbox_archive='' imports=()
  while (($#)); do
    case $1 in
      --name) name=$2; shift 2 ;;
      --sandbox-image) sandbox_image=$2; shift 2 ;;
      --sandbox-archive) sandbox_archive=$2; shift 2 ;;
      --import) imports+=("$2"); shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  [[ $name =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || die "--name must be a DNS label: $name"
  SITE_LABEL=$name
  if site_running; then
    log "already up ($NODE_IP)"
    [[ ${#imports[@]} -eq 0 ]] || import_images "${imports[@]}"
    echo "$DIR/kubeconfig"
    return 0
  fi
  [[ -x $BIN/kubelet && -x $BIN/kube-apiserver ]] || die "kube binaries missing: run hack/install-kube.sh"
  if ! command -v containerd >/dev/null || [[ ! -x $CNI_BIN/bridge ]]; then
    die "containerd or CNI plugins missing: run hack/install-node-runtime.sh"
  fi
  if [[ -z $sandbox_image ]]; then
    local images
    images=$(bash "$ROOT/hack/build-images.sh")
    sandbox_image=$(node -e 'console.log(JSON.parse(process.argv[1]).pause.image)' "$images")
    sandbox_archive=$(node -e 'console.log(JSON.parse(process.argv[1]).pause.archive)' "$images")
  fi
  [[ -n $sandbox_archive ]] || die "--sandbox-image needs --sandbox-archive"
  # A half-started or stopped site is started afresh (its certificates are kept).
  down_quiet
  # Whatever ends `up` early (a failed command, die, a signal) stops what it started.
  trap 'log "up failed: stopping what was started"; down_quiet' EXIT
  trap 'exit 1' INT TERM

  local t0 t
  t0=$(now)
  t=$(now)
  lock
  INDEX=$(net_up)
  unlock
  NETNS=bms$INDEX
  NODE_IP=10.127.$INDEX.1
  NODE_NAME=$name-node1
  POD_CIDR=10.$((128 + INDEX)).0.0/16
  NODE_POD_CIDR=10.$((128 + INDEX)).1.0/24
  SANDBOX_IMAGE=$sandbox_image
  cat >"$DIR/site.env" <<EOF
SITE_LABEL=$name
INDEX=$INDEX
NETNS=$NETNS
NODE_IP=$NODE_IP
NODE_NAME=$NODE_NAME
POD_CIDR=$POD_CIDR
NODE_POD_CIDR=$NODE_POD_CIDR
SANDBOX_IMAGE=$SANDBOX_IMAGE
EOF
  # Forwarding between the pods' bridge and eth0 (this namespace only).
  in_ns sysctl -qw net.ipv4.ip_forward=1
  phase network "$t"

  t=$(now)
  certs "$NODE_IP"
  credentials
  runtime_config
  node_kubelet_config
  kube_proxy_config "$DIR/kube-proxy-config.yaml" "$DIR/kube-proxy.kubeconfig" "$NODE_NAME" "$NODE_IP" "$POD_CIDR" \
    --shared-conntrack
  phase "certificates and configuration" "$t"

  # The kubelet's root dir: a shared mount, so that pods' mount propagation works.
  mkdir -p "$DIR/kubelet"
  mount --bind "$DIR/kubelet" "$DIR/kubelet"
  mount --make-rshared "$DIR/kubelet"

  t=$(now)
  in_ns_start "$DIR" etcd etcd --name default --data-dir "$DIR/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster default=http://127.0.0.1:2380
  # containerd starts meanwhile: it needs nothing from the control plane.
  in_ns_start "$DIR" containerd containerd --config "$DIR/containerd/config.toml"
  in_ns_start "$DIR" kube-apiserver "$BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=0.0.0.0 --secure-port=6443 --advertise-address="$NODE_IP" \
    --tls-cert-file="$DIR/pki/apiserver.crt" --tls-private-key-file="$DIR/pki/apiserver.key" \
    --client-ca-file="$DIR/pki/ca.crt" --token-auth-file="$DIR/tokens.csv" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction --allow-privileged=true \
    --kubelet-client-certificate="$DIR/pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$DIR/pki/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$DIR/pki/sa.pub" --service-account-signing-key-file="$DIR/pki/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR"
  wait_until "$DIR" "containerd's socket" 60 containerd ctr_ version
  import_images "$sandbox_archive" ${imports[@]+"${imports[@]}"}
  phase "containerd ready, images imported (meanwhile the API server starts)" "$t"
  wait_until "$DIR" "the API server's /readyz" 90 "etcd kube-apiserver" \
    "$BIN/kubectl" --kubeconfig "$DIR/kubeconfig" get --raw /readyz
  phase "etcd and kube-apiserver ready" "$t"

  t=$(now)
  in_ns_start "$DIR" kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig="$DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$DIR/controller-manager.kubeconfig" --authorization-kubeconfig="$DIR/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10257 --use-service-account-credentials=true \
    --service-account-private-key-file="$DIR/pki/sa.key" --root-ca-file="$DIR/pki/ca.crt" \
    --cluster-signing-cert-file="$DIR/pki/ca.crt" --cluster-signing-key-file="$DIR/pki/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --cluster-cidr="$POD_CIDR"
  in_ns_start "$DIR" kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig="$DIR/scheduler.kubeconfig" --authorization-kubeconfig="$DIR/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10259
  in_ns_start "$DIR" kubelet "$BIN/kubelet" --config="$DIR/kubelet-config.yaml" --kubeconfig="$DIR/kubelet.kubeconfig" \
    --root-dir="$DIR/kubelet" --cert-dir="$DIR/kubelet/pki" --node-ip="$NODE_IP" --hostname-override="$NODE_NAME"
  in_ns_start "$DIR" kube-proxy "$BIN/kube-proxy" --config="$DIR/kube-proxy-config.yaml"
  # The kubelet checks its callers' tokens and permissions (logs, exec) with the API server.
  "$BIN/kubectl" --kubeconfig "$DIR/kubeconfig" create clusterrolebinding blockmirror:kubelet-delegated-auth \
    --clusterrole=system:auth-delegator --group=system:nodes >/dev/null
  wait_until "$DIR" "node $NODE_NAME Ready" 120 "kube-apiserver containerd kubelet kube-controller-manager kube-scheduler kube-proxy" \
    node_ready
  phase "controller-manager, scheduler, kubelet, kube-proxy: node Ready" "$t"

  t=$(now)
  # What every pod needs from the controller-manager before it can start.
  wait_until "$DIR" "the default ServiceAccount and kube-root-ca.crt" 60 "kube-controller-manager" \
    "$BIN/kubectl" --kubeconfig "$DIR/kubeconfig" get serviceaccount/default configmap/kube-root-ca.crt
  phase "service account and root CA" "$t"
  trap - EXIT INT TERM

  # shellcheck disable=SC2016 # JavaScript, not shell
  node -e '
    const [dir, env] = process.argv.slice(1);
    const e = Object.fromEntries(env.trim().split("\n").map((l) => l.split("=")));
    const site = {
      name: e.SITE_LABEL, dir, netns: e.NETNS, kubeconfig: dir + "/kubeconfig",
      apiServer: `https://${e.NODE_IP}:6443`, serviceCIDR: process.argv[3], podCIDR: e.POD_CIDR,
      sandboxImage: e.SANDBOX_IMAGE, containerdSocket: dir + "/containerd/containerd.sock", kubectl: process.argv[4],
      nodes: [{ name: e.NODE_NAME, address: e.NODE_IP, podCIDR: e.NODE_POD_CIDR, kubeletRootDir: dir + "/kubelet" }],
    };
    require("fs").writeFileSync(dir + "/site.json", JSON.stringify(site, null, 2) + "\n");
  ' "$DIR" "$(cat "$DIR/site.env")" "$SERVICE_CIDR" "$BIN/kubectl"
  phase "up (total)" "$t0"
  log "up: node $NODE_NAME at $NODE_IP; ${PHASES[*]}"
  echo "$DIR/kubeconfig"
}

node_ready() {
  [[ $("$BIN/kubectl" --kubeconfig "$DIR/kubeconfig" get node "$NODE_NAME" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

# umount_under DIR: every mount at or below DIR, deepest first (the kubelet's volumes,
# containerd's root filesystems, shm and pod network namespaces, the root dir's bind mount).
umount_under() {
  local d=$1 m
  local -a mounts
  for _ in 1 2 3; do
    mapfile -t mounts < <(awk -v d="$d" '{ p = $5; gsub(/\\040/, " ", p); if (p == d || index(p, d "/") == 1) print p }' /proc/self/mountinfo | sort -r)
    ((${#mounts[@]})) || return 0
    for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  done
}

down_quiet() {
  # VM nodes that joined the site (hack/site-vm-node.sh) first, while its API server is up.
  if compgen -G "$DIR/vm-node*" >/dev/null; then bash "$ROOT/hack/site-vm-node.sh" down "$DIR"; fi
  site_env "$DIR" || { umount_under "$DIR"; return 0; }
  local t n
  t=$(now)
  # The kubelet first, so that it restarts nothing; then every container, by the network
  # namespaces they run in (pods' namespaces under DIR, hostNetwork pods in the site's).
  # Every component's command line names DIR: a pid reused since is left alone.
  stop_pidfile "$DIR/kubelet.pid" "$DIR/" 10
  stop_pidfile "$DIR/kube-proxy.pid" "$DIR/" 10
  # Containers are deleted through containerd (runc removes their cgroups and mounts,
  # the shims exit); what that leaves is killed below.
  local ids=() tasks=() id
  mapfile -t ids < <(ls "$DIR/containerd/state/io.containerd.runtime.v2.task/k8s.io" 2>/dev/null || true)
  if pidfile_alive "$DIR/containerd.pid"; then
    mapfile -t tasks < <(ctr_ --timeout 10s tasks ls -q 2>/dev/null || true)
    for id in ${tasks[@]+"${tasks[@]}"}; do ctr_ --timeout 10s tasks rm -f "$id" >/dev/null 2>&1 || true; done
  fi
  local netns_files=() own=" " f pid
  for f in "$DIR"/*.pid; do [[ -f $f ]] && own+="$(cat "$f") "; done
  mapfile -t netns_files < <(find "$DIR/containerd/state" -maxdepth 2 -path '*/netns/*' 2>/dev/null)
  for pid in $(pids_in_netns ${netns_files[@]+"${netns_files[@]}"} "/run/netns/$NETNS"); do
    # containerd and the control plane stop by their pid files below.
    [[ $own == *" $pid "* ]] || kill -KILL "$pid" 2>/dev/null || true
  done
  for n in containerd kube-scheduler kube-controller-manager kube-apiserver etcd; do
    stop_pidfile "$DIR/$n.pid" "$DIR/" 10
  done
  # Anything else still in the site's namespace (a shim that outlived containerd).
  for pid in $(pids_in_netns "/run/netns/$NETNS"); do kill -KILL "$pid" 2>/dev/null || true; done
  # Loop devices over files under DIR: a CSI driver's volume images, and the kubelet's hold
  # on a block volume (a loop over the device node it published), named only while that
  # node is still mounted. A device still in use is released with its last user (the
  # unmounts below); what was in use by another loop goes in the second pass.
  detach_loops_under "$DIR"
  umount_under "$DIR"
  detach_loops_under "$DIR"
  # Container processes containerd lost track of (a sandbox it failed to set up, say):
  # they still see their root filesystem under DIR in their own mount namespace.
  local stray=() cg
  mapfile -t stray < <(grep -l -F "$DIR/containerd/" /proc/[0-9]*/mountinfo 2>/dev/null | cut -d/ -f3)
  for pid in ${stray[@]+"${stray[@]}"}; do
    cg=$(sed -n 's|^[0-9]*:pids:/k8s.io/\([0-9a-f]*\)$|\1|p' "/proc/$pid/cgroup" 2>/dev/null) && [[ -n $cg ]] && ids+=("$cg")
    log "killing stray container process $pid"
    kill -KILL "$pid" 2>/dev/null || true
  done
  for pid in ${stray[@]+"${stray[@]}"}; do
    for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.05; done
  done
  # What the kubelet, containerd and runc keep outside DIR, by name: container log links
  # into DIR, the CNI result cache of this site's sandboxes, cgroups of its containers,
  # shim sockets.
  find /var/log/containers -maxdepth 1 -lname "$DIR/*" -delete 2>/dev/null || true
  rm -f /var/lib/cni/results/bms"$INDEX"-* 2>/dev/null || true
  for id in ${ids[@]+"${ids[@]}"}; do
    rm -f /var/lib/cni/results/*-"$id"-* 2>/dev/null || true
    # A killed shim's socket: containerd 1.6 names it sha256(address/namespace/id).
    rm -f "/run/containerd/s/$(printf '%s' "$DIR/containerd/containerd.sock/k8s.io/$id" | sha256sum | cut -d' ' -f1)"
    for f in /sys/fs/cgroup/*/k8s.io/"$id"; do rmdir "$f" 2>/dev/null || true; done
  done
  lock
  net_down "$NETNS"
  # Directories the runtime made at its default places, once empty (rmdir refuses
  # otherwise; their users recreate them when needed). The kubelet makes
  # /var/log/containers only when it starts: that one goes with the last site.
  rmdir /sys/fs/cgroup/*/k8s.io /run/containerd/s /run/containerd /var/lib/cni/results /var/lib/cni 2>/dev/null || true
  compgen -G '/run/netns/bms*' >/dev/null || rmdir /var/log/containers 2>/dev/null || true
  unlock
  # Fresh state next time (a new cluster); certificates and tokens stay.
  rm -rf "$DIR/etcd" "$DIR/containerd/root" "$DIR/containerd/state" "$DIR/containerd/runc" "$DIR/kubelet" \
    "$DIR/cni/ipam" "$DIR/pod-logs" "$DIR/site.env" "$DIR/site.json"
  phase down "$t"
}

DIR=
case ${1:-} in
  up)
    [[ $# -ge 2 ]] || die "usage: $0 up DIR [options]"
    mkdir -p "$2"
    DIR=$(cd "$2" && pwd)
    shift 2
    up "$@"
    ;;
  import)
    [[ $# -ge 3 ]] || die "usage: $0 import DIR FILE..."
    DIR=$(cd "$2" && pwd)
    shift 2
    site_env "$DIR" || die "no site in $DIR"
    SITE_LABEL=${SITE_LABEL:-site}
    import_images "$@"
    ;;
  down)
    [[ $# -eq 2 ]] || die "usage: $0 down DIR"
    [[ -d $2 ]] || exit 0
    DIR=$(cd "$2" && pwd)
    site_env "$DIR" || true
    down_quiet
    ;;
  *) die "usage: $0 up DIR [options] | import DIR FILE... | down DIR" ;;
esac
