#!/bin/sh
# Runs inside the VM (hack/vm.sh run --disk primary.img --disk secondary.img -- sh
# splice.sh REPO NBD_HELPER): ext4 on
# /dev/mapper/blockmirror-pv1 over /dev/vda with a writer running; replication attached
# live by swapping the dm table onto /dev/nbd0, served by the primary sidecar's export of
# /dev/vda and replicated to a secondary sidecar on /dev/vdb; then detached live the same
# way. Prints "splice: ..." progress lines and exits non-zero on any failure.
set -eu
REPO=$1
# The VM's writable scratch space (the host's tree, /tmp included, is read-only).
W=/run/splice
mkdir -p "$W"
CLI="node $REPO/dist/sidecar/cli/main.js"
DM=blockmirror-pv1
TAG=splice PAIR=pv1 FAIL_LOG=$W/a.log
. "$REPO/test/vm/lib.sh"

HELPER=$2
# Each sidecar's raw disk allowed by name (A's to stage it); A's NBD socket in $W (the run dir).
$CLI sidecar --state-dir $W/b --control-listen 127.0.0.1:0 --peer-listen 127.0.0.1:0 --allow-volume-prefix /dev/vdb >$W/b.log 2>&1 &
$CLI sidecar --state-dir $W/a --control-listen 127.0.0.1:0 --peer-listen 127.0.0.1:0 --nbd-helper "$HELPER" --run-dir $W --allow-volume-prefix /dev/vda >$W/a.log 2>&1 &
wait_log $W/b.log "sidecar ready"
wait_log $W/a.log "sidecar ready"
A=$(ready_field $W/a.log control)
B=$(ready_field $W/b.log control)

# Staging (what the CSI proxy does at NodeStageVolume): the stable device, direct.
$CLI volume stage pv1 /dev/vda --control "$A" >/dev/null || fail "stage failed"
mkfs.ext4 -q -F -b 4096 "/dev/mapper/$DM"
mkdir -p $W/mnt
mount "/dev/mapper/$DM" $W/mnt
say "ext4 mounted on /dev/mapper/$DM (direct: through dm-era to /dev/vda)"

# The application: files written and synced in a loop until told to stop.
( n=0; while [ ! -e $W/stop-writer ]; do
    n=$((n + 1)); head -c 65536 /dev/urandom >"$W/mnt/f$((n % 40))"; sync; sleep 0.2
  done; echo "$n" >$W/writer-done ) &

$CLI pair create pv1 --control "$B" --volume /dev/vdb --role secondary >/dev/null
# The secondary's pair holds /dev/vdb exclusively: no dm table (nor mount) can claim it.
dmsetup --noudevsync create bm-foreign-b --table "0 8 linear /dev/vdb 0" >/dev/null 2>&1 && fail "a dm table claimed the secondary's device under its pair"
dmsetup --noudevsync remove bm-foreign-b >/dev/null 2>&1 || true
say "secondary pair holds /dev/vdb: a dm table over it was refused"
# A staged volume is held by the splice's dm-era only; any other holder is named and refused.
dmsetup --noudevsync create bm-foreign --table "0 8 linear /dev/vda 0" || fail "could not create a foreign dm device over /dev/vda"
out=$($CLI pair create pv1 --control "$A" --volume /dev/vda --role primary --nbd-socket $W/pv1.sock 2>&1) && fail "a pair on /dev/vda was created beside a foreign dm device"
case $out in *"but also held by device-mapper device bm-foreign:"*) ;; *) fail "the refusal did not name the foreign holder: $out" ;; esac
dmsetup --noudevsync remove bm-foreign
say "primary pair refused while bm-foreign held /dev/vda beside the splice"
$CLI pair create pv1 --control "$A" --volume /dev/vda --role primary --peer "$(ready_field $W/b.log peer)" \
  --nbd-socket $W/pv1.sock >/dev/null
say "primary pair on /dev/vda, held by the splice's $(cat /sys/class/block/vda/holders/*/dm/name)"
# Attach, live: the table swap holds new I/O while the export takes over.
$CLI volume attach pv1 pv1 --control "$A" >$W/attach.json || fail "attach failed"
say "attached: $(dmsetup table "$DM") -> $(dmsetup table "$DM-tap")"
wait_state InSync
say "initial copy done while the writer ran: InSync"
sleep 2

# Quiesce: stop the writer, flush, freeze the filesystem so nothing moves while comparing.
touch $W/stop-writer
i=0; until [ -e $W/writer-done ]; do i=$((i + 1)); [ $i -lt 600 ] || fail "writer did not stop"; sleep 0.1; done
sync
fsfreeze -f $W/mnt
$CLI pair status pv1 --control "$A" -o json >/dev/null
wait_state InSync
[ "$(sha256sum </dev/vda)" = "$(sha256sum </dev/vdb)" ] || fail "secondary differs from primary"
say "secondary byte-identical to the primary after $(cat $W/writer-done) writer passes"
fsfreeze -u $W/mnt

# Detach live, the same way: suspend (drains through the tap), back to the volume.
$CLI volume detach pv1 --control "$A" >/dev/null || fail "detach failed"
say "detached: $(dmsetup table "$DM")"
head -c 65536 /dev/urandom >$W/mnt/after-detach
sync
$CLI volume unstage pv1 --control "$A" >/dev/null 2>&1 && fail "unstage of a mounted volume succeeded"
umount $W/mnt
e2fsck -fn "/dev/mapper/$DM" >$W/fsck.log 2>&1 || { cat $W/fsck.log; fail "fsck found errors"; }
say "never remounted while attached and detached; fsck clean"
$CLI volume unstage pv1 --control "$A" >/dev/null || fail "unstage failed"
[ ! -e "/dev/mapper/$DM" ] || fail "/dev/mapper/$DM still there after unstage"
say "unstaged"

# The pod back after its pause and unstage: a fresh staging, the same pair attached again.
# What the detached volume took (the file above, the unmount's own writes) was seen by the
# first staging's dm-era only, which the unstage removed: it must still reach the secondary.
$CLI volume stage pv1 /dev/vda --control "$A" >/dev/null || fail "stage again failed"
$CLI volume attach pv1 pv1 --control "$A" >/dev/null || fail "attach to the new staging failed"
carried=$(grep '"message":"replication attached"' $W/a.log | tail -n 1 | sed -n 's/.*"untrackedBytes":\([0-9]*\).*/\1/p')
oos() { $CLI pair status pv1 --control "$A" -o json 2>/dev/null | sed -n 's/.*"outOfSyncBytes": *\([0-9]*\).*/\1/p'; }
i=0; until [ "$(state)" = InSync ] && [ "$(oos)" = 0 ]; do i=$((i + 1)); [ $i -lt 1200 ] || fail "never InSync with nothing out of sync after the new staging (now $(state), $(oos) bytes)"; sleep 0.25; done
[ "$(sha256sum </dev/vda)" = "$(sha256sum </dev/vdb)" ] || fail "the writes made while detached did not reach the secondary across the unstage"
$CLI volume detach pv1 --control "$A" >/dev/null || fail "detach failed"
$CLI volume unstage pv1 --control "$A" >/dev/null || fail "unstage failed"
say "staged again and attached: ${carried:-?} bytes written while detached, carried over the unstage; secondary byte-identical"
