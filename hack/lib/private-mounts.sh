# shellcheck shell=bash
# For a process that runs in its own mount namespace (unshare --mount --propagation
# private), so that every mount it makes goes away with it (source it; it defines
# functions only). Used by hack/build-images.sh and the tests' private containerd.

# drop_foreign_mounts: unmounts, in this namespace only, the copies it was born with of
# other processes' transient mounts under /tmp, /var/tmp, /run, /var/lib/kubelet and
# /var/lib/containerd: other test beds' network namespaces, container root filesystems,
# FUSE filesystems, pods' volumes. Held here, they would keep a network namespace alive
# after its owner deleted it, and make this namespace's processes look like that test
# bed's own to a cleanup that searches /proc/*/mountinfo.
drop_foreign_mounts() {
  local m
  # No such mount is no error (grep's 1 would end a caller under set -e -o pipefail).
  awk '{ print $5 }' /proc/self/mountinfo |
    { grep -E '^(/tmp|/var/tmp|/run|/var/run|/var/lib/kubelet|/var/lib/containerd)/.' || true; } |
    LC_ALL=C sort -r |
    while read -r m; do
      # Deepest first; mountinfo writes a space as \040.
      umount --lazy "$(printf '%b' "$m")" 2>/dev/null || true
    done
}
