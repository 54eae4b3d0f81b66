#!/usr/bin/env bash
# Benchmarks synchronous replication between two sidecars on 127.0.0.1, in one run:
#   (a) fio through the primary's NBD export, sync replication vs a standalone primary
#       (no peer), same preallocated backing files: 1 MiB sequential writes, iodepth 8
#       (MB/s) and 4 KiB random writes, iodepth 1 (IOPS, completion-latency p50)
#       -> ratios and added p50 (targets: throughput ratio >= 0.6, added p50 <= 300 us);
#       the 1 MiB job also runs against bench/mirror-bound.mjs, the least a Node mirror
#       must do (local pwrite + raw socket to a pwriting receiver), as the yardstick
#   (b) resync after an outage: a volume of random data in sync, the secondary stopped
#       (SIGTERM), 1% of its 64 KiB blocks rewritten at random through the export, the
#       secondary restarted -> time to InSync, against rsync --inplace --no-whole-file of
#       the same data onto a pre-outage copy of the secondary and a full nbdcopy of the
#       export (target: resync >= 20x faster than rsync)
# Usage: bench/sync-replication.sh [--write-results]
#   --write-results  also append the report to bench/RESULTS.md
# Environment: BENCH_RUNS (default 3) runs per measure, BENCH_RUNTIME (default 10) seconds
#   per fio run, BENCH_RESYNC_GB (default 2, fractions allowed: 0.25) resync volume size,
#   BENCH_PARTS (default "fio resync") to run one part only.
# Root is optional: it lets every timed run start with the page cache dropped.
# Not part of the tests: ~8 minutes at the defaults; it measures, it does not check.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=hack/lib/processes.sh
source "$ROOT/hack/lib/processes.sh"
CLI=(node "$ROOT/dist/sidecar/cli/main.js")
HELPER=(node "$ROOT/bench/sync-replication.mjs")
RUNS=${BENCH_RUNS:-3}
RUNTIME=${BENCH_RUNTIME:-10}
RESYNC_GB=${BENCH_RESYNC_GB:-2}
PARTS=${BENCH_PARTS:-fio resync}
FIO_VOLUME_MIB=1024 # (a): large enough for the page cache and the extents not to be one hot spot
BLOCK_SIZE=65536    # the pairs' default tracking block
WRITE_RESULTS=0

usage() { sed -n '2,19s/^# \{0,1\}//p' "$0"; }
for arg in "$@"; do
  case $arg in
    --write-results) WRITE_RESULTS=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_RUNS must be a positive integer" >&2; exit 2; }
