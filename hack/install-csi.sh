#!/usr/bin/env bash
# Fetches the CSI spec's own csi.proto (the Go module github.com/container-storage-interface/spec,
# pinned) and the kubelet's plugin registration api.proto (the Go module k8s.io/kubelet of the
# release the kubelet is built from, pinned in proto/plugin-registration.json) into the Go
# module cache, where the CSI proxy and lab driver load them at run time. With --csi-sanity
# (test-only: the test command passes it) also builds csi-sanity, which the CSI acceptance
# tests run against them.
# None is an npm package; the protos are dependencies, not copies in the repo.
# Idempotent; csi-sanity is cached outside the repo, in ~/.cache/blockmirror/csi/bin.
# Prints the folder holding csi.proto on stdout (logs go to stderr).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# One pin for the build, the type generator (hack/gen-proto.mjs) and the runtime loader.
CSI_SPEC_MODULE=$(sed -n 's/^ *"module": "\(.*\)",\{0,1\}$/\1/p' proto/csi-spec.json)
CSI_SPEC_VERSION=$(sed -n 's/^ *"version": "\(.*\)",\{0,1\}$/\1/p' proto/csi-spec.json)
CSI_TEST_VERSION=${CSI_TEST_VERSION:-v5.6.0}
BIN=${BLOCKMIRROR_CACHE:-$HOME/.cache/blockmirror}/csi/bin

log() { printf 'install-csi: %s\n' "$*" >&2; }

WITH_SANITY=0
case ${1:-} in
  --csi-sanity) WITH_SANITY=1 ;;
  '') ;;
  *) log "usage: $0 [--csi-sanity]"; exit 2 ;;
esac

command -v go >/dev/null || { log "go not found: Go >= 1.22 is needed for csi.proto and csi-sanity" >&2; exit 1; }

[[ -n $CSI_SPEC_MODULE && -n $CSI_SPEC_VERSION ]] || { log "no module or version in proto/csi-spec.json" >&2; exit 1; }

# `go mod download` does no network work when the module is already in the cache (it
# was checked against the checksum database when first fetched): no stamp of our own.
dir=$(go mod download -json "$CSI_SPEC_MODULE@$CSI_SPEC_VERSION" |
  sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[[ -f $dir/csi.proto ]] || { log "csi.proto not found after go mod download (Dir: '$dir')" >&2; exit 1; }

REG_MODULE=$(sed -n 's/^ *"module": "\(.*\)",\{0,1\}$/\1/p' proto/plugin-registration.json)
REG_VERSION=$(sed -n 's/^ *"version": "\(.*\)",\{0,1\}$/\1/p' proto/plugin-registration.json)
REG_FILE=$(sed -n 's/^ *"file": "\(.*\)",\{0,1\}$/\1/p' proto/plugin-registration.json)
reg_dir=$(go mod download -json "$REG_MODULE@$REG_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[[ -f $reg_dir/$REG_FILE ]] || { log "$REG_FILE not found after go mod download of $REG_MODULE@$REG_VERSION" >&2; exit 1; }

# Rebuilt only when the binary there was not built from the pinned module version (read
# from the binary itself, as install-kube.sh does).
module=github.com/kubernetes-csi/csi-test/v5
if ((WITH_SANITY == 0)); then
  : # the protos are all the lab needs
elif [[ -x $BIN/csi-sanity ]] && go version -m "$BIN/csi-sanity" 2>/dev/null | grep "^[[:space:]]*mod[[:space:]]*$module[[:space:]]*$CSI_TEST_VERSION" >/dev/null; then
  log "csi-sanity $CSI_TEST_VERSION already built"
else
  log "building csi-sanity $CSI_TEST_VERSION (cold: ~2 min)"
  mkdir -p "$BIN"
  GOBIN=$BIN go install "$module/cmd/csi-sanity@$CSI_TEST_VERSION"
fi
printf '%s\n' "$dir"
