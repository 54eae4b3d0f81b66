#!/usr/bin/env bash
# The init of a Kubernetes node in the VM test bed: runs inside the guest (hack/vm.sh start,
# started by hack/site-vm-node.sh), as root in the chroot of the host's read-only root.
# Makes the guest a node — its network, cgroup v2, an ext4 disk as /var, containerd with the
# imported images, the kubelet and kube-proxy — and then waits: when a component exits, so
# does this script, and the VM powers off.
#
# Usage (in the guest): bash hack/vm-node-guest.sh NODE_DIR
#   NODE_DIR/node.env (written by site-vm-node.sh) says the rest. Progress lines go to stdout
#   (the host's NODE_DIR/guest.log); the components log into the writable share `nodeout`
#   (the host's NODE_DIR/out).
set -euo pipefail

NDIR=$1
# shellcheck disable=SC1091
source "$NDIR/node.env"

t0=${EPOCHREALTIME/./}
boot=$(cut -d' ' -f1 /proc/uptime)
log() {
  local us=$((${EPOCHREALTIME/./} - t0))
  printf 'vm-node %s: [%d.%02d s] %s\n' "$NODE_NAME" $((us / 1000000)) $((us % 1000000 / 10000)) "$*"
}

# Modules from the initramfs's node tree (hack/vm.sh); the kernel loads the rest on demand.
modprobe -d /run/vm-modules -a virtio_net overlay br_netfilter veth nf_conntrack

OUT=/run/node-out
mkdir -p "$OUT"
mount -t 9p -o trans=virtio,version=9p2000.L,cache=none nodeout "$OUT"
log "booted: kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo) MiB; this script started at $boot s of the kernel's uptime"

hostname "$NODE_NAME"
# The node's address on the user-mode network (qemu's slirp, restrict=on): the gateway is
# slirp's, and only the forwarded site addresses (the API server) answer behind it.
ip link set lo up
ip link set eth0 up
ip addr add "$NODE_IP/32" dev eth0
ip route add "$GATEWAY" dev eth0
ip route add default via "$GATEWAY" dev eth0
ip route add local "$SERVICE_CIDR" dev lo
sysctl -qw net.ipv4.ip_forward=1

# cgroup v2 (this kernel's default hierarchy), with the controllers the kubelet checks.
mount -t cgroup2 cgroup2 /sys/fs/cgroup
for c in cpuset cpu io memory pids hugetlb; do echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true; done
mkdir -p /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts 2>/dev/null || true

# The node's disk: /var, as on a real node (containerd's root, the kubelet's, pod logs, CNI).
mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1 /dev/vda
mount /dev/vda /var
mkdir -p /var/lib /var/log /var/tmp /var/lib/kubelet
chmod 1777 /var/tmp
ln -s /run /var/run
export TMPDIR=/var/tmp
log "network $NODE_IP, cgroup2, /var on /dev/vda"

# What this kernel offers the data path, for the node's logs (and a host node's contrast).
{
  printf 'kernel %s\n' "$(uname -r)"
  dmsetup --noudevsync version 2>&1 || true
  [[ -c /dev/mapper/control ]] && echo "/dev/mapper/control present"
} >"$OUT/kernel-features" 2>&1

pids=()
# start NAME CMD...: a component in the background, logging to the share.
start() {
  local name=$1
  shift
  "$@" </dev/null >"$OUT/$name.log" 2>&1 &
  pids+=($!)
  printf '%s\n' "$!" >"/run/$name.pid"
}

start containerd containerd --config "$NDIR/containerd.toml"
# Polled by its socket: each ctr run costs seconds here.
until [[ -S /run/containerd/containerd.sock ]]; do
  kill -0 "${pids[0]}" 2>/dev/null || { log "containerd exited"; exit 1; }
  sleep 0.2
done
log "containerd ready"
# The kubelet starts meanwhile (it takes the longest here); the host waits for this line
# too before it calls the node up, so no pod finds its image missing.
start kubelet "$BIN/kubelet" --config="$NDIR/kubelet-config.yaml" --kubeconfig="$NDIR/kubelet.kubeconfig" \
  --node-ip="$NODE_IP" --hostname-override="$NODE_NAME" --node-labels="$NODE_LABELS"
start kube-proxy "$BIN/kube-proxy" --config="$NDIR/kube-proxy-config.yaml"
log "kubelet and kube-proxy started"
if [[ ${LAB_CSI:-0} == 1 ]]; then
  # The lab CSI driver and its provisioner, as hack/site-csi.sh runs them beside a host
  # node's kubelet: the driver registers itself through the kubelet's plugin registration
  # directory (the kubelet makes it too; whichever comes first), its volumes' images on /var.
  plugin=/var/lib/kubelet/plugins/lab.csi.blockmirror.io
  mkdir -p "$plugin" /var/lib/kubelet/plugins_registry /var/lib/lab-csi
  start lab-driver "$NODE_BIN" "$CLI" csi-lab-driver --endpoint "unix://$plugin/csi.sock" --data-dir /var/lib/lab-csi \
    --csi-proto-dir "$CSI_PROTO_DIR" --plugin-registration-proto-dir "$PLUGIN_REGISTRATION_PROTO_DIR" \
    --node-id "$NODE_NAME" --registration-dir /var/lib/kubelet/plugins_registry
  # Only once the driver serves: the provisioner gives up on a socket that stays silent
  # for 10 s, and the driver's start (Node, emulated) takes longer than that here.
  # shellcheck disable=SC2016 # expanded by the inner bash
  start csi-provisioner bash -c 'until [[ -S $1 ]]; do sleep 0.5; done; shift; exec "$@"' _ "$plugin/csi.sock" \
    "$PROVISIONER" --csi-address="$plugin/csi.sock" --kubeconfig="$PROVISIONER_KUBECONFIG" \
    --leader-election --leader-election-namespace=lab-csi --timeout=60s --v=3
  log "lab CSI driver and external-provisioner started"
fi
for f in $IMPORTS; do
  ctr --address /run/containerd/containerd.sock -n k8s.io images import "$f" >/dev/null
  log "images imported: $(basename "$f")"
done

# Runs until a component exits (then the VM powers off) or the host stops the VM.
status=0
wait -n "${pids[@]}" || status=$?
log "a component exited ($status); stopping the node"
exit 1
