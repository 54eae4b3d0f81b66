#!/usr/bin/env bash
# The blockmirror chart on a real site of the test bed (hack/site.sh): its pods run on the
# site's kubelet from the images hack/build-images.sh built here, imported by name and
# never pulled.
#
# Usage: hack/site-chart.sh install DIR --ca CA_DIR [--images FILE] [--release NAME]
#                                   [--namespace NS] [-- HELM_ARGS...]
#          `helm upgrade --install` of charts/blockmirror on the site in DIR, then waits
#          until the operator Deployment and the sidecar DaemonSet are rolled out and
#          Ready. Idempotent: run it again with other HELM_ARGS (say `--set
#          sidecar.logLevel=debug`) to upgrade. Prints a JSON object on stdout:
#            {"release","namespace","values","tlsSecret","ca","peerEndpoints":[...]}
#          --ca: a directory holding ca.crt and ca.key (made there when missing, under a
#          lock, so sites installed at once share it); every site's sidecars trust it.
#          --images: the JSON hack/build-images.sh prints (default: run it; warm, it
#          only hashes its inputs). Images the node lacks are imported first.
#        hack/site-chart.sh uninstall DIR [--release NAME] [--namespace NS]
#          `helm uninstall` (the CRD and the ReplicationPairs stay, as for a user);
#          nothing to do when the release is not there.
#
# What the test bed sets, and why (DIR/chart/values.yaml):
#   image.*               the local images, imagePullPolicy Never (no registry here);
#   sidecar.hostNetwork   sites reach each other only at node addresses: on the pod
#                         network the sidecar would advertise its pod address, which the
#                         remote site cannot reach and no certificate made beforehand names;
#   sidecar.kubeletDir    the site's kubelet root dir (DIR/kubelet), not /var/lib/kubelet;
#   sidecar.stateDir      DIR/blockmirror-state: the node's pair state, kept across
#                         pod restarts and `site.sh down`/`up` like a node's disk;
#   sidecar.allowedVolumePaths  /dev/loop*: the test bed's `local` volumes are loop
#                         devices over files the sidecar's container cannot see (so the
#                         backing-file rule cannot allow them), made after the install;
#   tls.existingSecret    blockmirror-peer-tls (and -control, -operator): the chart's three
#                         identities, signed by CA_DIR, with URI subjectAltNames
#                         spiffe://blockmirror/<site label>/{peer,sidecar-control,operator}.
#                         The peer and control certificates carry the chart's DNS name
#                         <release>-sidecar-peer.<namespace>.svc, which the operator
#                         verifies on the control port whatever node it dials, and the
#                         node's addresses (and 127.0.0.1), for the peer port, which the
#                         remote site dials by node address. The control port admits only
#                         the operator's identity; the peer port only peer identities.
set -euo pipefail
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=hack/lib/site-pki.sh
source "$ROOT/hack/lib/site-pki.sh"
CHART=$ROOT/charts/blockmirror
TLS_SECRET=blockmirror-peer-tls

LABEL=site
log() { printf 'site-chart %s: %s\n' "$LABEL" "$*" >&2; }
die() { log "$*"; exit 1; }

# site_field EXPR: a value from DIR/site.json (EXPR is JavaScript over `s`).
site_field() {
  node -e 'const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(eval(process.argv[2]))' \
    "$DIR/site.json" "$1"
}

load_site() {
  [[ -f $DIR/site.json ]] || die "no site in $DIR (hack/site.sh up first)"
  LABEL=$(site_field s.name)
  KUBECTL=$(site_field s.kubectl)
  # hack/install-kube.sh builds helm beside kubectl.
  HELM=$(dirname "$KUBECTL")/helm
  KUBECONFIG_FILE=$(site_field s.kubeconfig)
  SOCKET=$(site_field s.containerdSocket)
  NODE_IPS=$(site_field 's.nodes.map((n) => n.address).join(" ")')
  KUBELET_DIR=$(site_field 's.nodes[0].kubeletRootDir')
  [[ -x $HELM ]] || die "no helm at $HELM: run hack/install-kube.sh"
}

k() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" "$@"; }
helm_() { "$HELM" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# image_field JSON NAME FIELD: e.g. image_field "$json" sidecar archive.
image_field() {
  node -e 'const j = JSON.parse(process.argv[1]); console.log(j[process.argv[2]][process.argv[3]])' "$1" "$2" "$3"
}

# import_missing ARCHIVE IMAGE: imports ARCHIVE unless the node's containerd has IMAGE.
import_missing() {
  if ctr --address "$SOCKET" --namespace k8s.io images ls -q | grep -Fx -- "$2" >/dev/null; then
    return 0
  fi
  bash "$ROOT/hack/site.sh" import "$DIR" "$1"
}

# ensure_ca CA_DIR: ca.crt and ca.key, made once (sites installing at once share them).
ensure_ca() {
  mkdir -p "$1"
  (
    flock 9
    if [[ ! -f $1/ca.crt || ! -f $1/ca.key ]]; then
      pki_key "$1/ca.key.tmp"
      openssl req -x509 -new -key "$1/ca.key.tmp" -days 30 -subj "/CN=blockmirror test bed peer CA" -out "$1/ca.crt.tmp" 2>/dev/null
      mv "$1/ca.key.tmp" "$1/ca.key"
      mv "$1/ca.crt.tmp" "$1/ca.crt"
      log "made the peer CA in $1"
    fi
  ) 9>"$1/.lock"
}

# sidecar_dns_name: the name the chart's operator verifies sidecars by (the chart's
# blockmirror.sidecarServerName default).
sidecar_dns_name() {
  local full=$RELEASE
  [[ $RELEASE == *blockmirror* ]] || full=$RELEASE-blockmirror
  printf '%s-sidecar-peer.%s.svc' "${full:0:50}" "$NS"
}

# site_cert CA_DIR: DIR/chart/{tls,control,operator}.{crt,key}, the chart's three
# identities (see the header); reissued when the names or the CA changed.
site_cert() {
  local ca=$1 d=$DIR/chart san stamp ip id
  id="spiffe://blockmirror/$(site_identity_name)"
  san="DNS:$(sidecar_dns_name),IP:127.0.0.1,DNS:localhost"
  for ip in $NODE_IPS; do san+=",IP:$ip"; done
  stamp="$san $id $(openssl x509 -in "$ca/ca.crt" -noout -fingerprint -sha256)"
  [[ -f $d/tls.stamp && $(cat "$d/tls.stamp") == "$stamp" ]] && return 0
  # The peer link, both ends: served on the peer port and presented when dialling.
  pki_issue "$ca" "$d" tls "/CN=blockmirror-sidecar-$LABEL" \
    "subjectAltName=$san,URI:$id/peer"$'\n'"extendedKeyUsage=serverAuth,clientAuth"
  pki_issue "$ca" "$d" control "/CN=blockmirror-sidecar-control-$LABEL" \
    "subjectAltName=$san,URI:$id/sidecar-control"$'\n'"extendedKeyUsage=serverAuth"
  pki_issue "$ca" "$d" operator "/CN=blockmirror-operator-$LABEL" \
    "subjectAltName=URI:$id/operator"$'\n'"extendedKeyUsage=clientAuth"
  printf '%s\n' "$stamp" >"$d/tls.stamp"
  log "issued the site's certificates ($san; $id/...)"
}

# site_identity_name: the site's label as the <site> of its identities (a DNS label).
site_identity_name() {
  local n
  n=$(printf '%s' "$LABEL" | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9.-' '-')
  printf '%s' "${n:0:63}"
}

# values OPERATOR_IMAGE SIDECAR_IMAGE: DIR/chart/values.yaml (see the header).
values() {
  local op=$1 sc=$2
  cat >"$DIR/chart/values.yaml" <<EOF
# Written by hack/site-chart.sh for site $LABEL.
image:
  operator: { repository: ${op%:*}, tag: "${op##*:}" }
  sidecar: { repository: ${sc%:*}, tag: "${sc##*:}" }
  pullPolicy: Never
sidecar:
  hostNetwork: true
  kubeletDir: $KUBELET_DIR
  stateDir: $DIR/blockmirror-state
  allowedVolumePaths: ["/dev/loop*"]
tls:
  existingSecret: $TLS_SECRET
EOF
}

# diagnose: what the chart's pods are doing, for a rollout that did not finish.
diagnose() {
  {
    k -n "$NS" get pods -o wide
    k -n "$NS" get events --sort-by=.lastTimestamp | tail -n 30
    k -n "$NS" logs -l "app.kubernetes.io/instance=$RELEASE" --all-containers --prefix --tail=20
  } >&2 2>&1 || true
}

install() {
  local ca='' images_file='' helm_args=()
  while (($#)); do
    case $1 in
      --ca) ca=$2; shift 2 ;;
      --images) images_file=$2; shift 2 ;;
      --release) RELEASE=$2; shift 2 ;;
      --namespace) NS=$2; shift 2 ;;
      --) shift; helm_args=("$@"); break ;;
      *) die "unknown option $1" ;;
    esac
  done
  [[ -n $ca ]] || die "install needs --ca CA_DIR"
  load_site
  local t0=$SECONDS images
  if [[ -n $images_file ]]; then images=$(cat "$images_file"); else images=$(bash "$ROOT/hack/build-images.sh"); fi
  local op sc
  op=$(image_field "$images" operator image)
  sc=$(image_field "$images" sidecar image)
  import_missing "$(image_field "$images" operator archive)" "$op"
  import_missing "$(image_field "$images" sidecar archive)" "$sc"

  mkdir -p "$DIR/chart"
  ensure_ca "$ca"
  site_cert "$ca"
  values "$op" "$sc"
  k create namespace "$NS" --dry-run=client -o yaml | k apply -f - >/dev/null
  local part secret
  for part in tls control operator; do
    secret=$TLS_SECRET
    [[ $part == tls ]] || secret+=-$part
    k -n "$NS" create secret generic "$secret" --from-file=tls.crt="$DIR/chart/$part.crt" \
      --from-file=tls.key="$DIR/chart/$part.key" --from-file=ca.crt="$ca/ca.crt" --dry-run=client -o yaml |
      k apply -f - >/dev/null
  done
  log "helm upgrade --install $RELEASE ${helm_args[*]}"
  helm_ upgrade --install "$RELEASE" "$CHART" --namespace "$NS" -f "$DIR/chart/values.yaml" \
    ${helm_args[@]+"${helm_args[@]}"} >/dev/null
  log "helm done after $((SECONDS - t0)) s"
  local w
  for w in $(k -n "$NS" get deployment,daemonset -l "app.kubernetes.io/instance=$RELEASE" -o name); do
    # A sidecar on a VM node under TCG takes 150-180 s to be Ready on a quiet machine,
    # far longer on a loaded one: ROLLOUT_TIMEOUT (seconds) bounds the wait.
    k -n "$NS" rollout status "$w" --timeout="${ROLLOUT_TIMEOUT:-600}s" >/dev/null 2>&1 || { diagnose; die "$w not rolled out"; }
    log "$w rolled out and Ready after $((SECONDS - t0)) s"
  done
  log "installed in $((SECONDS - t0)) s"
  # Where the remote site's primaries dial this site's sidecars: node address, peer port.
  local port peers='' ip
  port=$(helm_ get values "$RELEASE" -n "$NS" --all -o json | node -e 'console.log(JSON.parse(require("fs").readFileSync(0, "utf8")).sidecar.peerPort)')
  for ip in $NODE_IPS; do peers+="${peers:+,}\"$ip:$port\""; done
  printf '{"release":"%s","namespace":"%s","values":"%s","tlsSecret":"%s","ca":"%s","peerEndpoints":[%s]}\n' \
    "$RELEASE" "$NS" "$DIR/chart/values.yaml" "$TLS_SECRET" "$(cd "$ca" && pwd)/ca.crt" "$peers"
}

uninstall() {
  while (($#)); do
    case $1 in
      --release) RELEASE=$2; shift 2 ;;
      --namespace) NS=$2; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  load_site
  if ! helm_ status "$RELEASE" -n "$NS" >/dev/null 2>&1; then
    log "no release $RELEASE"
    return 0
  fi
  helm_ uninstall "$RELEASE" -n "$NS" --wait --timeout 180s >/dev/null
  log "uninstalled $RELEASE (the CRD and the ReplicationPairs stay)"
}

RELEASE=blockmirror
NS=blockmirror-system
DIR=
case ${1:-} in
  install | uninstall)
    [[ $# -ge 2 && -d $2 ]] || die "usage: $0 $1 DIR [options]"
    cmd=$1
    DIR=$(cd "$2" && pwd)
    shift 2
    "$cmd" "$@"
    ;;
  *) die "usage: $0 install DIR --ca CA_DIR [--images FILE] [--release NAME] [--namespace NS] [-- HELM_ARGS...] | uninstall DIR" ;;
esac
