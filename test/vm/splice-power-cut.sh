#!/bin/sh
# Runs inside the VM, three times over the same three disks (hack/vm.sh run --disk
# primary.img --disk secondary.img --disk state.img -- sh splice-power-cut.sh REPO
# NBD_HELPER PHASE): power cuts of the node that holds a spliced volume. A cut powers the
# VM off with no sync, so whatever was only in its page cache is gone, and so are its
# device-mapper, loop and NBD devices; the disks keep what reached them. Both sidecars'
# state and the writer's log of acknowledged files live on the third disk.
#   1. ext4 on /dev/mapper/blockmirror-pv1, replication attached, InSync, a writer
#      running; cut.
#   2. Back: the sidecars start on their state, the volume is staged again (what the
#      kubelet does at NodeStage after a restart) and attached; InSync, every
#      acknowledged file there, the secondary byte-identical. Then paused (detached: only
#      dm-era records the writes) with the writer running; cut.
#   3. Back the same way: the lost era device comes back over its metadata file with its
#      marks, which reach the pair at the attach; InSync, every acknowledged file there,
#      byte-identical, fsck clean.
# Prints "cut: ..." lines and exits non-zero on any failure; phases 1 and 2 end in the cut.
set -eu
REPO=$1
HELPER=$2
PHASE=$3
# Scratch (tmpfs: lost at every cut) and the state disk's mount point.
W=/run/cut
S=$W/state
M=$W/mnt
mkdir -p $W $S $M
CLI="node $REPO/dist/sidecar/cli/main.js"
DM=blockmirror-pv1
TAG=cut PAIR=pv1 FAIL_LOG=$W/a.log
. "$REPO/test/vm/lib.sh"

[ "$PHASE" != 1 ] || mkfs.ext4 -q -F /dev/vdc
mount /dev/vdc $S

# Fixed ports: the primary's pair keeps its peer's address across the cuts.
$CLI sidecar --state-dir $S/b --control-listen 127.0.0.1:7500 --peer-listen 127.0.0.1:7501 --allow-volume-prefix /dev/vdb >$W/b.log 2>&1 &
$CLI sidecar --state-dir $S/a --control-listen 127.0.0.1:7400 --peer-listen 127.0.0.1:7401 --nbd-helper "$HELPER" --run-dir $W --allow-volume-prefix /dev/vda >$W/a.log 2>&1 &
wait_log $W/b.log "sidecar ready"
wait_log $W/a.log "sidecar ready"
A=$(ready_field $W/a.log control)

