#!/bin/sh
# Runs inside the VM (bench/vm-splice.sh boots it): fio writes on four paths to the same
# volume (/dev/vda), one line per run:
#   direct   the volume itself
#   nbdkit   the kernel NBD client over nbdkit's file plugin (C): what the kernel's NBD
#            path costs with a lean userspace server, the yardstick for the sidecar's
#   spliced  /dev/mapper/blockmirror-pv1 attached: multipath tap, kernel NBD client, the
#            primary sidecar's export, sync replication to a secondary sidecar (/dev/vdb)
#   paused   the same with the pair paused: the splice and the export, no replication
# direct, nbdkit and spliced alternate in a rotating order, RUNS times each; the paused
# runs come last (resuming would resync everything they wrote).
#   fio: <job> <side> <run> <MB/s> <IOPS> <clat p50 us>
# Usage: splice-fio.sh REPO NBD_HELPER RUNS RUNTIME_S
set -eu
REPO=$1 HELPER=$2 RUNS=$3 RUNTIME=$4
W=/run/bench
mkdir -p "$W"
CLI="node $REPO/dist/sidecar/cli/main.js"
DM=blockmirror-pv1
A=127.0.0.1:7401
TAG=bench PAIR=pv1 FAIL_LOG=$W/a.log WAIT_STATE_S=600
. "$REPO/test/vm/lib.sh"

$CLI sidecar --state-dir $W/b --control-listen 127.0.0.1:0 --peer-listen 127.0.0.1:0 --allow-volume-prefix /dev/vdb >$W/b.log 2>&1 &
$CLI sidecar --state-dir $W/a --control-listen $A --peer-listen 127.0.0.1:0 --nbd-helper "$HELPER" --run-dir $W --allow-volume-prefix /dev/vda >$W/a.log 2>&1 &
wait_log $W/b.log "sidecar ready"
wait_log $W/a.log "sidecar ready"
$CLI pair create pv1 --control "$(ready_field $W/b.log control)" --volume /dev/vdb --role secondary >/dev/null
$CLI volume stage pv1 /dev/vda --control $A >/dev/null
# Emulated, a mirrored 1 MiB write takes seconds: the default 2 s write timeout would
# drop the session over and over, and the runs would measure reconnects, not mirroring.
$CLI pair create pv1 --control $A --volume /dev/vda --role primary --peer "$(ready_field $W/b.log peer)" --nbd-socket $W/pv1.sock \
  --write-timeout-ms 60000 >/dev/null
$CLI volume attach pv1 pv1 --control $A >/dev/null
wait_state InSync
echo "bench: attached and InSync: $(dmsetup table $DM-tap)"

# nbdkit serves the same volume over a Unix socket; the helper connects the kernel to it.
nbdkit -f -U $W/kit.sock file /dev/vda >$W/kit.log 2>&1 &
i=0; until [ -S $W/kit.sock ]; do i=$((i + 1)); [ $i -lt 600 ] || fail "nbdkit not up"; sleep 0.1; done
KIT=/dev/nbd$("$HELPER" connect --socket=$W/kit.sock --export=kit --backend=nbdkit | sed -n 's/.*"index": *\([0-9]*\).*/\1/p')
[ -b "$KIT" ] || fail "no NBD device for nbdkit"

# The other sides write /dev/vda behind the pair's back; that is fine for a benchmark
# (nothing compares the replicas afterwards), and every side writes the same blocks.
job_args() {
  case $1 in
    seq1m) echo --bs=1M --rw=write --iodepth=8 ;;
    rand4k) echo --bs=4k --rw=randwrite --iodepth=32 ;;
  esac
}
dev_of() {
  case $1 in
    direct) echo /dev/vda ;;
    nbdkit) echo "$KIT" ;;
    spliced | paused) echo /dev/mapper/$DM ;;
  esac
}
run_fio() { # job side run
  # shellcheck disable=SC2046
  fio --name="$1" --filename="$(dev_of "$2")" --direct=1 --ioengine=libaio $(job_args "$1") --time_based --runtime="$RUNTIME" \
    --size=128M --randrepeat=0 --output-format=json >$W/fio.json 2>$W/fio.err || { cat $W/fio.err; fail "fio $1 $2"; }
  node -e '
    const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).jobs[0].write;
    const p50 = j.clat_ns.percentile["50.000000"] / 1000;
    console.log(`fio: ${process.argv[2]} ${process.argv[3]} ${process.argv[4]} ${(j.bw_bytes / 1e6).toFixed(2)} ${j.iops.toFixed(0)} ${p50.toFixed(0)}`);
  ' $W/fio.json "$1" "$2" "$3"
}
for j in seq1m rand4k; do
  r=1
  while [ $r -le "$RUNS" ]; do
    # Rotate which side goes first, so none always runs on a warmer machine.
    case $((r % 3)) in
      1) order="direct nbdkit spliced" ;;
      2) order="nbdkit spliced direct" ;;
      0) order="spliced direct nbdkit" ;;
    esac
    for side in $order; do
      run_fio $j $side $r
      if [ $side = spliced ]; then wait_state InSync; fi
    done
    r=$((r + 1))
  done
done
$CLI pair pause pv1 --control $A >/dev/null
for j in seq1m rand4k; do
  r=1
  while [ $r -le "$RUNS" ]; do run_fio $j paused $r; r=$((r + 1)); done
done
"$HELPER" disconnect --index="${KIT#/dev/nbd}" >/dev/null
# Sessions the runs lost (each one a resync): none, or the spliced numbers mix in outages.
say "peer sessions ended during the runs: $(grep -c '"message":"peer session ended"' $W/a.log || true)"
