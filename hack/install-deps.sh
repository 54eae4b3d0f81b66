#!/usr/bin/env bash
# Installs what blockmirror's lab (hack/lab.sh), demo and benchmarks share on a fresh
# Debian 12 machine: Debian packages, node_modules, the kube binaries and helm, the CSI
# protos. Test-only tools (promtool, csi-sanity, the VM's kernel, the NBD netlink helper,
# crashfs) come with the test command (hack/test.sh); the real nodes' runtime and the
# images with hack/lab.sh and hack/test.sh. Idempotent: a second run does no network work
# when nothing changed.
set -euo pipefail

# Run from the repo root whatever the caller's cwd (npm ci needs package-lock.json here).
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Tools the NBD acceptance tests, the demo and the benchmarks shell out to.
DEB_PACKAGES="qemu-utils libnbd-bin nbdkit nbdfuse fio fuse3 e2fsprogs python3 util-linux procps iproute2 rsync openssl"

log() { printf 'install-deps: %s\n' "$*"; }

# Names that installed packages provide: on Debian 12 "nbdfuse" is a virtual
# package provided by libnbd-bin, which dpkg-query -W PKG does not resolve.
provided=" $(dpkg-query -W -f='${Status}\t${Provides}\n' 2>/dev/null |
  awk -F'\t' '$1 == "install ok installed" && $2 != "" { gsub(/ \([^)]*\)/, "", $2); gsub(/,/, "", $2); print $2 }' |
  tr '\n' ' ') "

missing=()
for pkg in $DEB_PACKAGES; do
  # Status is "install ok installed" only when fully installed; removed packages
  # report "deinstall ok config-files" and unknown ones "unknown ok not-installed".
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  if [[ "$status" != "install ok installed" && "$provided" != *" $pkg "* ]]; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  if [[ $(id -u) -eq 0 ]]; then sudo=(); else sudo=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "Debian packages already installed"
fi

# Node itself comes with the machine image (Debian 12's own nodejs is too old: >= 20.19 is needed).
command -v npm >/dev/null || { log "npm not found: install Node.js >= 20.19 first" >&2; exit 1; }

# npm ci wipes and rebuilds node_modules, so only run it when package-lock.json
# changed since the last successful install (its hash is recorded in node_modules).
stamp=node_modules/.lock-sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  log "node_modules up to date with package-lock.json"
else
  log "running npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  # Written last, so an interrupted npm ci is retried next time.
  printf '%s\n' "$want" >"$stamp"
fi

# The real clusters of the lab and the tests: etcd, kube-apiserver, kubectl, the node's
# kubelet and the other cluster components, helm.
bash hack/install-kube.sh

# The CSI spec's csi.proto and the kubelet's registration api.proto (loaded by the CSI
# proxy and lab driver).
bash hack/install-csi.sh >/dev/null
