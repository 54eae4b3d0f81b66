#!/usr/bin/env bash
# The lab CSI driver on a running site (hack/site.sh), deployed the way real CSI drivers
# are: its node plugin registered with the kubelet through the kubelet's plugin
# registration socket, its controller driven by external-provisioner (built by
# hack/install-csi-provisioner.sh) with the ServiceAccount and RBAC of external-provisioner's
# own deploy/kubernetes/rbac.yaml, a CSIDriver object and the StorageClass `lab-csi`
# (examples/lab-csi/lab-csi.yaml). Needs the built CLI (npm run build).
#
# Usage: hack/site-csi.sh up DIR     deploy on the site in DIR (idempotent: left as it is
#                                    when running); DIR/lab-csi/lab-csi.json says where
#                                    things are (socket, data, logs)
#        hack/site-csi.sh prepare DIR  only the API objects and the provisioner's kubeconfig
#                                    (printed): a VM node's guest runs the driver and the
#                                    provisioner itself (hack/site-vm-node.sh --lab-csi)
#        hack/site-csi.sh down DIR   stop the driver (it deregisters) and the provisioner,
#                                    and detach the loop devices of its volumes (idempotent).
#                                    The API objects stay with the cluster; site.sh down
#                                    removes the cluster and would also stop both processes.
#
# Both run as host processes of the site's node, in its network namespace, like the kubelet:
# one lab driver process serves identity, controller and node on one socket (as the CSI
# hostpath driver does), which the kubelet and external-provisioner both call. They are not
# pods because no image of the CLI is built here: the node's images are the operator's and
# sidecar's, built from the Dockerfile (issue 16, item 1).
#
#   kubelet ── plugins_registry/lab.csi.blockmirror.io-reg.sock ──► GetInfo, NotifyRegistrationStatus
#      └──── CSI (NodeStage/NodePublish...) ──► plugins/lab.csi.blockmirror.io/csi.sock ◄── CSI (CreateVolume...) ── external-provisioner ──► API server
set -euo pipefail
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=hack/lib/processes.sh
source "$ROOT/hack/lib/processes.sh"
# shellcheck source=hack/lib/site-env.sh
source "$ROOT/hack/lib/site-env.sh"
# shellcheck source=hack/lib/loop-devices.sh
source "$ROOT/hack/lib/loop-devices.sh"
# shellcheck source=hack/lib/kubeconfig.sh
source "$ROOT/hack/lib/kubeconfig.sh"
# shellcheck source=hack/lib/timing.sh
source "$ROOT/hack/lib/timing.sh"
KUBE_VERSION=${KUBE_VERSION:-v1.36.3}
KUBE_BIN=${BLOCKMIRROR_CACHE:-$HOME/.cache/blockmirror}/kube-$KUBE_VERSION/bin
PROVISIONER=${BLOCKMIRROR_CACHE:-$HOME/.cache/blockmirror}/csi/bin/csi-provisioner
CLI=${BLOCKMIRROR_CLI:-$ROOT/dist/sidecar/cli/main.js}
NODE=${NODE:-node}
DRIVER=lab.csi.blockmirror.io
NAMESPACE=lab-csi
PROVISIONER_MODULE=github.com/kubernetes-csi/external-provisioner/v6
PROVISIONER_VERSION=${EXTERNAL_PROVISIONER_VERSION:-v6.4.0}

SITE_LABEL=site
log() { printf 'site-csi %s: %s\n' "$SITE_LABEL" "$*" >&2; }
die() { log "$*"; exit 1; }

# phase NAME START: says how long NAME took since START (from `now`).
phase() { log "$1 took $(secs_since "$2") s"; }

load_site() {
  site_env "$DIR" || return 1
  KUBELET_ROOT=$DIR/kubelet
  CSI=$DIR/lab-csi
  SOCKET=$KUBELET_ROOT/plugins/$DRIVER/csi.sock
}

kubectl_() { "$KUBE_BIN/kubectl" --kubeconfig "$DIR/kubeconfig" "$@"; }

running() {
  local n
  for n in lab-driver csi-provisioner; do
    pidfile_alive "$CSI/$n.pid" || return 1
  done
}

# The kubelet has recorded the driver in its node's CSINode (after NodeGetInfo).
csinode_lists_driver() {
  [[ " $(kubectl_ get csinode "$NODE_NAME" -o jsonpath='{.spec.drivers[*].name}') " == *" $DRIVER "* ]]
}

# This external-provisioner holds the leader lease (it provisions only then). Its log says
# so: the lease names only the host, the same for a restarted one.
provisioner_leads() {
  grep -F 'became leader, starting' "$CSI/csi-provisioner.log"
}

# A kubeconfig with a token of the provisioner's ServiceAccount: the identity and RBAC a
# pod of its Deployment would have.
provisioner_kubeconfig() {
  local token
  token=$(kubectl_ -n "$NAMESPACE" create token csi-provisioner --duration=168h)
  kubeconfig_file "$CSI/csi-provisioner.kubeconfig" "$SITE_LABEL" "https://$NODE_IP:6443" "$DIR/pki/ca.crt" \
    csi-provisioner --token "$token" --namespace "$NAMESPACE"
}