[[ $RUNTIME =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_RUNTIME must be a positive integer" >&2; exit 2; }
[[ $RESYNC_GB =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "BENCH_RESYNC_GB must be a positive number" >&2; exit 2; }
RESYNC_MIB=$(awk -v g="$RESYNC_GB" 'BEGIN { printf "%d", g * 1024 + 0.5 }')
((RESYNC_MIB >= 16)) || { echo "BENCH_RESYNC_GB must be at least 16 MiB (0.016)" >&2; exit 2; }
for p in $PARTS; do [[ $p == fio || $p == resync ]] || { echo "BENCH_PARTS: unknown part $p" >&2; exit 2; }; done
want() { [[ " $PARTS " == *" $1 "* ]]; }

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
# Things seen along the way that the report should mention (sidecar misbehaviour).
NOTES=()
note() { log "NOTE: $*"; NOTES+=("$*"); }

bash hack/install-deps.sh >&2
npm run --silent build >&2

WORK=$(mktemp -d -t blockmirror-sync-bench.XXXXXX)
CHILDREN=()

# forget PID: a child stopped on purpose is no longer ours to stop (its PID may be reused).
forget() {
  local keep=() pid
  for pid in "${CHILDREN[@]}"; do [[ $pid == "$1" ]] || keep+=("$pid"); done
  CHILDREN=("${keep[@]}")
}

cleanup() {
  local rc=$? pid f
  set +e
  trap - EXIT INT TERM
  for pid in "${CHILDREN[@]}"; do stop "$pid"; done
  if ((rc != 0)); then
    show_logs "$WORK"
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for DESC SECONDS PID CMD...: polls CMD until it succeeds; fails at the deadline
# or as soon as PID (the server being waited on) has died.
wait_for() {
  local desc=$1 secs=$2 deadline=$((SECONDS + $2)) pid=$3
  shift 3
  until "$@"; do
    alive "$pid" || die "process $pid exited while waiting for $desc"
    ((SECONDS < deadline)) || die "timed out after $secs s waiting for $desc"
    sleep 0.2
  done
}

# now_ms: wall-clock epoch milliseconds (the sidecars' log timestamps are on the same clock).
now_ms() {
  local us=${EPOCHREALTIME//[.,]/}
  echo $((us / 1000))
}

helper() { "${HELPER[@]}" "$@"; }
sidecar_ready() { helper ready "$1" control >/dev/null 2>&1; }

# Sidecars by name: PID, bound addresses and the log file of their latest start.
declare -A PID CONTROL PEER METRICS LOGF
STARTS=0

# start_sidecar NAME [PEER_LISTEN]: a sidecar on STATE-DIR $WORK/state-NAME (kept across
# restarts, so its pairs come back); PEER_LISTEN pins the peer port for a restart.
start_sidecar() {
  local name=$1 peer_listen=${2:-127.0.0.1:0} logf
  STARTS=$((STARTS + 1))
  logf=$WORK/sidecar-$name.$STARTS.log
  mkdir -p "$WORK/state-$name"
  "${CLI[@]}" sidecar --state-dir "$WORK/state-$name" --allow-volume-prefix "$WORK" --control-listen 127.0.0.1:0 \
    --peer-listen "$peer_listen" --metrics-listen 127.0.0.1:0 >"$logf" 2>&1 &
  PID[$name]=$!
  CHILDREN+=("$!")
  LOGF[$name]=$logf
  wait_for "sidecar $name ready" 30 "${PID[$name]}" sidecar_ready "$logf"
  CONTROL[$name]=$(helper ready "$logf" control)
  PEER[$name]=$(helper ready "$logf" peer)
  METRICS[$name]=$(helper ready "$logf" metrics)
  [[ ${METRICS[$name]} == *:* && ${PEER[$name]} == *:* ]] || die "sidecar $name: no peer or metrics address in its ready line"
}

# stop_sidecar NAME: graceful stop; notes a sidecar that needed SIGKILL or failed.
stop_sidecar() {
  local pid=${PID[$1]} rc=0
  stop "$pid"
  wait "$pid" 2>/dev/null || rc=$?
  forget "$pid"
  ((rc == 0)) || note "sidecar $1 exited with status $rc on SIGTERM (137: killed after 15 s)"
  grep -q '"message":"sidecar stopped"' "${LOGF[$1]}" || note "sidecar $1 did not log \"sidecar stopped\" on SIGTERM"
}

# pair SIDECAR ARGS...: the pair subcommand against that sidecar's control address.
pair() {
  local side=$1
  shift
  "${CLI[@]}" pair "$@" --control "${CONTROL[$side]}"
}

# status SIDECAR PAIR FIELD...: fields of `pair status -o json`, tab-separated.
status() {
  local side=$1 name=$2
  shift 2
  pair "$side" status "$name" -o json | helper status "$@"
}

# pair_metrics METRICS_ADDR PAIR: "STATE OUT_OF_SYNC_BYTES RETRIES" from /metrics.
# Plain bash /dev/tcp: cheap enough to poll while a resync is being timed.
pair_metrics() {
  local host=${1%:*} port=${1##*:}
  { printf 'GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n' "$1" >&3 && timeout 5 cat <&3; } 2>/dev/null 3<>"/dev/tcp/$host/$port" |
    awk -v p="$2" '
      function label(k) { return match($0, k "=\"[^\"]*\"") ? substr($0, RSTART + length(k) + 2, RLENGTH - length(k) - 3) : "" }
      /^blockmirror_pair_state\{/ && label("pair") == p && $NF == 1 { state = label("state") }
      /^blockmirror_out_of_sync_bytes\{/ && label("pair") == p { oos = $NF }
      /^blockmirror_retries_total\{/ && label("pair") == p { retries = $NF }
      END { if (state == "") exit 1; print state, oos, retries }'
}
# in_sync METRICS_ADDR PAIR: InSync with nothing out of sync.
in_sync() {
  local m
  m=$(pair_metrics "$1" "$2") || return 1
  [[ $m == "InSync 0 "* ]]
}
# in_state METRICS_ADDR PAIR STATE
in_state() {
  local m
  m=$(pair_metrics "$1" "$2") || return 1
  [[ $m == "$3 "* ]]
}
retries_of() { pair_metrics "$1" "$2" | awk '{ print $3 }'; }

if [[ -w /proc/sys/vm/drop_caches ]]; then DROP_CACHES=1; else DROP_CACHES=0; fi
# settle: every timed run starts from the same page-cache state: nothing dirty left to
# write back and, when root, nothing cached (rsync must read both images from disk,
# as it would after an outage, not from the cache the previous step warmed).
settle() {
  sync
  if ((DROP_CACHES)); then echo 3 >/proc/sys/vm/drop_caches; fi
}

# ---------------------------------------------------------------------------------
# (a) fio through the export: sync replication vs no peer
# ---------------------------------------------------------------------------------
FIO_TABLE="(skipped: BENCH_PARTS leaves out fio)"
FIO_DROPS=()

# fio_run JOB TARGET RUN URI [OPTIONS...]: one time-based fio run, JSON to the results dir.
fio_run() {
  local job=$1 target=$2 run=$3 uri=$4
  shift 4
  settle
  fio --name="$job" --ioengine=nbd --uri="$uri" --time_based --runtime="$RUNTIME" --ramp_time=1 \
    --output-format=json --output="$WORK/results/$job.$target.$run.json" "$@" >&2
  log "run $run/$RUNS $job against $target done"
}

fio_job_opts() {
  case $1 in
    seqwrite-1m) echo --rw=write --bs=1M --iodepth=8 ;;
    randwrite-4k-qd1) echo --rw=randwrite --bs=4k --iodepth=1 ;;
  esac
}

run_fio_part() {
  local f run job t retries_before retries_after deadline
  mkdir -p "$WORK/results"
  # Fully written up front (not fallocate, whose unwritten extents are converted on
  # first write), so no side pays for block allocation during the runs.
  log "fio: writing five ${FIO_VOLUME_MIB} MiB backing files (sync primary, its secondary, no-peer primary, the bound's two)"
  for f in fa-sync fb-sync fa-nopeer fa-bound fb-bound; do
    dd if=/dev/zero of="$WORK/$f.img" bs=1M count="$FIO_VOLUME_MIB" oflag=direct conv=fsync status=none
  done
  start_sidecar fb
  start_sidecar fa
  pair fb create sync --volume "$WORK/fb-sync.img" --role secondary >/dev/null
  pair fa create sync --volume "$WORK/fa-sync.img" --role primary --peer "${PEER[fb]}" --nbd-listen 127.0.0.1:0 >/dev/null
  # The baseline: the same sidecar process, a primary with no peer (Standalone).
  pair fa create nopeer --volume "$WORK/fa-nopeer.img" --role primary --nbd-listen 127.0.0.1:0 >/dev/null
  # The yardstick: the same NBD server code mirroring over a bare socket (1 MiB job only).
  node bench/mirror-bound.mjs serve "$WORK/fa-bound.img" "$WORK/fb-bound.img" >"$WORK/bound.out" 2>"$WORK/bound.log" &
  local bound_pid=$!
  CHILDREN+=("$bound_pid")
  wait_for "the mirror bound's NBD export" 30 "$bound_pid" grep -q '^nbd ' "$WORK/bound.out"
  declare -A uri
  uri[sync]="nbd://$(status fa sync nbdAddress)/sync"
  uri[nopeer]="nbd://$(status fa nopeer nbdAddress)/nopeer"
  uri[bound]="nbd://$(awk '/^nbd /{ print $2 }' "$WORK/bound.out")/bound"
  for t in sync nopeer bound; do [[ ${uri[$t]} == nbd://*:*/* ]] || die "pair $t reports no nbdAddress (${uri[$t]})"; done
  log "fio: waiting for the initial full sync of the ${FIO_VOLUME_MIB} MiB sync pair"
  wait_for "the initial full sync of the fio pair" $((120 + FIO_VOLUME_MIB / 4)) "${PID[fa]}" in_sync "${METRICS[fa]}" sync

  local order=(sync nopeer bound)
  for ((run = 1; run <= RUNS; run++)); do
    for job in seqwrite-1m randwrite-4k-qd1; do
      # Rotate which side goes first, so drift over time hits all equally.
      for t in "${order[@]}"; do
        [[ $t == bound && $job != seqwrite-1m ]] && continue
        if [[ $t == sync ]]; then
          # A previous run may have left blocks out of sync (a write timeout): start in sync.
          deadline=$((60 + FIO_VOLUME_MIB / 8))
          wait_for "the sync pair to be InSync before run $run" "$deadline" "${PID[fa]}" in_sync "${METRICS[fa]}" sync
          retries_before=$(retries_of "${METRICS[fa]}" sync)
        fi
        # shellcheck disable=SC2046 # fio_job_opts returns several words on purpose
        fio_run "$job" "$t" "$run" "${uri[$t]}" $(fio_job_opts "$job")
        if [[ $t == sync ]]; then
          retries_after=$(retries_of "${METRICS[fa]}" sync)
          if [[ $retries_after != "$retries_before" ]] || ! in_state "${METRICS[fa]}" sync InSync; then
            FIO_DROPS+=("run $run $job")
            note "sync pair left InSync during run $run of $job ($(pair_metrics "${METRICS[fa]}" sync))"
          fi
        fi
      done
    done
    order=("${order[@]:1}" "${order[0]}")
  done
  FIO_TABLE=$(helper fio-table "$WORK/results")
  if ((${#FIO_DROPS[@]})); then
    FIO_TABLE+=$'\n\n'"The sync pair left InSync (session dropped or blocks out of sync) during: ${FIO_DROPS[*]}."
  else
    FIO_TABLE+=$'\n\n'"The sync pair stayed InSync through every sync run (no reconnect, nothing out of sync)."
  fi
  # Free the CPU and the disk for the resync part.
  stop "$bound_pid"
  forget "$bound_pid"
  stop_sidecar fa
  stop_sidecar fb
  rm -f "$WORK"/fa-*.img "$WORK"/fb-*.img
}

# ---------------------------------------------------------------------------------
# (b) resync after an outage vs rsync and a full copy
# ---------------------------------------------------------------------------------
RESYNC_TABLE="(skipped: BENCH_PARTS leaves out resync)"
INITIAL_SYNC="n/a"
# 1% of the volume's 64 KiB blocks, rounded.
REWRITE_BLOCKS=$(((RESYNC_MIB * 1048576 / BLOCK_SIZE + 50) / 100))

run_resync_part() {
  local a=$WORK/ra.img b=$WORK/rb.img copy=$WORK/rb-copy.img full=$WORK/full.img
  local run m rsync_s literal nbdcopy_s
  local b_peer ruri t0 t1 sess insync ret outage oos wire0 wire1 identical deadline
  : >"$WORK/resync.tsv"

  # Random data: no all-zero block for the resync or nbdcopy to skip.
  log "resync: filling the ${RESYNC_MIB} MiB primary volume with random data"
  dd if=/dev/urandom of="$a" bs=1M count="$RESYNC_MIB" iflag=fullblock conv=fsync status=none
  # The secondary starts empty; the initial full sync writes every block of it.
  truncate -s $((RESYNC_MIB * 1048576)) "$b"
  start_sidecar rb
  start_sidecar ra
  b_peer=${PEER[rb]}
  pair rb create resync --volume "$b" --role secondary >/dev/null
  pair ra create resync --volume "$a" --role primary --peer "$b_peer" --nbd-listen 127.0.0.1:0 >/dev/null
  ruri="nbd://$(status ra resync nbdAddress)/resync"
  [[ $ruri == nbd://*:*/resync ]] || die "resync pair reports no nbdAddress ($ruri)"

  log "resync: waiting for the initial full sync of ${RESYNC_MIB} MiB"
  wait_for "the initial full sync" $((300 + RESYNC_MIB / 8)) "${PID[ra]}" in_sync "${METRICS[ra]}" resync
  sess=$(helper logtime "${LOGF[ra]}" "peer session started" 0 resync)
  insync=$(status ra resync lastInSyncTime)
  INITIAL_SYNC=$(awk -v ms=$((insync - sess)) -v mib="$RESYNC_MIB" 'BEGIN { printf "%.1f s (%.0f MB/s)", ms / 1000, mib * 1.048576 / (ms / 1000) }')
  log "resync: initial full sync took $INITIAL_SYNC"
  cmp -s "$a" "$b" || note "secondary image differs from the primary's after the initial full sync"

  local order=(resync rsync nbdcopy)
  for ((run = 1; run <= RUNS; run++)); do
    wait_for "InSync before run $run" 120 "${PID[ra]}" in_sync "${METRICS[ra]}" resync
    wire0=$(status ra resync bytesOnWire)

    log "run $run/$RUNS: outage: stopping the secondary"
    outage=$(now_ms)
    stop_sidecar rb
    wait_for "the primary to notice the outage" 30 "${PID[ra]}" in_state "${METRICS[ra]}" resync Retrying
    # The pre-outage image, for rsync (the secondary is down, its image is at rest).
    cp "$b" "$copy"
    log "run $run/$RUNS: rewriting $REWRITE_BLOCKS random 64 KiB blocks (1%) through the export"
    fio --name=rewrite --ioengine=nbd --uri="$ruri" --rw=randwrite --bs=64k --iodepth=8 \
      --number_ios="$REWRITE_BLOCKS" --randrepeat=0 --refill_buffers \
      --output-format=json --output="$WORK/rewrite.$run.json" >&2
    oos=$(status ra resync outOfSyncBytes)
    ((oos == REWRITE_BLOCKS * BLOCK_SIZE)) ||
      note "run $run: $oos bytes out of sync after rewriting $REWRITE_BLOCKS blocks (expected $((REWRITE_BLOCKS * BLOCK_SIZE)))"

    # The three measures on the same data, in an order rotated every run.
    for m in "${order[@]}"; do
      settle
      case $m in
        resync)
          log "run $run/$RUNS: secondary back, timing the resync"
          start_sidecar rb "$b_peer"
          ret=$(helper logtime "${LOGF[rb]}" "sidecar ready" 0)
          # The primary reconnects by itself (backoff up to 10 s): a generous deadline.
          deadline=$((120 + RESYNC_MIB / 16))
          wait_for "InSync after the secondary's return" "$deadline" "${PID[ra]}" in_sync "${METRICS[ra]}" resync
          # Precise times from the logs and status, not from the polling.
          sess=$(helper logtime "${LOGF[ra]}" "peer session started" "$outage" resync) ||
            die "no \"peer session started\" on the primary after the outage"
          insync=$(status ra resync lastInSyncTime)
          ((insync >= sess)) || die "lastInSyncTime ($insync) precedes the session start ($sess)"
          log "run $run/$RUNS: resync: $((insync - ret)) ms from the return, $((insync - sess)) ms from the session start"
          ;;
        rsync)
          log "run $run/$RUNS: timing rsync onto the pre-outage copy"
          t0=$(now_ms)
          # --ignore-times: the copy may share A.img's size and mtime second, and rsync's
          # quick check would then skip the file instead of comparing blocks.
          rsync --inplace --no-whole-file --ignore-times --stats "$a" "$copy" >"$WORK/rsync.$run.txt"
          sync "$copy"
          t1=$(now_ms)
          rsync_s=$(awk -v ms=$((t1 - t0)) 'BEGIN { printf "%.3f", ms / 1000 }')
          literal=$(awk -F': ' '/^Literal data:/ { gsub(/[^0-9]/, "", $2); print $2 }' "$WORK/rsync.$run.txt")
          log "run $run/$RUNS: rsync: $rsync_s s, literal data $literal bytes"
          ;;
        nbdcopy)
          log "run $run/$RUNS: timing a full nbdcopy of the export"
          rm -f "$full"
          t0=$(now_ms)
          nbdcopy "$ruri" "$full"
          sync "$full"
          t1=$(now_ms)
          nbdcopy_s=$(awk -v ms=$((t1 - t0)) 'BEGIN { printf "%.3f", ms / 1000 }')
          log "run $run/$RUNS: nbdcopy: $nbdcopy_s s"
          rm -f "$full"
          ;;
      esac
    done
    wire1=$(status ra resync bytesOnWire)
    if cmp -s "$a" "$b"; then identical=yes; else identical=no; note "run $run: secondary image differs from the primary's after the resync"; fi
    cmp -s "$a" "$copy" || note "run $run: rsync's copy differs from the primary's image"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "${order[*]}" "$oos" "$ret" "$sess" "$insync" \
      "$rsync_s" "${literal:-0}" "$nbdcopy_s" $((wire1 - wire0)) "$identical" >>"$WORK/resync.tsv"
    order=("${order[@]:1}" "${order[0]}")
  done
  RESYNC_TABLE=$(helper resync-table "$WORK/resync.tsv")
  stop_sidecar ra
  stop_sidecar rb
}

if want fio; then run_fio_part; fi
if want resync; then run_resync_part; fi

NOTES_MD="none"
if ((${#NOTES[@]})); then NOTES_MD=$(printf -- '- %s\n' "${NOTES[@]}"); fi

REPORT=$(
  cat <<EOF
## $(date -u '+%Y-%m-%d %H:%M UTC'): sync replication (bench/sync-replication.sh)

- machine: $(nproc) cores ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM, $(uname -srm)
- software: node $(node --version), $(fio --version), $(rsync --version | awk 'NR == 1 { print $1, $3 }'), $(nbdcopy --version | head -n 1)
- setup: two sidecars on 127.0.0.1 (plaintext peer link), one primary and one secondary;
  page cache synced$( ((DROP_CACHES)) && echo ' and dropped') before every timed run
- (a): primary files and the secondary's ${FIO_VOLUME_MIB} MiB each, preallocated with zeroes; the no-peer
  primary is a second pair of the same sidecar process; $RUNS runs of $RUNTIME s (+1 s ramp) per job
  and side, alternating which side goes first; medians
- (b): ${RESYNC_MIB} MiB volume of random data, 64 KiB blocks; per run: secondary stopped (SIGTERM),
  $REWRITE_BLOCKS random blocks (1%) rewritten by fio through the export, then resync, rsync and nbdcopy
  on that same data in an order rotated every run; $RUNS runs; medians. "Secondary back" is its
  "sidecar ready" log line after the restart; "session started" the primary's "peer session
  started" line; InSync the primary's lastInSyncTime. rsync runs with --ignore-times (no mtime
  quick check); rsync and nbdcopy are timed up to an fsync of their destination, since a resync
  block is durable on the secondary when acknowledged

### (a) Sync replication vs no peer: fio through the NBD export

$FIO_TABLE

### (b) Resync after an outage vs rsync and a full copy

Initial full sync of the ${RESYNC_MIB} MiB volume (session started → InSync): $INITIAL_SYNC.

$RESYNC_TABLE

### Observations

$NOTES_MD

Rerun: \`bash bench/sync-replication.sh --write-results\` (env: BENCH_RUNS, BENCH_RUNTIME, BENCH_RESYNC_GB, BENCH_PARTS).
EOF
)

printf '\n%s\n' "$REPORT"
if ((WRITE_RESULTS)); then
  if [[ ! -f bench/RESULTS.md ]]; then
    printf '# Benchmark results\n\nProduced by the bench/ scripts run with --write-results; newest last.\n' >bench/RESULTS.md
  fi
  printf '\n%s\n' "$REPORT" >>bench/RESULTS.md
  log "appended to bench/RESULTS.md"
fi
