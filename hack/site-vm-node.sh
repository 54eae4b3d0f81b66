#!/usr/bin/env bash
# A node of a real site (hack/site.sh) that runs in the VM test bed (hack/vm.sh): Debian's
# kernel under qemu, with device-mapper, dm-era and NBD, which the host's kernel lacks. The
# kubelet, a private containerd and kube-proxy run inside the guest (hack/vm-node-guest.sh)
# from the host's read-only root; the guest's /var is a disk of its own; the images are
# imported there from their OCI archives, never pulled. The site's control plane stays
# where it is, and the site may keep its host node: a site can mix host and VM nodes.
#
# Usage: hack/site-vm-node.sh up DIR [--index K] [--import FILE]... [--lab-csi] [--forward PORT=HOST:HPORT]...
#          joins the site running in DIR with node K (default 2; 2..199): named
#          <site>-node<K>, address 10.127.<N>.<K>, pods 10.<128+N>.<K>.0/24, labelled
#          blockmirror.io/node-kernel=vm. Idempotent. Waits until the node is Ready and adds it
#          to DIR/site.json (with "vm": true).
#          --lab-csi: the guest also runs the lab CSI driver (registered with its kubelet) and
#          external-provisioner, as hack/site-csi.sh does on a host node (whose `prepare`
#          makes the API objects); the site's host node must not run them too.
#          --forward PORT=HOST:HPORT: the guest reaches HOST:HPORT (say, the other site's
#          peer port) at 10.127.<N>.250:PORT; nothing else leaves the guest.
#          --expose PORT: the site (its host processes and pods) reaches the guest's PORT at
#          the node's address (say, a hostNetwork sidecar's control port), as the kubelet's.
#        hack/site-vm-node.sh down DIR [--index K]
#          stops node K (default: every VM node of the site), removes its Node object, its
#          forward and its files (idempotent; hack/site.sh down runs it too).
#
# Host and guest talk only through qemu's user-mode network with restrict=on, on
# 127.0.0.1 ports of the site's network namespace (qemu runs in it):
#   guest 10.127.N.K ── guestfwd 10.127.N.1:6443 ──► busybox nc ──► 127.0.0.1:6443 (API server)
#   API server ──► 10.127.N.K:10250 ── REDIRECT ──► 127.0.0.1:<20250+K> ── hostfwd ──► kubelet
# The guest's user-mode network is the site's /24, so it dials the API server at the
# address its certificate and the kubernetes Service name; anything else is dropped.
# The kubelet authenticates with a client certificate the site's CA signs here
# (system:node:<name>), so joining needs no API server restart.
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
# shellcheck source=hack/lib/timing.sh
source "$ROOT/hack/lib/timing.sh"
KUBE_VERSION=${KUBE_VERSION:-v1.36.3}
BIN=${BLOCKMIRROR_CACHE:-$HOME/.cache/blockmirror}/kube-$KUBE_VERSION/bin
CNI_BIN=${CNI_BIN:-/usr/lib/cni}
VM_NODE_MEMORY=${VM_NODE_MEMORY:-2048}
VM_NODE_DISK=${VM_NODE_DISK:-8G}

LABEL=vm-node
log() { printf 'site-vm-node %s: %s\n' "$LABEL" "$*" >&2; }
die() { log "$*"; exit 1; }

load_site() { site_env "$DIR" || die "no site in $DIR (hack/site.sh up first)"; }

kubectl_() { "$BIN/kubectl" --kubeconfig "$DIR/kubeconfig" "$@"; }

node_vars() {
  K=$1
  [[ $K =~ ^[0-9]+$ ]] && ((K >= 2 && K <= 199)) || die "--index must be 2..199: $K"
  NDIR=$DIR/vm-node$K
  NAME=$SITE_LABEL-node$K
  ADDR=10.127.$INDEX.$K
  PODS=10.$((128 + INDEX)).$K.0/24
  FWD=$((20250 + K))
  CHAIN=BM-VMNODE-$K
  LABEL="$SITE_LABEL/node$K"
}