# The API objects the driver and its provisioner need, and the provisioner's kubeconfig
# (CSI/csi-provisioner.kubeconfig): what both a host node's deployment (up) and a VM
# node's (hack/site-vm-node.sh --lab-csi, whose guest runs the two) start from.
prepare() {
  local rbac
  mkdir -p "$CSI"
  kubectl_ apply -f "$ROOT/examples/lab-csi/lab-csi.yaml" >/dev/null
  # external-provisioner's own RBAC, from the module it is built from, in the driver's namespace.
  rbac=$(cd /tmp && go mod download -json "$PROVISIONER_MODULE@$PROVISIONER_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')/deploy/kubernetes/rbac.yaml
  [[ -f $rbac ]] || die "no deploy/kubernetes/rbac.yaml in $PROVISIONER_MODULE@$PROVISIONER_VERSION"
  sed "s/namespace: default\$/namespace: $NAMESPACE/" "$rbac" | kubectl_ apply -f - >/dev/null
  provisioner_kubeconfig
}

up() {
  load_site || die "no site in $DIR: run hack/site.sh up $DIR first"
  if running; then
    log "already up"
    echo "$CSI/lab-csi.json"
    return 0
  fi
  [[ -x $PROVISIONER ]] || die "external-provisioner missing: run hack/install-csi-provisioner.sh"
  [[ -f $CLI ]] || die "$CLI missing: run npm run build"
  [[ -d $KUBELET_ROOT/plugins_registry ]] || die "no kubelet plugin registration directory in $KUBELET_ROOT"
  down_quiet
  trap 'log "up failed: stopping what was started"; down_quiet' EXIT
  trap 'exit 1' INT TERM
  mkdir -p "$CSI/data"

  local t0 t
  t0=$(now)
  t=$(now)
  prepare
  phase "CSIDriver, StorageClass, ServiceAccount and RBAC" "$t"

  t=$(now)
  in_ns_start "$CSI" lab-driver "$NODE" "$CLI" csi-lab-driver --endpoint "unix://$SOCKET" --data-dir "$CSI/data" \
    --node-id "$NODE_NAME" --registration-dir "$KUBELET_ROOT/plugins_registry"
  in_ns_start "$CSI" csi-provisioner "$PROVISIONER" --csi-address="$SOCKET" --kubeconfig="$CSI/csi-provisioner.kubeconfig" \
    --leader-election --leader-election-namespace="$NAMESPACE" --timeout=60s --v=3
  wait_until "$CSI" "the driver in CSINode $NODE_NAME (kubelet registration)" 60 lab-driver csinode_lists_driver
  phase "lab driver registered with the kubelet" "$t"
  wait_until "$CSI" "external-provisioner's leader lease" 60 "lab-driver csi-provisioner" provisioner_leads
  phase "external-provisioner leading" "$t"
  trap - EXIT INT TERM

  cat >"$CSI/lab-csi.json" <<EOF
{
  "driver": "$DRIVER",
  "storageClass": "lab-csi",
  "namespace": "$NAMESPACE",
  "socket": "$SOCKET",
  "registrationSocket": "$KUBELET_ROOT/plugins_registry/$DRIVER-reg.sock",
  "dataDir": "$CSI/data",
  "driverLog": "$CSI/lab-driver.log",
  "provisionerLog": "$CSI/csi-provisioner.log"
}
EOF
  phase "up (total)" "$t0"
  echo "$CSI/lab-csi.json"
}

down_quiet() {
  # The provisioner first (it calls the driver); the driver then removes its registration
  # socket (the kubelet drops it from CSINode) before it stops serving.
  # Their command lines name DIR: a pid reused since is left alone.
  stop_pidfile "$CSI/csi-provisioner.pid" "$DIR/"
  stop_pidfile "$CSI/lab-driver.pid" "$DIR/"
  # Loop devices over the lab volumes' image files. A device still mounted (a pod left
  # running) is only marked to go with its last unmount: site.sh down unmounts it.
  detach_loops_under "$CSI/data"
  rm -f "$CSI/lab-csi.json"
}

DIR=
case ${1:-} in
  up)
    [[ $# -eq 2 ]] || die "usage: $0 up DIR"
    DIR=$(cd "$2" && pwd)
    up
    ;;
  prepare)
    [[ $# -eq 2 ]] || die "usage: $0 prepare DIR"
    DIR=$(cd "$2" && pwd)
    load_site || die "no site in $DIR: run hack/site.sh up $DIR first"
    prepare
    echo "$CSI/csi-provisioner.kubeconfig"
    ;;
  down)
    [[ $# -eq 2 ]] || die "usage: $0 down DIR"
    [[ -d $2 ]] || exit 0
    DIR=$(cd "$2" && pwd)
    CSI=$DIR/lab-csi
    load_site || true
    down_quiet
    ;;
  *) die "usage: $0 up DIR | prepare DIR | down DIR" ;;
esac
