#!/usr/bin/env bash
# The two-site lab, no external cluster needed: two real Kubernetes control planes
# (etcd + kube-apiserver) on loopback, each with the blockmirror chart installed by
# `helm install` and the operator and a sidecar running as processes (there is no
# kubelet) with the chart's ServiceAccount tokens, and a database volume (an ext4 image
# with files) replicated from site A to site B with `kubectl apply` of examples/two-site. It writes new data
# through site A's NBD export, waits for InSync, checks B is byte-identical, and
# prints `kubectl get rp` for both sites.
# Everything lives in a temp dir removed on exit (LAB_KEEP=1 keeps it running until Ctrl-C).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=hack/lib/processes.sh
source "$ROOT/hack/lib/processes.sh"
CLI=(node "$ROOT/dist/sidecar/cli/main.js")
NS=blockmirror-system
SIZE_MIB=64

log() { printf '\n==> %s\n' "$*"; }
die() { printf 'lab: %s\n' "$*" >&2; exit 1; }

log "installing dependencies (first run: builds kube-apiserver, kubectl and helm, ~12 min) and building"
bash hack/install-deps.sh
npm run --silent build
KUBECTL=$(bash hack/control-plane.sh bin)/kubectl
HELM=$(bash hack/control-plane.sh bin)/helm

WORK=$(mktemp -d -t blockmirror-lab.XXXXXX)
PIDS=()
cleanup() {
  local rc=$? pid
  set +e
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do stop "$pid"; done
  for site in a b; do bash hack/control-plane.sh down "$WORK/site-$site" 2>/dev/null; done
  if ((rc != 0)); then
    show_logs "$WORK"
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

k() { local site=$1; shift; "$KUBECTL" --kubeconfig "$WORK/site-$site/kubeconfig" "$@"; }

# render FILE VAR=VALUE...: the example with its ${VAR} placeholders filled in.
render() {
  local file=$1
  shift
  env "$@" perl -pe 'next if /^\s*#/; s/\$\{([A-Z_]+)\}/exists $ENV{$1} ? $ENV{$1} : die "no value for \${$1}\n"/ge' "$file"
}

wait_for() {
  local desc=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    for pid in "${PIDS[@]}"; do alive "$pid" || die "a lab process (pid $pid) exited while waiting for $desc"; done
    ((SECONDS < deadline)) || die "timed out waiting for $desc"
    sleep 0.2
  done
}

state_is() { [[ $(k "$1" get rp db-data -o 'jsonpath={.status.state}') == "$2" ]]; }

# token_kubeconfig SITE SERVICEACCOUNT: a kubeconfig with a TokenRequest token of the
# chart's ServiceAccount (what its pod would get), printed as a path.
token_kubeconfig() {
  local site=$1 sa=$2 token
  token=$(k "$site" create token "$sa" -n "$NS" --duration=24h)
  sed "s/token: .*/token: $token/" "$WORK/site-$site/kubeconfig" >"$WORK/site-$site/$sa.kubeconfig"
  echo "$WORK/site-$site/$sa.kubeconfig"
}

for site in a b; do
  log "site $site: starting etcd and kube-apiserver; helm install blockmirror"
  bash hack/control-plane.sh up "$WORK/site-$site" >/dev/null
  k "$site" version 2>/dev/null | sed 's/^/    /'
  k "$site" apply -f examples/namespace.yaml >/dev/null
  "$HELM" --kubeconfig "$WORK/site-$site/kubeconfig" install blockmirror charts/blockmirror -n "$NS" | sed -n '1,/^NOTES/p' | sed 's/^/    /'
  k "$site" wait --for=condition=Established --timeout=60s crd/replicationpairs.blockmirror.io >/dev/null
done

log "site A's volume: an ext4 filesystem with a database's files"
mkdir -p "$WORK/db"
for i in 1 2 3; do head -c 4M /dev/urandom >"$WORK/db/table$i.dat"; done
truncate -s "${SIZE_MIB}M" "$WORK/volume-a.img"
mkfs.ext4 -q -F -d "$WORK/db" "$WORK/volume-a.img"
truncate -s "${SIZE_MIB}M" "$WORK/volume-b.img"

for site in a b; do
  log "site $site: sidecar (registers as node-$site) and operator, with the chart's ServiceAccount tokens"
  "${CLI[@]}" sidecar --state-dir "$WORK/state-$site" --control-listen 127.0.0.1:0 --peer-listen 127.0.0.1:0 \
    --register-node "node-$site" --register-namespace "$NS" --kubeconfig "$(token_kubeconfig "$site" blockmirror-sidecar)" \
    >"$WORK/sidecar-$site.log" 2>&1 &
  PIDS+=($!)
  wait_for "sidecar $site" 30 ready_field "$WORK/sidecar-$site.log" peer
  "${CLI[@]}" operator --kubeconfig "$(token_kubeconfig "$site" blockmirror-operator)" --namespace "$NS" \
    --health-listen 127.0.0.1:0 --poll-ms 1000 --log-level "${LAB_LOG_LEVEL:-info}" >"$WORK/operator-$site.log" 2>&1 &
  PIDS+=($!)
done
PEER_B=$(ready_field "$WORK/sidecar-b.log" peer)

log "kubectl apply -f examples/two-site/site-b.yaml (secondary) and site-a.yaml (primary)"
render examples/two-site/site-b.yaml VOLUME_SIZE="${SIZE_MIB}Mi" VOLUME_PATH="$WORK/volume-b.img" NODE=node-b | k b apply -f -
render examples/two-site/site-a.yaml VOLUME_SIZE="${SIZE_MIB}Mi" VOLUME_PATH="$WORK/volume-a.img" NODE=node-a REMOTE_ENDPOINT="$PEER_B" | k a apply -f -

log "waiting for the initial copy: site A InSync"
wait_for "site A InSync" 120 state_is a InSync
k a get rp

log "writing new data through site A's NBD export (qemu-io)"
EXPORT=$(k a get rp db-data -o 'jsonpath={.status.exportAddress}')
qemu-io -f raw -c "write -P 0x5a 48M 8M" "nbd://$EXPORT/default.db-data" | tail -n 1
wait_for "site A InSync after the write" 60 state_is a InSync

log "site B holds the same bytes"
sha_a=$(sha256sum <"$WORK/volume-a.img" | cut -d' ' -f1)
sha_b=$(sha256sum <"$WORK/volume-b.img" | cut -d' ' -f1)
echo "site A $sha_a"
echo "site B $sha_b"
[[ $sha_a == "$sha_b" ]] || die "the volumes differ"
e2fsck -fn "$WORK/volume-b.img" >/dev/null 2>&1 && echo "site B's copy: ext4 clean (e2fsck -fn)"

log "kubectl get rp (site A)"
k a get rp
log "kubectl get rp (site B)"
k b get rp
log "kubectl describe rp db-data (site A)"
k a describe rp db-data | sed -n '/^Status:/,$p'

if [[ ${LAB_KEEP:-0} == 1 ]]; then
  log "lab running; kubeconfigs: $WORK/site-a/kubeconfig $WORK/site-b/kubeconfig (Ctrl-C to stop)"
  while :; do sleep 3600; done
fi
