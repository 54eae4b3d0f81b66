#!/usr/bin/env bash
# Installs the Debian packages hack/build-images.sh and the image tests need: mmdebstrap
# (the Debian root filesystem), buildah (builds from the Dockerfile), containerd and runc
# (import the OCI archives and run containers, as a node does). Test infrastructure for
# now: the test command runs it, install-deps.sh (which the lab runs) does not.
# Idempotent: nothing to do when all are installed.
set -euo pipefail

DEB_PACKAGES="mmdebstrap buildah containerd runc"

log() { printf 'install-image-tools: %s\n' "$*" >&2; }

missing=()
for pkg in $DEB_PACKAGES; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
  log "Debian packages already installed"
  exit 0
fi
log "installing Debian packages: ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then sudo=(); else sudo=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
# Other worktrees may be installing at the same time: wait for dpkg's lock.
"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq
"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The package starts a system containerd where systemd runs; the tests start their own.
"${sudo[@]}" systemctl disable --now containerd >/dev/null 2>&1 || true
