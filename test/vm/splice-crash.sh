#!/bin/sh
# Runs inside the VM (hack/vm.sh run --disk primary.img --disk secondary.img -- sh
# splice-crash.sh REPO NBD_HELPER): the primary sidecar runs under `blockmirror
# supervise` with ext4 on /dev/mapper/blockmirror-pv1 attached and a writer running that
# logs every write it got acknowledged (fsync'd). Then:
#   A. kill -9 of the sidecar: the writer stalls, the supervisor restarts the sidecar,
#      which hands the kernel's NBD device a new socket; the writer goes on, no error.
#   B. kill -9 with the sidecar held down past the fallback deadline: the supervisor maps
#      the volume directly through dm-era, the writer goes on; when the sidecar returns it
#      attaches again and ships what dm-era recorded, not the whole volume.
# Finally the secondary must be byte-identical, every acknowledged write present, fsck
# clean. Prints "crash: ..." lines; exits non-zero on any failure.
set -eu
REPO=$1
HELPER=$2
W=/run/crash
mkdir -p "$W"
NODE=$(command -v node)
CLI="$NODE $REPO/dist/sidecar/cli/main.js"
DM=blockmirror-pv1
A=127.0.0.1:7401
FALLBACK_AFTER=120
TAG=crash PAIR=pv1 FAIL_LOG=$W/sup.log
. "$REPO/test/vm/lib.sh"
now() { date +%s; }

# Ready lines of the supervised sidecar (the supervisor's own line has more words).
readies() { grep -c '"message":"sidecar ready"' $W/sup.log || true; }
wait_readies() {
  i=0
  until [ "$(readies)" -ge "$1" ]; do i=$((i + 1)); [ $i -lt 3000 ] || fail "sidecar start $1 never ready"; sleep 0.1; done
}
acked() { wc -l <$W/acked; }
# Waits until the writer has had `n` more writes acknowledged than now.
wait_progress() {
  base=$(acked) i=0
  until [ "$(acked)" -ge $((base + $1)) ]; do
    [ ! -e $W/writer-error ] || fail "write error: $(cat $W/writer-error)"
    i=$((i + 1)); [ $i -lt 1200 ] || fail "writer made no progress"; sleep 0.25
  done
}
# The sidecar process (the supervisor's child; under the hold wrapper it is the sh).
child() { pgrep -P "$SUP" | head -n 1; }
# Longest gap between two acknowledged writes, in seconds.
longest_stall() { awk 'NR > 1 && $4 - t > m { m = $4 - t } { t = $4 } END { print m + 0 }' $W/acked; }
# The resync of the latest sidecar start: bytes it had to ship besides new writes.
last_resync() { grep '"message":"resync started"' $W/sup.log | tail -n 1 | sed -n 's/.*"outOfSyncBytes":\([0-9]*\).*/\1/p'; }

VOLUME_BYTES=$(($(blockdev --getsz /dev/vda) * 512))
$CLI sidecar --state-dir $W/b --control-listen 127.0.0.1:0 --peer-listen 127.0.0.1:0 --allow-volume-prefix /dev/vdb >$W/b.log 2>&1 &
wait_log $W/b.log "sidecar ready"
B=$(ready_field $W/b.log control)
$CLI pair create pv1 --control "$B" --volume /dev/vdb --role secondary >/dev/null

# The supervised primary. The wrapper holds a start back while $W/hold exists: a sidecar
# that cannot come back in time.
$CLI supervise --state-dir $W/a --nbd-helper "$HELPER" --fallback-after $FALLBACK_AFTER -- \
  sh -c "while [ -e $W/hold ]; do sleep 0.2; done; exec $CLI sidecar --state-dir $W/a --control-listen $A --peer-listen 127.0.0.1:0 --nbd-helper $HELPER --nbd-dead-timeout 300 --run-dir $W --allow-volume-prefix /dev/vda" \
  >$W/sup.log 2>&1 &
SUP=$!
wait_readies 1

