#!/usr/bin/env bash
# Installs the real Kubernetes tools the lab and the operator and chart tests run against:
# etcd (Debian's etcd-server); kube-apiserver, kubectl and, for sites with real nodes
# (hack/site.sh), kube-controller-manager, kube-scheduler, kubelet and kube-proxy, all
# built from the k8s.io/kubernetes Go module of one pinned release; and helm built from its
# Go module. With --promtool (test-only: the test command passes it) also Prometheus's
# promtool, which proves the chart's alert rules.
# None of them is an npm package.
# Idempotent; binaries are cached outside the repo, in ~/.cache/blockmirror/kube-<version>.
# Prints nothing on stdout; a cold build takes about 15 minutes (warm: nothing to do).
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.36.3}
HELM_VERSION=${HELM_VERSION:-v4.3.1}
PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-v0.316.0}
CACHE=${BLOCKMIRROR_CACHE:-$HOME/.cache/blockmirror}/kube-$KUBE_VERSION
BIN=$CACHE/bin

log() { printf 'install-kube: %s\n' "$*" >&2; }

WITH_PROMTOOL=0
case ${1:-} in
  --promtool) WITH_PROMTOOL=1 ;;
  '') ;;
  *) log "usage: $0 [--promtool]"; exit 2 ;;
esac

if ! command -v etcd >/dev/null; then
  log "installing etcd-server"
  if [[ $(id -u) -eq 0 ]]; then sudo=(); else sudo=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
  # The package starts a system etcd on 2379; the tests run their own on free ports.
  "${sudo[@]}" systemctl disable --now etcd >/dev/null 2>&1 || true
fi

command -v go >/dev/null || { log "go not found: Go >= 1.25 is needed to build kube-apiserver and helm" >&2; exit 1; }

# go_tool NAME MODULE PACKAGE VERSION: `go install`s PACKAGE@VERSION into $BIN unless the
# binary there was built from MODULE at VERSION. The module version is read from the
# binary itself: `helm version`, for one, says only v4.3 for a go-installed helm.
go_tool() {
  local name=$1 module=$2 package=$3 version=$4
  if [[ -x $BIN/$name ]] && go version -m "$BIN/$name" 2>/dev/null | grep "^[[:space:]]*mod[[:space:]]*$module[[:space:]]*$version" >/dev/null; then
    log "$name $version already built"
    return 0
  fi
  log "building $name $version (cold: ~4 min)"
  mkdir -p "$BIN"
  GOBIN=$BIN go install "$package@$version"
}

go_tool helm helm.sh/helm/v4 helm.sh/helm/v4/cmd/helm "$HELM_VERSION"
((WITH_PROMTOOL == 0)) || go_tool promtool github.com/prometheus/prometheus github.com/prometheus/prometheus/cmd/promtool "$PROMETHEUS_VERSION"

# Every binary built from k8s.io/kubernetes. Each is rebuilt unless it carries the
# version stamped in and was built against k8s.io/kubernetes at that version.
KUBE_CMDS="kube-apiserver kubectl kube-controller-manager kube-scheduler kubelet kube-proxy"
built_at_version() {
  local bin=$BIN/$1
  [[ -x $bin ]] &&
    go version -m "$bin" 2>/dev/null | grep -E "^[[:space:]]+(mod|dep)[[:space:]]+k8s.io/kubernetes[[:space:]]+$KUBE_VERSION([[:space:]]|$)" >/dev/null &&
    grep -a -F "$KUBE_VERSION" "$bin" >/dev/null
}
missing=()
for cmd in $KUBE_CMDS; do built_at_version "$cmd" || missing+=("$cmd"); done
if ((${#missing[@]} == 0)); then
  log "$KUBE_CMDS $KUBE_VERSION already built"
  exit 0
fi
log "building ${missing[*]} $KUBE_VERSION (cold: ~8 min for the first, ~1-2 min for each further one)"
MOD=$CACHE/module
mkdir -p "$MOD" "$BIN"
cd "$MOD"
minor=${KUBE_VERSION#v1.}
minor=${minor%%.*}
staging_version=v0.${KUBE_VERSION#v1.}

# k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with
# ./staging paths that do not exist outside its own tree; a module that requires it
# must replace each of them with the published release of the same version.
go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" >kubernetes.json
gomod=$(sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p' kubernetes.json)
[[ -f $gomod ]] || { log "could not download k8s.io/kubernetes@$KUBE_VERSION" >&2; exit 1; }
{
  echo "module blockmirror.local/kubetools"
  echo
  echo "go 1.25"
  echo
  echo "require k8s.io/kubernetes $KUBE_VERSION"
  echo
  echo "replace ("
  awk -v v="$staging_version" '$2 == "=>" && $3 ~ /^\.\/staging\// { printf "\t%s => %s %s\n", $1, $1, v }' "$gomod"
  echo ")"
} >go.mod
{
  printf '//go:build tools\n\npackage kubetools\n\nimport (\n'
  for cmd in $KUBE_CMDS; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$cmd"; done
  printf ')\n'
} >tools.go
GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || GOFLAGS=-mod=mod go mod tidy
# Without the version stamped in, the server reports v0.0.0-master and version checks fail.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean"
done
for cmd in "${missing[@]}"; do
  start=$SECONDS
  GOFLAGS=-mod=mod go build -tags tools -ldflags "$ldflags" -o "$BIN/$cmd.tmp.$$" "k8s.io/kubernetes/cmd/$cmd"
  # Renamed when complete: an interrupted build is redone next time, and another user
  # of the cache never runs a half-written binary.
  mv "$BIN/$cmd.tmp.$$" "$BIN/$cmd"
  log "built $cmd in $((SECONDS - start)) s"
done
log "built into $BIN"
