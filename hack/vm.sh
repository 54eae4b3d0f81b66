#!/usr/bin/env bash
# A real Linux kernel for tests that need device-mapper and NBD (this machine's kernel
# has neither): Debian's kernel booted in qemu (TCG; KVM is not usable here) with a
# busybox initramfs that loads the needed modules, mounts the host's root read-only over
# 9p and runs a command in a chroot of it — so node, dmsetup, nbd-client, mkfs.ext4 and
# the repository are all there.
#
# Usage: hack/vm.sh build                       install qemu and build kernel + initramfs (idempotent)
#   In the VM the host's tree is read-only; /run is the writable scratch space.
#        hack/vm.sh run [--disk FILE]... -- CMD  boot, run CMD (sh -c) in the chroot, power off;
#                                               exits with CMD's status. Disks appear as /dev/vda, vdb...
# Output of CMD goes to stdout; the kernel's console to $VM_CONSOLE_LOG (default: discarded).
# VM_TIMEOUT (default 300) seconds bound the whole run; VM_MEMORY (MiB) and VM_CPUS size it.
# Cached outside the repo, in ~/.cache/blockmirror/vm.
set -euo pipefail

CACHE=${BLOCKMIRROR_CACHE:-$HOME/.cache/blockmirror}/vm
KPKG_META=linux-image-amd64
# Modules the VM loads, in any order (dependencies are resolved from modules.dep).
MODULES="crc32c_generic virtio_pci virtio_blk 9p 9pnet_virtio qemu_fw_cfg dm_mod dm_era dm_multipath dm_round_robin nbd ext4 loop"

log() { printf 'vm: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

apt_install() {
  local missing=() p
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]}"
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

build() {
  apt_install qemu-system-x86 busybox-static nbd-client dmsetup thin-provisioning-tools cpio e2fsprogs kmod xz-utils zstd
  # Rebuilt when this script changes (the init script and module list live here).
  local stamp
  stamp=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)
  [[ -f $CACHE/vmlinuz && -f $CACHE/initrd.img && $(cat "$CACHE/stamp" 2>/dev/null) == "$stamp" ]] && { log "kernel and initramfs already built ($CACHE)"; return 0; }
  mkdir -p "$CACHE"
  local work
  work=$(mktemp -d)
  chmod 755 "$work" # apt's sandbox user downloads into it
  # The kernel package is unpacked, not installed: the host's own kernel stays as it is.
  local kpkg
  kpkg=$(apt-cache depends "$KPKG_META" | awk '/Depends: linux-image-/ { print $2; exit }')
  [[ -n $kpkg ]] || die "cannot resolve $KPKG_META"
  log "fetching $kpkg"
  (cd "$work" && apt-get download -qq -o APT::Sandbox::User=root "$kpkg" >/dev/null)
  dpkg-deb -x "$work"/"$kpkg"_*.deb "$work/kernel"
  local kver
  kver=$(ls "$work/kernel/lib/modules")
  local moddir=$work/kernel/lib/modules/$kver
  # The package ships no modules.dep (depmod runs at install time): make it here.
  /sbin/depmod -b "$work/kernel" "$kver"

  # initramfs: busybox, the modules (with their dependencies, in load order), /init.
  local root=$work/initramfs
  mkdir -p "$root"/{bin,dev,proc,sys,host,modules,tmp}
  cp /bin/busybox "$root/bin/busybox"
  local order=() seen=" " m
  add_module() {
    local rel=$1 dep
    [[ $seen == *" $rel "* ]] && return 0
    for dep in $(awk -v m="$rel:" '$1 == m { for (i = 2; i <= NF; i++) print $i }' "$moddir/modules.dep"); do add_module "$dep"; done
    seen+="$rel "
    order+=("$rel")
  }
  for m in $MODULES; do
    local rel
    # Module names treat '-' and '_' alike (dm_mod is dm-mod.ko).
    rel=$(awk -F: -v n="${m//-/_}" '{ b = $1; sub(/.*\//, "", b); sub(/\.ko(\.xz|\.zst)?$/, "", b); gsub(/-/, "_", b); if (b == n) { print $1; exit } }' "$moddir/modules.dep")
    if [[ -z $rel ]]; then
      # Built into this kernel: nothing to load.
      sed 's/-/_/g' "$moddir/modules.builtin" | grep "/${m//-/_}.ko$" >/dev/null || die "module $m not found in $kver"
      continue
    fi
    add_module "$rel"
  done
  : >"$root/modules/order"
  for m in "${order[@]}"; do
    local base
    base=$(basename "$m")
    cp "$moddir/$m" "$root/modules/$base"
    case $base in *.xz) xz -d "$root/modules/$base"; base=${base%.xz} ;; *.zst) zstd -q -d --rm "$root/modules/$base"; base=${base%.zst} ;; esac
    echo "$base" >>"$root/modules/order"
  done
  cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