qemu_alive() {
  [[ -f $NDIR/qemu.pid ]] || return 1
  local pid
  pid=$(cat "$NDIR/qemu.pid")
  alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -F -- "$NDIR/" >/dev/null
}

node_ready() {
  [[ $(kubectl_ get node "$NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

# The site's CA signs the kubelet's client certificate: system:node:<name> in system:nodes.
node_cert() {
  mkdir -p "$NDIR/pki"
  pki_issue "$DIR/pki" "$NDIR/pki" kubelet "/O=system:nodes/CN=system:node:$NAME" extendedKeyUsage=clientAuth
}

# Configuration the guest reads from the host's tree (read-only there): paths are the host's.
node_config() {
  local imports=$1 lab_csi=$2 protos=("" "")
  # The guest has no Go to find the CSI and plugin registration protos in the module cache:
  # found here (the cache is on the host's root, which the guest reads).
  if ((lab_csi)); then
    # shellcheck disable=SC2016 # JavaScript, not shell
    mapfile -t protos < <(node --input-type=module -e '
      const d = process.argv[1];
      console.log(await (await import(`${d}/resolve-csi-proto-dir.js`)).resolveCsiProtoDir());
      console.log(await (await import(`${d}/resolve-plugin-registration-proto-dir.js`)).resolvePluginRegistrationProtoDir());
    ' "$ROOT/dist/sidecar/csi")
  fi
  cat >"$NDIR/node.env" <<EOF
NODE_NAME=$NAME
NODE_IP=$ADDR
GATEWAY=10.127.$INDEX.254
SERVICE_CIDR=10.96.0.0/16
BIN=$BIN
IMPORTS="$imports"
NODE_LABELS=blockmirror.io/node-kernel=vm
LAB_CSI=$lab_csi
NODE_BIN=$(command -v node)
CLI=$ROOT/dist/sidecar/cli/main.js
PROVISIONER=${BLOCKMIRROR_CACHE:-$HOME/.cache/blockmirror}/csi/bin/csi-provisioner
PROVISIONER_KUBECONFIG=$DIR/lab-csi/csi-provisioner.kubeconfig
CSI_PROTO_DIR=${protos[0]}
PLUGIN_REGISTRATION_PROTO_DIR=${protos[1]}
EOF
  kubeconfig_file "$NDIR/kubelet.kubeconfig" "$SITE_LABEL" "https://$NODE_IP:6443" "$DIR/pki/ca.crt" kubelet \
    --client-cert "$NDIR/pki/kubelet.crt" --client-key "$NDIR/pki/kubelet.key"
  mkdir -p "$NDIR/cni"
  # Runtime state lives in the guest (/var is its disk, /run a tmpfs).
  containerd_config "$NDIR/containerd.toml" --root /var/lib/containerd --state /run/containerd \
    --socket /run/containerd/containerd.sock --opt-dir /var/lib/containerd-opt \
    --sandbox-image "$SANDBOX_IMAGE" --cni-bin "$CNI_BIN" --cni-conf-dir "$NDIR/cni"
  cni_conflist "$NDIR/cni/10-bms$INDEX-node$K.conflist" "bms$INDEX-node$K" "$PODS"
  printf 'options ndots:1\n' >"$NDIR/resolv.conf"
  # As the host node's (hack/site.sh), on the guest's cgroup v2 and its own disk.
  kubelet_config "$NDIR/kubelet-config.yaml" --address "$ADDR" \
    --runtime-endpoint unix:///run/containerd/containerd.sock --client-ca "$DIR/pki/ca.crt" \
    --resolv-conf "$NDIR/resolv.conf" --volume-plugin-dir /var/lib/kubelet/volume-plugins --pod-cidr "$PODS"
  kube_proxy_config "$NDIR/kube-proxy-config.yaml" "$DIR/kube-proxy.kubeconfig" "$NAME" "$ADDR" "$POD_CIDR"
}

# images_bundle ARCHIVE...: one OCI archive holding every image of ARCHIVE... (their blobs
# and index entries, each keeping its io.containerd.image.name), NDIR/images.oci.tar: the
# guest imports it with a single ctr, whose start alone takes seconds under TCG.
images_bundle() {
  local work=$NDIR/images f i=0
  mkdir -p "$work/oci"
  for f in "$@"; do
    mkdir -p "$work/$i"
    tar -C "$work/$i" -xf "$f"
    cp -a "$work/$i/blobs" "$work/oci/"
    i=$((i + 1))
  done
  # shellcheck disable=SC2016 # JavaScript, not shell
  node -e '
    const fs = require("fs");
    const [work, n] = process.argv.slice(1);
    const manifests = [];
    for (let i = 0; i < Number(n); i++) manifests.push(...JSON.parse(fs.readFileSync(`${work}/${i}/index.json`, "utf8")).manifests);
    fs.writeFileSync(`${work}/oci/index.json`, JSON.stringify({ schemaVersion: 2, manifests }));
    fs.writeFileSync(`${work}/oci/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  ' "$work" "$i"
  tar -C "$work/oci" -cf "$NDIR/images.oci.tar" .
  rm -rf "$work"
}

# The API server reaches the kubelet at the node's address: locally redirected to the
# 127.0.0.1 port qemu forwards into the guest. Each --expose PORT is forwarded the same way,
# and also for the site's pods (say, the operator dialling the VM node's sidecar): their
# packets arrive from the CNI bridge (PREROUTING), and reach 127.0.0.1 by a DNAT that
# route_localnet allows.
forward_up() {
  local p hp i=0
  in_ns iptables -t nat -N "$CHAIN" 2>/dev/null || in_ns iptables -t nat -F "$CHAIN"
  in_ns iptables -t nat -A "$CHAIN" -p tcp --dport 10250 -j REDIRECT --to-ports "$FWD"
  for p in "$@"; do
    hp=$(expose_port "$i")
    in_ns iptables -t nat -A "$CHAIN" -p tcp --dport "$p" -j DNAT --to-destination "127.0.0.1:$hp"
    i=$((i + 1))
  done
  in_ns iptables -t nat -C OUTPUT -d "$ADDR/32" -j "$CHAIN" 2>/dev/null ||
    in_ns iptables -t nat -I OUTPUT 1 -d "$ADDR/32" -j "$CHAIN"
  if (($#)); then
    in_ns sysctl -qw net.ipv4.conf.all.route_localnet=1
    in_ns iptables -t nat -C PREROUTING -d "$ADDR/32" -j "$CHAIN" 2>/dev/null ||
      in_ns iptables -t nat -I PREROUTING 1 -d "$ADDR/32" -j "$CHAIN"
  fi
}

# expose_port I: the 127.0.0.1 port of the I-th --expose of this node.
expose_port() { echo $((21000 + K * 8 + $1)); }

forward_down() {
  [[ -e /run/netns/$NETNS ]] || return 0
  while in_ns iptables -t nat -D OUTPUT -d "$ADDR/32" -j "$CHAIN" 2>/dev/null; do :; done
  while in_ns iptables -t nat -D PREROUTING -d "$ADDR/32" -j "$CHAIN" 2>/dev/null; do :; done
  in_ns iptables -t nat -F "$CHAIN" 2>/dev/null || true
  in_ns iptables -t nat -X "$CHAIN" 2>/dev/null || true
}

# site_json add|remove: DIR/site.json lists the site's nodes, VM nodes with "vm": true.
site_json() {
  [[ -f $DIR/site.json ]] || return 0
  # shellcheck disable=SC2016 # JavaScript, not shell
  node -e '
    const fs = require("fs");
    const [file, op, name, address, podCIDR] = process.argv.slice(1);
    const site = JSON.parse(fs.readFileSync(file, "utf8"));
    site.nodes = site.nodes.filter((n) => n.name !== name);
    if (op === "add") site.nodes.push({ name, address, podCIDR, kubeletRootDir: "/var/lib/kubelet", vm: true });
    fs.writeFileSync(file + ".tmp", JSON.stringify(site, null, 2) + "\n");
    fs.renameSync(file + ".tmp", file);
  ' "$DIR/site.json" "$1" "$NAME" "$ADDR" "$PODS"
}

down_node() {
  node_vars "$1"
  [[ -d $NDIR ]] || return 0
  local t pid
  t=$(now)
  if qemu_alive; then
    stop "$(cat "$NDIR/qemu.pid")" 5
  fi
  # The API server's forwards (busybox nc, named by a link under NDIR) outlive qemu.
  for pid in $(pgrep -f -- "^$NDIR/" || true); do kill -KILL "$pid" 2>/dev/null || true; done
  forward_down
  if [[ -f $DIR/site.env ]] && kubectl_ get --raw /readyz --request-timeout=5s >/dev/null 2>&1; then
    kubectl_ delete node "$NAME" --ignore-not-found --wait=false --request-timeout=10s >/dev/null 2>&1 || true
  fi
  site_json remove
  rm -rf "$NDIR"
  log "down in $(secs_since "$t") s"
}

# The last lines of the guest's and its components' logs (they go with the node's files).
failure_logs() {
  local f
  for f in "$NDIR/guest.log" "$NDIR"/out/*.log; do
    [[ -s $f ]] || continue
    log "--- ${f#"$NDIR"/}"
    grep -E '^[EF][0-9]{4}|level=(error|fatal)' "$f" | grep -v 'not registered yet\|from lister' | head -n 15 >&2 || true
    tail -n 10 "$f" >&2
  done
}

# The lab CSI driver is registered: the guest's kubelet put it in its node's CSINode.
csinode_lists_lab_driver() {
  [[ " $(kubectl_ get csinode "$NAME" -o jsonpath='{.spec.drivers[*].name}' 2>/dev/null) " == *" lab.csi.blockmirror.io "* ]]
}

up() {
  local k=2 imports=() lab_csi=0 forwards=() exposes=() f
  while (($#)); do
    case $1 in
      --index) k=$2; shift 2 ;;
      --import) imports+=("$(realpath "$2")"); shift 2 ;;
      --lab-csi) lab_csi=1; shift ;;
      --expose)
        [[ $2 =~ ^[0-9]+$ ]] || die "--expose takes a port: $2"
        exposes+=("$2")
        shift 2
        ;;
      --forward)
        [[ $2 =~ ^([0-9]+)=([0-9.]+):([0-9]+)$ ]] || die "--forward takes PORT=HOST:HPORT: $2"
        forwards+=("${BASH_REMATCH[1]} ${BASH_REMATCH[2]} ${BASH_REMATCH[3]}")
        shift 2
        ;;
      *) die "unknown option $1" ;;
    esac
  done
  load_site
  node_vars "$k"
  [[ $NDIR != *[,\ ]* ]] || die "DIR must not contain commas or spaces (qemu options): $DIR"
  for f in ${imports[@]+"${imports[@]}"}; do [[ -f $f ]] || die "no image archive $f"; done
  if ((lab_csi)); then
    [[ -f $ROOT/dist/sidecar/cli/main.js ]] || die "the lab driver runs from dist/: run npm run build"
    bash "$ROOT/hack/site-csi.sh" prepare "$DIR" >/dev/null
  fi
  if qemu_alive && node_ready; then
    log "already up ($ADDR)"
    return 0
  fi
  [[ -x $BIN/kubelet ]] || die "kube binaries missing: run hack/install-kube.sh"
  bash "$ROOT/hack/vm.sh" build
  # The sandbox image's archive: hack/build-images.sh's pause, as the host node's.
  local images sandbox_archive
  images=$(bash "$ROOT/hack/build-images.sh")
  sandbox_archive=$(node -e 'console.log(JSON.parse(process.argv[1]).pause.archive)' "$images")
  down_node "$k"
  node_vars "$k"
  trap 'log "up failed: stopping the VM node"; failure_logs; down_node "$K"' EXIT
  trap 'exit 1' INT TERM

  local t0 t
  t0=$(now)
  mkdir -p "$NDIR/out"
  node_cert
  images_bundle "$sandbox_archive" ${imports[@]+"${imports[@]}"}
  node_config "$NDIR/images.oci.tar" "$lab_csi"
  truncate -s "$VM_NODE_DISK" "$NDIR/disk.img"
  ln -s /bin/busybox "$NDIR/nc"
  forward_up ${exposes[@]+"${exposes[@]}"}
  t=$(now)
  # qemu in the site's network namespace: its forwards are that namespace's 127.0.0.1.
  local subnet=10.127.$INDEX netdev fw i
  netdev="restrict=on,net=$subnet.0/24,host=$subnet.254,dns=$subnet.253,dhcpstart=$subnet.240,hostfwd=tcp:127.0.0.1:$FWD-$ADDR:10250,guestfwd=tcp:$NODE_IP:6443-cmd:$NDIR/nc 127.0.0.1 6443"
  for i in "${!exposes[@]}"; do
    netdev+=",hostfwd=tcp:127.0.0.1:$(expose_port "$i")-$ADDR:${exposes[$i]}"
  done
  for f in ${forwards[@]+"${forwards[@]}"}; do
    read -ra fw <<<"$f"
    netdev+=",guestfwd=tcp:$subnet.250:${fw[0]}-cmd:$NDIR/nc ${fw[1]} ${fw[2]}"
  done
  in_ns env VM_CONSOLE_LOG="$NDIR/console.log" VM_MEMORY="$VM_NODE_MEMORY" \
    bash "$ROOT/hack/vm.sh" start --pidfile "$NDIR/qemu.pid" --output "$NDIR/guest.log" \
    --disk "$NDIR/disk.img" --share "nodeout=$NDIR/out" \
    --netdev "$netdev" \
    -- "bash $ROOT/hack/vm-node-guest.sh $NDIR"
  log "VM started (qemu $(cat "$NDIR/qemu.pid")) in $(secs_since "$t") s"
  local deadline=$((SECONDS + ${VM_NODE_TIMEOUT:-600})) seen=0 lines
  until node_ready && grep -q '] images imported' "$NDIR/guest.log" && { ((!lab_csi)) || csinode_lists_lab_driver; }; do
    qemu_alive || die "the VM exited before the node was Ready"
    ((SECONDS < deadline)) || die "node $NAME not Ready after ${VM_NODE_TIMEOUT:-600} s (logs in $NDIR)"
    # The guest's progress lines, as they come.
    lines=$(wc -l <"$NDIR/guest.log" 2>/dev/null || echo 0)
    if ((lines > seen)); then
      sed -n "$((seen + 1)),${lines}p" "$NDIR/guest.log" >&2
      seen=$lines
    fi
    sleep 0.5
  done
  trap - EXIT INT TERM
  site_json add
  log "up: node $NAME Ready at $ADDR, $(secs_since "$t0") s from start (VM boot to Ready $(secs_since "$t") s)"
}

DIR=
case ${1:-} in
  up)
    [[ $# -ge 2 ]] || die "usage: $0 up DIR [--index K] [--import FILE]..."
    DIR=$(cd "$2" && pwd)
    shift 2
    up "$@"
    ;;
  down)
    [[ $# -eq 2 || ($# -eq 4 && $3 == --index) ]] || die "usage: $0 down DIR [--index K]"
    [[ -d $2 ]] || exit 0
    DIR=$(cd "$2" && pwd)
    # Without the site's env (already down), only what is under DIR is left to remove.
    site_env "$DIR" || { SITE_LABEL=site INDEX=0 NETNS=none; }
    if (($# == 4)); then
      down_node "$4"
    else
      for d in "$DIR"/vm-node*; do [[ -d $d ]] && down_node "${d##*vm-node}"; done
    fi
    ;;
  *) die "usage: $0 up DIR [--index K] [--import FILE]... | down DIR [--index K]" ;;
esac
