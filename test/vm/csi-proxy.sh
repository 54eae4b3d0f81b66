#!/bin/sh
# Runs inside the VM (hack/vm.sh run --disk secondary.img -- sh csi-proxy.sh REPO
# NBD_HELPER CSI_PROTO_DIR): the lab CSI driver behind the CSI node proxy, the proxy
# staging opted-in volumes through this node's sidecar. Two ext4 volumes are staged and
# published through the proxy as the kubelet would: one with the opt-in parameter (it must
# be mounted from /dev/mapper/blockmirror-<pv>, device-mapper over the driver's loop
# device), one without (mounted from the loop device, no device-mapper). Then the opted-in
# one is replicated to a second sidecar (/dev/vda) and cannot be unstaged while attached.
# Prints "csi: ..." lines; exits non-zero on any failure.
set -eu
REPO=$1 HELPER=$2
export BLOCKMIRROR_CSI_PROTO_DIR=$3
W=/run/csi
mkdir -p $W/k
CLI="node $REPO/dist/sidecar/cli/main.js"
A=127.0.0.1:7401
LAB=unix://$W/lab.sock
PROXY=unix://$W/proxy.sock
MIB=64
TAG=csi PAIR=pv FAIL_LOG=$W/proxy.log
. "$REPO/test/vm/lib.sh"
call() { # endpoint method json
  $CLI csi-call "$1" "$2" --json "$3" --timeout 120000 || fail "$2 $3"
}
CAP='{"mount":{"fsType":"ext4"},"accessMode":{"mode":"SINGLE_NODE_WRITER"}}'
create() { # name opt-in
  call $LAB CreateVolume "{\"name\":\"$1\",\"capacityRange\":{\"requiredBytes\":$((MIB << 20))},\"volumeCapabilities\":[$CAP],\"parameters\":{\"blockmirror.io/replicate\":\"$2\"}}" >$W/$1.create.json
  sed -n 's/.*"volumeId": *"\([^"]*\)".*/\1/p' $W/$1.create.json
}
stage() { # id opt-in
  mkdir -p $W/k/$1/staging $W/k/$1/pod
  ctx="{\"blockmirror.io/replicate\":\"$2\"}"
  call $PROXY NodeStageVolume "{\"volumeId\":\"$1\",\"stagingTargetPath\":\"$W/k/$1/staging\",\"volumeCapability\":$CAP,\"volumeContext\":$ctx}" >/dev/null
  call $PROXY NodePublishVolume "{\"volumeId\":\"$1\",\"stagingTargetPath\":\"$W/k/$1/staging\",\"targetPath\":\"$W/k/$1/pod/vol\",\"volumeCapability\":$CAP,\"volumeContext\":$ctx}" >/dev/null
}
unstage() { # id
  call $PROXY NodeUnpublishVolume "{\"volumeId\":\"$1\",\"targetPath\":\"$W/k/$1/pod/vol\"}" >/dev/null
  call $PROXY NodeUnstageVolume "{\"volumeId\":\"$1\",\"stagingTargetPath\":\"$W/k/$1/staging\"}" >/dev/null
}

$CLI csi-lab-driver --endpoint $LAB --data-dir $W/data --node-id vm >$W/lab.log 2>&1 &
# A: the CSI proxy names the devices it stages at its private paths ($W/proxy); the pair
# on the staged device is allowed through the splice; its socket in $W. B: its raw disk, by name.
$CLI sidecar --state-dir $W/a --control-listen $A --peer-listen 127.0.0.1:0 --nbd-helper "$HELPER" --run-dir $W --allow-volume-prefix $W/proxy >$W/a.log 2>&1 &
$CLI sidecar --state-dir $W/b --control-listen 127.0.0.1:0 --peer-listen 127.0.0.1:0 --allow-volume-prefix /dev/vda >$W/b.log 2>&1 &
$CLI csi-proxy --endpoint $PROXY --driver $LAB --state-dir $W/proxy --splice-control $A >$W/proxy.log 2>&1 &
wait_log $W/lab.log "lab CSI driver ready"
wait_log $W/proxy.log "CSI node proxy ready"
wait_log $W/a.log "sidecar ready"
wait_log $W/b.log "sidecar ready"

