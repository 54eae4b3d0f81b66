#!/usr/bin/env bash
# A real Kubernetes control plane on loopback for tests and the lab: etcd and
# kube-apiserver (built by hack/install-kube.sh), with generated certificates and tokens.
# No controller-manager, scheduler or kubelet: the operator and sidecars run as processes.
#
# Usage: hack/control-plane.sh up DIR     start one; DIR receives kubeconfig, tokens and logs
#        hack/control-plane.sh down DIR   stop the one in DIR (idempotent)
#        hack/control-plane.sh bin        print the directory holding kubectl and kube-apiserver
# `up` prints the kubeconfig's path and returns once the API server answers /readyz.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.36.3}
BIN=${BLOCKMIRROR_CACHE:-$HOME/.cache/blockmirror}/kube-$KUBE_VERSION/bin

log() { printf 'control-plane: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

free_port() {
  node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

stop_pidfile() {
  local f=$1 pid
  [[ -f $f ]] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

down() {
  local dir=$1
  stop_pidfile "$dir/kube-apiserver.pid"
  stop_pidfile "$dir/etcd.pid"
}

certs() {
  local d=$1/pki
  mkdir -p "$d"
  [[ -f $d/apiserver.crt ]] && return 0
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=blockmirror-test-ca \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout "$d/apiserver.key" -out "$d/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n' >"$d/san.ext"
  openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 30 \
    -extfile "$d/san.ext" -out "$d/apiserver.crt" 2>/dev/null
  # Service-account token signing key (TokenRequest, `kubectl create token`).
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
}

up() {
  local dir=$1
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [[ -x $BIN/kube-apiserver ]] || die "kube-apiserver not built: run hack/install-kube.sh"
  command -v etcd >/dev/null || die "etcd not installed: run hack/install-kube.sh"
  down "$dir"
  certs "$dir"
  local etcd_port etcd_peer api_port token
  etcd_port=$(free_port)
  etcd_peer=$(free_port)
  api_port=$(free_port)
  if [[ ! -f $dir/admin.token ]]; then
    token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    printf '%s\n' "$token" >"$dir/admin.token"
    printf '%s,admin,admin-uid,system:masters\n' "$token" >"$dir/tokens.csv"
  fi
  token=$(cat "$dir/admin.token")

  etcd --name default --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "default=http://127.0.0.1:$etcd_peer" >"$dir/etcd.log" 2>&1 &
  echo $! >"$dir/etcd.pid"

  "$BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$etcd_port" \
    --secure-port="$api_port" --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
    --tls-cert-file="$dir/pki/apiserver.crt" --tls-private-key-file="$dir/pki/apiserver.key" \
    --client-ca-file="$dir/pki/ca.crt" --token-auth-file="$dir/tokens.csv" \
    --authorization-mode=RBAC --allow-privileged=true \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$dir/pki/sa.pub" --service-account-signing-key-file="$dir/pki/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 >"$dir/kube-apiserver.log" 2>&1 &
  echo $! >"$dir/kube-apiserver.pid"

  cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: local
    cluster:
      server: https://127.0.0.1:$api_port
      certificate-authority: $dir/pki/ca.crt
users:
  - name: admin
    user:
      token: $token
contexts:
  - name: local
    context: { cluster: local, user: admin, namespace: default }
current-context: local
EOF
  local deadline=$((SECONDS + 90))
  until "$BIN/kubectl" --kubeconfig "$dir/kubeconfig" get --raw /readyz >/dev/null 2>&1; do
    kill -0 "$(cat "$dir/kube-apiserver.pid")" 2>/dev/null || { tail -n 20 "$dir/kube-apiserver.log" >&2; die "kube-apiserver exited"; }
    kill -0 "$(cat "$dir/etcd.pid")" 2>/dev/null || { tail -n 20 "$dir/etcd.log" >&2; die "etcd exited"; }
    ((SECONDS < deadline)) || die "kube-apiserver not ready after 90 s (logs in $dir)"
    sleep 0.2
  done
  # The default namespace and ServiceAccount: with no controller-manager nobody else makes the latter.
  "$BIN/kubectl" --kubeconfig "$dir/kubeconfig" get serviceaccount default >/dev/null 2>&1 ||
    "$BIN/kubectl" --kubeconfig "$dir/kubeconfig" create serviceaccount default >/dev/null 2>&1 || true
  echo "$dir/kubeconfig"
}

case ${1:-} in
  up) [[ $# -eq 2 ]] || die "usage: $0 up DIR"; up "$2" ;;
  down) [[ $# -eq 2 ]] || die "usage: $0 down DIR"; down "$2" ;;
  bin) echo "$BIN" ;;
  *) die "usage: $0 up DIR | down DIR | bin" ;;
esac