$CLI volume stage pv1 /dev/vda --control $A >/dev/null || fail "stage failed"
mkfs.ext4 -q -F -b 4096 "/dev/mapper/$DM"
mkdir -p $W/mnt
mount "/dev/mapper/$DM" $W/mnt
$CLI pair create pv1 --control $A --volume /dev/vda --role primary --peer "$(ready_field $W/b.log peer)" --nbd-socket $W/pv1.sock >/dev/null
$CLI volume attach pv1 pv1 --control $A >/dev/null || fail "attach failed"
wait_state InSync
say "attached under the supervisor, InSync (volume $VOLUME_BYTES bytes)"

# The application: every write fsync'd, and logged only once acknowledged.
: >$W/acked
( n=0; while [ ! -e $W/stop-writer ]; do
    n=$((n + 1)); f=$((n % 64))
    head -c 65536 /dev/urandom >$W/chunk
    dd if=$W/chunk of=$W/mnt/f$f bs=65536 conv=fsync 2>$W/dd.err || { echo "write $n: $(cat $W/dd.err)" >$W/writer-error; exit 1; }
    echo "$n $f $(sha256sum <$W/chunk | cut -c1-64) $(now)" >>$W/acked
  done; echo "$n" >$W/writer-done ) &
wait_progress 5

# A. kill -9, restarted within the kernel's dead-connection timeout.
victim=$(child)
kill -9 "$victim"
killed=$(now)
wait_readies 2
grep -q '"message":"NBD device reconnected"' $W/sup.log || fail "the restarted sidecar did not reconnect the NBD device"
! grep -q 'falling back' $W/sup.log || fail "fell back although the sidecar came back in time"
wait_progress 5
wait_state InSync
say "A: kill -9 of the sidecar: writer stalled up to $(longest_stall) s, went on after the restart, no write error"
say "A: resync after the restart shipped $(last_resync) of $VOLUME_BYTES bytes"

# B. kill -9 and held down past the fallback deadline.
touch $W/hold
victim=$(child)
kill -9 "$victim"
i=0
# The tap's one path is the dm-era device over the volume once the fallback ran.
until era=$(dmsetup info -c --noheadings -o major,minor "$DM-era" 2>/dev/null) && dmsetup table "$DM-tap" | grep -q " $era "; do
  i=$((i + 1)); [ $i -lt 1200 ] || fail "no fallback to the direct path (tap: $(dmsetup table $DM-tap))"; sleep 0.25
done
say "B: sidecar down past ${FALLBACK_AFTER} s: the supervisor fell back to the direct path through dm-era"
wait_progress 20
say "B: the writer goes on on the direct path, no write error"
rm $W/hold
wait_readies 3
i=0; until grep -q '"message":"replication attached again after the fallback path"' $W/sup.log; do i=$((i + 1)); [ $i -lt 1200 ] || fail "not attached again"; sleep 0.25; done
untracked=$(grep '"message":"replication attached again after the fallback path"' $W/sup.log | tail -n 1 | sed -n 's/.*"untrackedBytes":\([0-9]*\).*/\1/p')
wait_progress 5
wait_state InSync
say "B: sidecar back, attached again: dm-era recorded $untracked bytes written meanwhile; resync shipped $(last_resync) of $VOLUME_BYTES bytes"

# Quiesce and compare.
touch $W/stop-writer
i=0; until [ -e $W/writer-done ] || [ -e $W/writer-error ]; do i=$((i + 1)); [ $i -lt 600 ] || fail "writer did not stop"; sleep 0.1; done
[ ! -e $W/writer-error ] || fail "write error: $(cat $W/writer-error)"
sync
fsfreeze -f $W/mnt
wait_state InSync
[ "$(sha256sum </dev/vda)" = "$(sha256sum </dev/vdb)" ] || fail "secondary differs from the primary"
fsfreeze -u $W/mnt
# The latest acknowledged content of every file must be there.
awk '{ last[$2] = $3 } END { for (f in last) print f, last[f] }' $W/acked >$W/expect
while read -r f sum; do
  [ "$(sha256sum <$W/mnt/f$f | cut -c1-64)" = "$sum" ] || fail "acknowledged write to f$f lost"
done <$W/expect
say "secondary byte-identical; all $(acked) acknowledged writes present"

$CLI volume detach pv1 --control $A >/dev/null || fail "detach failed"
umount $W/mnt
e2fsck -fn "/dev/mapper/$DM" >$W/fsck.log 2>&1 || { cat $W/fsck.log; fail "fsck found errors"; }
say "detached; fsck clean"
kill "$SUP"
