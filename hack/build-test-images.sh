#!/usr/bin/env bash
# Assembles the small images the node tests run, by hand, as OCI image archives (what
# `ctr -n k8s.io images import` takes), under fully qualified local names so that the
# container runtime never resolves them to a registry:
#   localhost/blockmirror/test-busybox:<hash>  busybox-static with its applets (sh, nc,
#                                              sleep, wget...) for test pods
# The tag is a hash of the inputs; archives are cached in ~/.cache/blockmirror/test-images
# and rebuilt only when an input changes. Prints a JSON object on stdout:
#   {"busybox":{"image":...,"archive":...}}
# (The pod sandbox image is hack/build-images.sh's pause.) Needs busybox-static
# (hack/install-node-runtime.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${BLOCKMIRROR_CACHE:-$HOME/.cache/blockmirror}/test-images
BUSYBOX=/bin/busybox

log() { printf 'build-test-images: %s\n' "$*" >&2; }

sha() { sha256sum "$1" | cut -d' ' -f1; }

# oci_archive ROOTFS NAME ENTRYPOINT_JSON OUT: a one-layer OCI image archive of ROOTFS
# named NAME, written atomically to OUT.
oci_archive() {
  local rootfs=$1 name=$2 entrypoint=$3 out=$4 work
  work=$(mktemp -d)
  mkdir -p "$work/oci/blobs/sha256"
  # Reproducible layer: sorted, owned by root, fixed times.
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$rootfs" -cf "$work/layer.tar" .
  local layer layer_size config config_size manifest manifest_size
  layer=$(sha "$work/layer.tar")
  layer_size=$(stat -c %s "$work/layer.tar")
  mv "$work/layer.tar" "$work/oci/blobs/sha256/$layer"
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$entrypoint" "$layer" >"$work/config.json"
  config=$(sha "$work/config.json")
  config_size=$(stat -c %s "$work/config.json")
  mv "$work/config.json" "$work/oci/blobs/sha256/$config"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$config" "$config_size" "$layer" "$layer_size" >"$work/manifest.json"
  manifest=$(sha "$work/manifest.json")
  manifest_size=$(stat -c %s "$work/manifest.json")
  mv "$work/manifest.json" "$work/oci/blobs/sha256/$manifest"
  # containerd names the imported image after io.containerd.image.name.
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest" "$manifest_size" "$name" "${name##*:}" >"$work/oci/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/oci" -cf "$out.tmp.$$" .
  mv "$out.tmp.$$" "$out"
  rm -rf "$work"
}

mkdir -p "$CACHE"

# The busybox image: busybox-static and a symlink per applet.
[[ -x $BUSYBOX ]] || { log "$BUSYBOX missing: run hack/install-node-runtime.sh"; exit 1; }
busybox_tag=$(cat "$BUSYBOX" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12)
busybox_name=localhost/blockmirror/test-busybox:$busybox_tag
busybox_archive=$CACHE/test-busybox-$busybox_tag.oci.tar
if [[ -f $busybox_archive ]]; then
  log "test-busybox:$busybox_tag already built"
else
  log "building test-busybox:$busybox_tag"
  rootfs=$(mktemp -d)
  mkdir -p "$rootfs"/{bin,etc,tmp,root}
  chmod 1777 "$rootfs/tmp"
  cp "$BUSYBOX" "$rootfs/bin/busybox"
  for applet in $("$BUSYBOX" --list); do
    [[ $applet == busybox ]] || ln -s busybox "$rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
  oci_archive "$rootfs" "$busybox_name" '["/bin/sh"]' "$busybox_archive"
  rm -rf "$rootfs"
fi

printf '{"busybox":{"image":"%s","archive":"%s"}}\n' "$busybox_name" "$busybox_archive"