ip link set lo up
while read -r m; do insmod "/modules/$m" 2>/dev/null || echo "vm-init: insmod $m failed" >/dev/console; done </modules/order
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose hostroot /host || { echo "vm-init: 9p mount failed"; poweroff -f; }
# The host's tree, read-only, with the VM's own /proc, /sys and /dev, and a writable
# tmpfs at /run for scratch. The host's /tmp stays visible: checkouts may live there.
for d in proc sys dev; do mount --bind /$d /host/$d; done
mount -t tmpfs run /host/run
cmd=$(cat /sys/firmware/qemu_fw_cfg/by_name/opt/blockmirror.cmd/raw 2>/dev/null)
chroot /host /bin/sh -c "cd /run && $cmd" >/dev/ttyS1 2>&1
echo "vm-exit-status: $?" >/dev/ttyS1
sync
poweroff -f
EOF
  chmod +x "$root/init"
  (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 >"$work/initrd.img")
  cp "$work/kernel/boot/vmlinuz-$kver" "$CACHE/vmlinuz.tmp"
  mv "$work/initrd.img" "$CACHE/initrd.img"
  mv "$CACHE/vmlinuz.tmp" "$CACHE/vmlinuz"
  echo "$kver" >"$CACHE/kernel-version"
  echo "$stamp" >"$CACHE/stamp"
  rm -rf "$work"
  log "built kernel $kver and initramfs in $CACHE"
}

run() {
  local disks=() cmd
  while (($#)); do
    case $1 in
      --disk) disks+=(-drive "file=$2,if=virtio,format=raw,cache=unsafe"); shift 2 ;;
      --) shift; break ;;
      *) die "usage: $0 run [--disk FILE]... -- CMD" ;;
    esac
  done
  (($#)) || die "usage: $0 run [--disk FILE]... -- CMD"
  cmd=$*
  [[ -f $CACHE/vmlinuz ]] || die "not built: run $0 build"
  local out
  out=$(mktemp)
  local cmdfile
  cmdfile=$(mktemp)
  printf '%s' "$cmd" >"$cmdfile"
  # ttyS0: the kernel's console; ttyS1: the command's output and exit status.
  # A hung guest must not hang the caller: the whole boot-run-poweroff has a deadline.
  timeout "${VM_TIMEOUT:-300}" qemu-system-x86_64 -accel tcg -cpu max -m "${VM_MEMORY:-2048}" -smp "${VM_CPUS:-2}" -nographic -no-reboot \
    -kernel "$CACHE/vmlinuz" -initrd "$CACHE/initrd.img" \
    -append "console=ttyS0 quiet panic=-1 rdinit=/init" \
    -fw_cfg "name=opt/blockmirror.cmd,file=$cmdfile" \
    -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
    "${disks[@]}" \
    -serial "file:${VM_CONSOLE_LOG:-/dev/null}" -serial "file:$out" -monitor none </dev/null >/dev/null || true
  local status
  status=$(sed -n 's/^vm-exit-status: \([0-9]*\).*/\1/p' "$out" | tail -n 1)
  sed '/^vm-exit-status: /d' "$out"
  rm -f "$out" "$cmdfile"
  [[ -n $status ]] || die "the VM did not report an exit status (console: ${VM_CONSOLE_LOG:-set VM_CONSOLE_LOG to keep it})"
  return "$status"
}

case ${1:-} in
  build) build ;;
  run) shift; run "$@" ;;
  *) die "usage: $0 build | run [--disk FILE]... -- CMD" ;;
esac
