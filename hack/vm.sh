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
#        hack/vm.sh start --pidfile F --output F [--disk FILE]... [--share TAG=DIR]... [--netdev OPTS] -- CMD
#                                               boot in the background and return (qemu -daemonize);
#                                               CMD is the guest's long-running workload: the VM
#                                               runs until CMD exits or qemu (the pid in F) is killed.
#                                               --share: DIR writable in the guest as 9p tag TAG;
#                                               --netdev: a virtio NIC on `-netdev user,OPTS` (callers
#                                               give restrict=on and their forwards).
# Output of CMD goes to stdout (start: to --output); the kernel's console to $VM_CONSOLE_LOG
# (default: discarded). VM_TIMEOUT (default 300) seconds bound a whole run; VM_MEMORY (MiB)
# and VM_CPUS size the VM.
# Besides MODULES (loaded at boot), the initramfs carries what a Kubernetes node needs
# (netfilter, bridge, veth, overlay, virtio-net: NODE_MODULE_DIRS) with their modules.dep
# and aliases; the kernel loads them on demand through kmod run in the chroot, and
# `modprobe -d /run/vm-modules NAME` loads one from the chroot.
# Cached outside the repo, in ~/.cache/blockmirror/vm/<hash of this script>.
set -euo pipefail

# Keyed by this script (the init script and module lists live here), so that checkouts of
# different versions share the cache without overwriting each other's kernel.
CACHE=${BLOCKMIRROR_CACHE:-$HOME/.cache/blockmirror}/vm/$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)
KPKG_META=linux-image-amd64
# Modules the VM loads, in any order (dependencies are resolved from modules.dep).
MODULES="crc32c_generic virtio_pci virtio_blk 9p 9pnet_virtio qemu_fw_cfg dm_mod dm_era dm_multipath dm_round_robin nbd ext4 loop"
# Shipped for loading on demand (a Kubernetes node in the guest: hack/site-vm-node.sh): every
# module under these directories of the kernel's tree, with its dependencies.
NODE_MODULE_DIRS="kernel/net/netfilter kernel/net/ipv4/netfilter kernel/net/ipv6/netfilter kernel/net/bridge kernel/fs/overlayfs kernel/drivers/net/veth.ko kernel/drivers/net/virtio_net.ko kernel/drivers/net/dummy.ko"

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
  # Built once per version of this script ($CACHE is keyed by it), published by one rename.
  [[ -f $CACHE/vmlinuz && -f $CACHE/initrd.img ]] && { log "kernel and initramfs already built ($CACHE)"; return 0; }
  mkdir -p "${CACHE%/*}"
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
  mkdir -p "$root"/{bin,dev,proc,sys,host,modules,run,tmp}
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
  # The node's modules, kept in the kernel's tree layout for kmod (modprobe -d).
  local nroot=$root/node-modules ndir=$root/node-modules/lib/modules/$kver d f
  mkdir -p "$ndir"
  order=()
  seen=" "
  for d in $NODE_MODULE_DIRS; do
    while read -r f; do add_module "${f#"$moddir"/}"; done < <(find "$moddir/$d" -name '*.ko*')
  done
  for m in "${order[@]}"; do
    mkdir -p "$ndir/$(dirname "$m")"
    cp "$moddir/$m" "$ndir/$m"
  done
  cp "$moddir/modules.builtin" "$moddir/modules.builtin.modinfo" "$moddir/modules.order" "$ndir/"
  /sbin/depmod -b "$nroot" "$kver"
  cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
