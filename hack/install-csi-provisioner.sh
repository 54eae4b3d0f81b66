#!/usr/bin/env bash
# Builds external-provisioner, the Kubernetes CSI sidecar that turns the claims of a
# StorageClass into CreateVolume/DeleteVolume calls, from its Go module (pinned) into the
# tool cache, for the lab CSI driver's controller on the real sites (hack/site-csi.sh).
# It is not an npm package, and its go.mod carries replace directives, so `go install
# MODULE@VERSION` refuses it: it is built inside the downloaded module (the module cache is
# read-only; nothing is written there), with the version stamped in as its Makefile does.
# No external-attacher: the lab driver has no ControllerPublish (its CSIDriver says
# attachRequired: false), so nothing would ever call it.
# Idempotent: rebuilt only when the cached binary does not report the pinned version.
# Prints the binary's path on stdout (logs on stderr). Cold: about 11 min measured (module
# downloads and the build: its k8s.io dependencies are v0.36.1, not the kube builds'
# v0.36.3, so little is shared); warm: nothing to do.
set -euo pipefail

MODULE=github.com/kubernetes-csi/external-provisioner/v6
VERSION=${EXTERNAL_PROVISIONER_VERSION:-v6.4.0}
BIN=${BLOCKMIRROR_CACHE:-$HOME/.cache/blockmirror}/csi/bin

log() { printf 'install-csi-provisioner: %s\n' "$*" >&2; }

command -v go >/dev/null || { log "go not found: Go >= 1.26 is needed to build external-provisioner $VERSION"; exit 1; }

if [[ -x $BIN/csi-provisioner ]] && [[ $("$BIN/csi-provisioner" --version 2>/dev/null) == *" $VERSION" ]]; then
  log "external-provisioner $VERSION already built"
  printf '%s\n' "$BIN/csi-provisioner"
  exit 0
fi

log "building external-provisioner $VERSION (cold: ~11 min)"
start=$SECONDS
dir=$(cd /tmp && go mod download -json "$MODULE@$VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[[ -d $dir/cmd/csi-provisioner ]] || { log "no cmd/csi-provisioner after go mod download of $MODULE@$VERSION"; exit 1; }
mkdir -p "$BIN"
tmp=$BIN/.csi-provisioner.tmp.$$
trap 'rm -f "$tmp"' EXIT
# Static, like the release images; -mod=readonly: the module's own go.sum decides every dependency.
(cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -ldflags "-s -w -X main.version=$VERSION" -o "$tmp" ./cmd/csi-provisioner)
[[ $("$tmp" --version) == *" $VERSION" ]] || { log "the binary built does not report $VERSION"; exit 1; }
# Renamed when complete: another user of the cache never runs a half-written binary.
mv "$tmp" "$BIN/csi-provisioner"
trap - EXIT
log "built external-provisioner $VERSION in $((SECONDS - start)) s"
printf '%s\n' "$BIN/csi-provisioner"
