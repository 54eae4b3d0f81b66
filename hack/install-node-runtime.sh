#!/usr/bin/env bash
# Installs what a real Kubernetes node of the test bed runs besides the kubelet
# (hack/site.sh): containerd and runc, the CNI plugins (bridge, host-local, portmap,
# loopback), iptables and conntrack for the plugins and kube-proxy, what the test images
# are assembled from (busybox-static), and what the chart's images are built with
# (mmdebstrap for the Debian base, buildah for the Dockerfile). All are Debian packages. The kube binaries come from hack/install-kube.sh.
# Idempotent: prints one line and does nothing when everything is installed.
set -euo pipefail

DEB_PACKAGES="containerd runc containernetworking-plugins iptables conntrack iproute2 util-linux busybox-static mmdebstrap buildah"

log() { printf 'install-node-runtime: %s\n' "$*" >&2; }

missing=()
for pkg in $DEB_PACKAGES; do
  [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true) == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
  log "containerd, runc, the CNI plugins and the image tools already installed"
  exit 0
fi
log "installing Debian packages: ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then sudo=(); else sudo=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
# Other worktrees may be installing at the same time: wait for dpkg's lock.
"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq
"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The package may start a system containerd on /run/containerd; each site runs its own
# private one (own root, state and socket), so the system one is not wanted.
"${sudo[@]}" systemctl disable --now containerd >/dev/null 2>&1 || true