ip link set lo up
# Modules the kernel asks for (a netfilter match, a bridge link) come from the node's
# modules, loaded by the host's kmod (busybox modprobe lacks aliases): see the end.
while read -r m; do insmod "/modules/$m" 2>/dev/null || echo "vm-init: insmod $m failed" >/dev/console; done </modules/order
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose hostroot /host || { echo "vm-init: 9p mount failed"; poweroff -f; }
# The host's tree, read-only, with the VM's own /proc, /sys and /dev, and a writable
# tmpfs at /run for scratch. The host's /tmp stays visible: checkouts may live there.
for d in proc sys dev; do mount --bind /$d /host/$d; done
mount -t tmpfs run /host/run
mkdir -p /host/run/vm-modules
mount --bind /node-modules /host/run/vm-modules
cmd=$(cat /sys/firmware/qemu_fw_cfg/by_name/opt/blockmirror.cmd/raw 2>/dev/null)
# The host's tree becomes the root (as switch_root does): moved onto /, and init itself
# chroots into it. A tree left at /host under a chroot would not be the mount namespace's
# root: a process that joins a container's mount namespace (runc exec, kubectl exec) would
# land in this initramfs instead of the container's root. Kernel threads share init's root,
# so the module helper is looked up in the new root; a copy here serves either way.
printf '#!/bin/busybox sh\nexec /bin/busybox chroot /proc/1/root /sbin/modprobe -d /run/vm-modules "$@"\n' >/run/vm-modprobe
printf '#!/bin/sh\nexec /sbin/modprobe -d /run/vm-modules "$@"\n' >/host/run/vm-modprobe
chmod +x /run/vm-modprobe /host/run/vm-modprobe
echo /run/vm-modprobe >/proc/sys/kernel/modprobe
cd /host
mount --move . / || { echo "vm-init: moving the host's tree onto / failed" >/dev/console; poweroff -f; }
exec chroot . /bin/busybox sh -c 'cd /run && /bin/sh -c "$1" >/dev/ttyS1 2>&1; echo "vm-exit-status: $?" >/dev/ttyS1; sync; /bin/busybox poweroff -f' vm-init "$cmd"
EOF
  chmod +x "$root/init"
  (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 >"$work/initrd.img")
  local tmp=$CACHE.tmp.$$
  mkdir -p "$tmp"
  cp "$work/kernel/boot/vmlinuz-$kver" "$tmp/vmlinuz"
  mv "$work/initrd.img" "$tmp/initrd.img"
  echo "$kver" >"$tmp/kernel-version"
  rm -rf "$work"
  # Another build may have published the same entry meanwhile: keep that one.
  mv -T "$tmp" "$CACHE" 2>/dev/null || rm -rf "$tmp"
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
    "${disks[@]}" -nic none \
    -serial "file:${VM_CONSOLE_LOG:-/dev/null}" -serial "file:$out" -monitor none </dev/null >/dev/null || true
  local status
  status=$(sed -n 's/^vm-exit-status: \([0-9]*\).*/\1/p' "$out" | tail -n 1)
  sed '/^vm-exit-status: /d' "$out"
  rm -f "$out" "$cmdfile"
  [[ -n $status ]] || die "the VM did not report an exit status (console: ${VM_CONSOLE_LOG:-set VM_CONSOLE_LOG to keep it})"
  return "$status"
}

# start: a VM that keeps running after this returns. The command is the guest's workload
# (a node's init); the caller stops the VM by killing qemu (the pid in --pidfile).
start() {
  local pidfile='' output='' disks=() shares=() net=(-nic none) cmd
  while (($#)); do
    case $1 in
      --pidfile) pidfile=$2; shift 2 ;;
      --output) output=$2; shift 2 ;;
      --disk) disks+=(-drive "file=$2,if=virtio,format=raw,cache=unsafe"); shift 2 ;;
      --share) shares+=(-virtfs "local,path=${2#*=},mount_tag=${2%%=*},security_model=none,multidevs=remap"); shift 2 ;;
      --netdev) net=(-netdev "user,id=net0,$2" -device "virtio-net-pci,netdev=net0"); shift 2 ;;
      --) shift; break ;;
      *) die "usage: $0 start --pidfile F --output F [--disk F]... [--share TAG=DIR]... [--netdev OPTS] -- CMD" ;;
    esac
  done
  if ((!$#)) || [[ -z $pidfile || -z $output ]]; then die "usage: $0 start --pidfile F --output F [options] -- CMD"; fi
  cmd=$*
  [[ -f $CACHE/vmlinuz ]] || die "not built: run $0 build"
  # The command is read by the guest at boot: it lives beside the pid file.
  printf '%s' "$cmd" >"$pidfile.cmd"
  # -daemonize returns once qemu has set up (a forward's port in use fails here, not later).
  qemu-system-x86_64 -accel tcg -cpu max -m "${VM_MEMORY:-2048}" -smp "${VM_CPUS:-2}" -display none -no-reboot \
    -kernel "$CACHE/vmlinuz" -initrd "$CACHE/initrd.img" \
    -append "console=ttyS0 quiet panic=-1 rdinit=/init" \
    -fw_cfg "name=opt/blockmirror.cmd,file=$pidfile.cmd" \
    -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
    "${shares[@]}" "${disks[@]}" "${net[@]}" \
    -serial "file:${VM_CONSOLE_LOG:-/dev/null}" -serial "file:$output" -monitor none \
    -daemonize -pidfile "$pidfile" </dev/null
}

case ${1:-} in
  build) build ;;
  run) shift; run "$@" ;;
  start) shift; start "$@" ;;
  *) die "usage: $0 build | run [--disk FILE]... -- CMD | start --pidfile F --output F [options] -- CMD" ;;
esac