# The application: 64 KiB files f0..f15 in turn. Before a write, its intent (w FILE SUM)
# goes to the log on the state disk; once the file is fsync'd, its acknowledgement (a FILE
# SUM). Both lines fsync'd. A file whose last line is an acknowledgement must hold it.
start_writer() {
  rm -f $W/stop-writer
  ( n=$(wc -l <$S/log 2>/dev/null || echo 0)
    while [ ! -e $W/stop-writer ]; do
      n=$((n + 1)) k=$((n % 16))
      head -c 65536 /dev/urandom >$W/next
      sum=$(sha256sum <$W/next | cut -c1-64)
      echo "w $k $sum" >>$S/log && sync $S/log
      cp $W/next $M/f$k && sync $M/f$k || { echo "f$k" >$W/writer-error; exit 1; }
      echo "a $k $sum" >>$S/log && sync $S/log
      sleep 0.1
    done; touch $W/writer-done ) &
}
acked() { grep -c '^a ' $S/log 2>/dev/null || true; }
wait_acked() {
  base=$(acked) i=0
  until [ "$(acked)" -ge $((base + $1)) ]; do
    [ ! -e $W/writer-error ] || fail "write error: $(cat $W/writer-error)"
    i=$((i + 1)); [ $i -lt 1200 ] || fail "the writer made no progress"; sleep 0.25
  done
}
# Every file whose last logged line is an acknowledgement holds exactly that content
# (one with an intent after it was being written at the cut: either content may be there).
check_acked() {
  awk '{ last[$2] = $1 " " $3 } END { for (k in last) print k, last[k] }' $S/log >$W/expect
  checked=0
  while read -r k kind sum; do
    [ "$kind" = a ] || continue
    [ "$(sha256sum <$M/f$k | cut -c1-64)" = "$sum" ] || fail "acknowledged write to f$k lost"
    checked=$((checked + 1))
  done <$W/expect
  [ "$checked" -ge 8 ] || fail "only $checked files to check"
}
oos() { $CLI pair status pv1 --control "$A" -o json 2>/dev/null | sed -n 's/.*"outOfSyncBytes": *\([0-9]*\).*/\1/p'; }
wait_clean() {
  i=0
  until [ "$(state)" = InSync ] && [ "$(oos)" = 0 ]; do
    i=$((i + 1)); [ $i -lt 1600 ] || fail "never InSync with nothing out of sync (now $(state), $(oos) bytes)"; sleep 0.25
  done
}
# The disks keep what reached them; the page cache and every device go.
power_cut() {
  say "$1; power cut"
  echo 1 >/proc/sys/kernel/sysrq
  echo o >/proc/sysrq-trigger
  sleep 60
  fail "still running after the power cut"
}
# After a cut: staged and attached again, the writer's files checked, the copies compared.
come_back() {
  was=$($CLI volume list --control "$A" | sed -n 's/.*"state": *"\([a-z]*\)".*/\1/p' | head -n 1)
  [ -n "$was" ] || fail "the splice record did not survive the cut"
  [ ! -e /dev/mapper/$DM ] || fail "/dev/mapper/$DM survived the cut"
  $CLI volume stage pv1 /dev/vda --control "$A" >/dev/null || fail "staging again after the cut failed"
  mount /dev/mapper/$DM $M
  $CLI volume attach pv1 pv1 --control "$A" >/dev/null || fail "attach after the cut failed"
  kept=$(grep '"message":"volume staged again after the node lost its devices' $W/a.log | tail -n 1 | sed -n 's/.*"eraKept":\([a-z]*\).*/\1/p')
  [ -n "$kept" ] || fail "the volume was not staged afresh after the cut"
  untracked=$(grep '"message":"replication attached"' $W/a.log | tail -n 1 | sed -n 's/.*"untrackedBytes":\([0-9]*\).*/\1/p')
  check_acked
  wait_clean
  sync
  fsfreeze -f $M
  wait_clean
  [ "$(sha256sum </dev/vda)" = "$(sha256sum </dev/vdb)" ] || { fsfreeze -u $M; fail "secondary differs from the primary"; }
  fsfreeze -u $M
  say "$PHASE: back from a cut while $was: staged again (dm-era kept: $kept) and attached, $untracked bytes written untracked; $checked acknowledged files present; secondary byte-identical"
}

case $PHASE in
1)
  $CLI volume stage pv1 /dev/vda --control "$A" >/dev/null || fail "stage failed"
  mkfs.ext4 -q -F -b 4096 /dev/mapper/$DM
  mount /dev/mapper/$DM $M
  $CLI pair create pv1 --control 127.0.0.1:7500 --volume /dev/vdb --role secondary >/dev/null
  $CLI pair create pv1 --control "$A" --volume /dev/vda --role primary --peer 127.0.0.1:7501 --nbd-socket $W/pv1.sock >/dev/null
  $CLI volume attach pv1 pv1 --control "$A" >/dev/null || fail "attach failed"
  wait_state InSync
  start_writer
  wait_acked 20
  power_cut "1: attached, InSync, $(acked) files acknowledged"
  ;;
2)
  come_back
  $CLI volume detach pv1 --control "$A" >/dev/null || fail "detach failed"
  start_writer
  wait_acked 20
  power_cut "2: detached (dm-era recording), $(acked) files acknowledged"
  ;;
3)
  come_back
  $CLI volume detach pv1 --control "$A" >/dev/null || fail "detach failed"
  umount $M
  e2fsck -fn /dev/mapper/$DM >$W/fsck.log 2>&1 || { cat $W/fsck.log; fail "fsck found errors"; }
  say "3: detached; fsck clean"
  ;;
esac