REP=$(create pvc-rep true)
PLAIN=$(create pvc-plain false)
[ -n "$REP" ] && [ -n "$PLAIN" ] || fail "CreateVolume gave no volume id"
stage "$REP" true
stage "$PLAIN" false

src_rep=$(findmnt -no SOURCE $W/k/$REP/staging)
src_plain=$(findmnt -no SOURCE $W/k/$PLAIN/staging)
case $src_rep in /dev/mapper/blockmirror-*) ;; *) fail "opted-in volume staged from $src_rep, not device-mapper" ;; esac
dm=${src_rep#/dev/mapper/}
device=$($CLI volume list --control $A | sed -n 's/.*"device": *"\([^"]*\)".*/\1/p' | head -n 1)
case $device in /dev/loop*) ;; *) fail "the splice is over $device, not the driver's loop device" ;; esac
say "opted-in volume: staged from $src_rep ($(dmsetup table "$dm")), over the driver's $device"
case $src_plain in /dev/loop*) ;; *) fail "volume without opt-in staged from $src_plain" ;; esac
[ "$(dmsetup ls | grep -c blockmirror-)" -eq 2 ] || fail "device-mapper devices besides the opted-in volume's and its dm-era: $(dmsetup ls)"
say "volume without opt-in: staged from $src_plain, untouched (no device-mapper device)"
for id in $REP $PLAIN; do
  head -c 1048576 /dev/urandom >$W/data.bin
  cp $W/data.bin $W/k/$id/pod/vol/data.bin
  sync
  cmp $W/data.bin $W/k/$id/pod/vol/data.bin || fail "data written to $id reads back different"
done
say "both published to their pods' target paths, written and read back"

# Replicate the opted-in volume, live, under its mounted filesystem.
$CLI pair create pv --control "$(ready_field $W/b.log control)" --volume /dev/vda --role secondary >/dev/null
$CLI pair create pv --control $A --volume "$device" --role primary --peer "$(ready_field $W/b.log peer)" --nbd-socket $W/pv.sock >/dev/null
$CLI volume attach "${dm#blockmirror-}" pv --control $A >/dev/null || fail "attach failed"
wait_state InSync
call $PROXY NodeUnpublishVolume "{\"volumeId\":\"$REP\",\"targetPath\":\"$W/k/$REP/pod/vol\"}" >/dev/null
$CLI csi-call $PROXY NodeUnstageVolume --json "{\"volumeId\":\"$REP\",\"stagingTargetPath\":\"$W/k/$REP/staging\"}" --expect-code FAILED_PRECONDITION >/dev/null ||
  fail "unstage while replication is attached was not refused"
say "replication attached through the proxy's device (InSync); unstage refused while attached"
# The refused unstage unmounted the filesystem (the kubelet's pod is gone) and kept the
# device: nothing writes to it now.
[ -e "/dev/mapper/$dm" ] || fail "the refused unstage removed /dev/mapper/$dm"
wait_state InSync
[ "$(sha256sum <"$device")" = "$(sha256sum </dev/vda)" ] || fail "secondary differs"
$CLI volume detach "${dm#blockmirror-}" --control $A >/dev/null || fail "detach failed"
# The pair holds the driver's device open: it goes before the volume can.
$CLI pair delete pv --control $A >/dev/null || fail "pair delete failed"
say "secondary byte-identical; detached"

# The kubelet retries the unstage; the publish is already gone.
call $PROXY NodeUnstageVolume "{\"volumeId\":\"$REP\",\"stagingTargetPath\":\"$W/k/$REP/staging\"}" >/dev/null
unstage "$PLAIN"
[ ! -e "/dev/mapper/$dm" ] || fail "/dev/mapper/$dm still there after unstage"
[ "$(dmsetup ls | grep -c blockmirror-)" -eq 0 ] || fail "device-mapper devices left: $(dmsetup ls)"
for id in $REP $PLAIN; do call $LAB DeleteVolume "{\"volumeId\":\"$id\"}" >/dev/null; done
[ -z "$(losetup -a)" ] || fail "loop devices left: $(losetup -a)"
say "unstaged and deleted: no device-mapper or loop device left"
