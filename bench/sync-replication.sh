#!/usr/bin/env bash
# Benchmarks synchronous replication between two sidecars, in one run (issue 20's bench):
#   (a) fio through the primary's NBD export, sync replication vs a standalone primary
#       (no peer) in the same sidecar, same preallocated backing files: 1 MiB sequential
#       writes QD8 (MB/s), 4 KiB random writes QD1 (IOPS; latency p50, total and completion
#       only) and QD32 (IOPS); medians and the medians of per-round paired ratios (latency:
#       differences). Parts, each with its own sidecars and files:
#       fio     shared cores, on 127.0.0.1; every job also against bench/mirror-bound.mjs
#               (the least a Node mirror must do: local pwrite + bare TCP to a pwriting
#               receiver) -> sync / bound (target >= 0.8)
#       pinned  the nearest a 2-core machine comes to two hosts: fio and the primary
#               sidecar (with the no-peer pair) on core 0, the secondary on core 1
#               (taskset) -> sync / no peer at 1 MiB (target >= 0.6), added 4 KiB QD1
#               total-latency p50 (target <= 150 us)
#       pinned-tls  (not run by default) as pinned, with mutual TLS on the loopback peer
#               link: the TLS share of the netem part's cost
#       netem   as pinned, the secondary in its own network namespace behind a veth pair
#               (10.201.0.1/30, .2/30) with tc netem: 10 Gbit/s and 0.5 ms each way (1 ms
#               RTT); mutual TLS on the peer link (plaintext is loopback only) -> sync
#               against the line rate (1250 MB/s), added QD1 p50 minus the RTT. Root only.
#               A kernel without sch_netem (CONFIG_NET_SCH_NETEM unset) gets tbf at 10
#               Gbit/s and no delay, and the report says so
#       and CPU-seconds per GiB written of each process (sidecars, the bound's two)
#   (b) resync after an outage: a volume of random data in sync, the secondary stopped
#       (SIGTERM), 1% of its 64 KiB blocks rewritten at random through the export, the
#       secondary restarted -> time to InSync, against rsync --inplace --no-whole-file of
#       the same data onto a pre-outage copy of the secondary and a full nbdcopy of the
#       export (target: resync >= 20x faster than rsync); the initial full sync's and the
#       resync's rates against the nbdcopy's (target >= 0.8)
# Usage: bench/sync-replication.sh [--write-results]
#   --write-results  also append the report to bench/RESULTS.md
# Environment: BENCH_RUNS (default 3) runs per measure, BENCH_RUNTIME (default 10) seconds
#   per fio run, BENCH_RESYNC_GB (default 2, fractions allowed: 0.25) resync volume size,
#   BENCH_PARTS (default "fio pinned netem resync") the parts to run (also: pinned-tls),
#   BENCH_CPU_PROF=DIR sidecars run under node --cpu-prof (profiles in DIR/<part>-<sidecar>,
#   written when they stop; summarised in the report; the profiler slows them down),
#   BENCH_SKIP_INSTALL=1 skips hack/install-deps.sh (dist/ is still built).
# Root is optional for fio, pinned and resync: it lets every timed run start with the page
#   cache dropped; netem needs it (ip netns, tc).
# Not part of the tests: ~20 minutes at the defaults (pinned-tls: 4 more); it measures, it
#   does not check.
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
PARTS=${BENCH_PARTS:-fio pinned netem resync}
CPU_PROF=${BENCH_CPU_PROF:-}
CLK_TCK=$(getconf CLK_TCK)
# The netem part's namespace and addresses (a private /30; the secondary is .2).
NETNS=blockmirror-bench20
VETH_HOST=bm20-host
VETH_NS=bm20-ns
NETEM_HOST_ADDR=10.201.0.1
NETEM_NS_ADDR=10.201.0.2
FIO_VOLUME_MIB=1024 # (a): large enough for the page cache and the extents not to be one hot spot
BLOCK_SIZE=65536    # the pairs' default tracking block
WRITE_RESULTS=0

usage() { sed -n '2,/^set -euo/s/^# \{0,1\}//p' "$0"; }
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
for p in $PARTS; do [[ $p =~ ^(fio|pinned|pinned-tls|netem|resync)$ ]] || { echo "BENCH_PARTS: unknown part $p" >&2; exit 2; }; done
if [[ " $PARTS " == *" netem "* ]] && ((EUID != 0)); then echo "BENCH_PARTS: netem needs root (ip netns, tc)" >&2; exit 2; fi
if [[ -n $CPU_PROF ]]; then mkdir -p "$CPU_PROF" && CPU_PROF=$(cd "$CPU_PROF" && pwd); fi
want() { [[ " $PARTS " == *" $1 "* ]]; }

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
# Things seen along the way that the report should mention (sidecar misbehaviour).
NOTES=()
note() { log "NOTE: $*"; NOTES+=("$*"); }

if [[ ${BENCH_SKIP_INSTALL:-0} != 1 ]]; then bash hack/install-deps.sh >&2; fi
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
  netem_down
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
# How a sidecar is started, by name (set before start_sidecar; unset: as on shared cores):
# CPUS its taskset CPU list, IN_NS the network namespace it runs in, LISTEN_HOST the host
# its peer port binds, TLS 1 for mutual TLS on its peer link (--peer-cert/key/ca),
# PROF_TAG the subdirectory of BENCH_CPU_PROF its profile goes to.
declare -A CPUS IN_NS LISTEN_HOST TLS PROF_TAG
STARTS=0

# side_prefix NAME: SIDE_PRE, the command prefix that runs a command in NAME's network
# namespace (if any) and on its CPUs (if any). ip netns exec and taskset both exec, so a
# backgrounded "${SIDE_PRE[@]}" CMD is a simple command whose $! is CMD's own pid.
side_prefix() {
  SIDE_PRE=()
  if [[ -n ${IN_NS[$1]:-} ]]; then SIDE_PRE+=(ip netns exec "${IN_NS[$1]}"); fi
  if [[ -n ${CPUS[$1]:-} ]]; then SIDE_PRE+=(taskset -c "${CPUS[$1]}"); fi
}

# start_sidecar NAME [PEER_LISTEN]: a sidecar on STATE-DIR $WORK/state-NAME (kept across
# restarts, so its pairs come back); PEER_LISTEN pins the peer port for a restart.
start_sidecar() {
  local name=$1 peer_listen=${2:-${LISTEN_HOST[$1]:-127.0.0.1}:0} logf node=(node) tls=()
  STARTS=$((STARTS + 1))
  logf=$WORK/sidecar-$name.$STARTS.log
  mkdir -p "$WORK/state-$name"
  # --cpu-prof cannot go through NODE_OPTIONS; the profile is written when node exits.
  if [[ -n $CPU_PROF ]]; then node+=(--cpu-prof "--cpu-prof-dir=$CPU_PROF/${PROF_TAG[$name]:-$name}"); fi
  if [[ ${TLS[$name]:-0} == 1 ]]; then tls=(--peer-cert "$WORK/pki/peer.crt" --peer-key "$WORK/pki/peer.key" --peer-ca "$WORK/pki/ca.crt"); fi
  side_prefix "$name"
  # A simple command: the background job's $! is the sidecar's (node's) own pid.
  ${SIDE_PRE[@]+"${SIDE_PRE[@]}"} "${node[@]}" "$ROOT/dist/sidecar/cli/main.js" sidecar --state-dir "$WORK/state-$name" --allow-volume-prefix "$WORK" \
    --control-listen 127.0.0.1:0 --peer-listen "$peer_listen" --metrics-listen 127.0.0.1:0 ${tls[@]+"${tls[@]}"} >"$logf" 2>&1 &
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

# pair SIDECAR ARGS...: the pair subcommand against that sidecar's control address (a
# loopback one: from inside the sidecar's namespace).
pair() {
  local side=$1
  if [[ -n ${IN_NS[$side]:-} ]]; then
    shift
    ip netns exec "${IN_NS[$side]}" "${CLI[@]}" pair "$@" --control "${CONTROL[$side]}"
  else
    shift
    "${CLI[@]}" pair "$@" --control "${CONTROL[$side]}"
  fi
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
# (a) fio through the export: sync replication vs no peer (and the bound)
# ---------------------------------------------------------------------------------
declare -A FIO_TABLE CPU_TABLE
FIO_DROPS=()
FIO_PARTS=(fio pinned pinned-tls netem)
declare -A PART_TITLE=(
  [fio]="shared cores (127.0.0.1)"
  [pinned]="pinned cores: fio and the primary on core 0, the secondary on core 1"
  [pinned-tls]="pinned cores as above, mutual TLS on the loopback peer link (as netem has, without the veth)"
  [netem]="pinned cores, the secondary behind netem (10 Gbit/s, 1 ms RTT, mutual TLS)"
  [netem - tbf]="pinned cores, the secondary behind a veth at 10 Gbit/s (tbf), NO delay: the kernel has no netem; mutual TLS"
)
FIO_JOBS=(seqwrite-1m randwrite-4k-qd1 randwrite-4k-qd32)

fio_job_opts() {
  case $1 in
    seqwrite-1m) echo --rw=write --bs=1M --iodepth=8 ;;
    # --lat_percentiles: total latency (submission + completion) percentiles as well.
    randwrite-4k-qd1) echo --rw=randwrite --bs=4k --iodepth=1 --lat_percentiles=1 ;;
    randwrite-4k-qd32) echo --rw=randwrite --bs=4k --iodepth=32 --lat_percentiles=1 ;;
  esac
}

# cpu_ticks PID: utime + stime of PID (all its threads), in clock ticks; 0 once gone.
cpu_ticks() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  # Fields after the ")" that closes the command name: utime is the 12th, stime the 13th.
  awk '{ print $12 + $13 }' <<<"${stat##*) }"
}

# cpu_snapshot NAME=PID...: "NAME TICKS" lines.
cpu_snapshot() {
  local np
  for np in "$@"; do printf '%s %s\n' "${np%%=*}" "$(cpu_ticks "${np#*=}")"; done
}

# fio_run DIR JOB TARGET RUN URI [OPTIONS...]: one time-based fio run, JSON to DIR, under
# FIO_PRE (a taskset on pinned cores); the CPU time of each process in CPU_PROCS
# (NAME=PID) over the measured part of the run (after the 1 s ramp) to DIR/cpu.tsv.
fio_run() {
  local dir=$1 job=$2 target=$3 run=$4 uri=$5 sampler name ticks
  shift 5
  settle
  # The "before" snapshot as fio's ramp ends: fio's own start (an NBD connect) is a few ms.
  (sleep 1 && cpu_snapshot "${CPU_PROCS[@]}" >"$dir/cpu.before") &
  sampler=$!
  ${FIO_PRE[@]+"${FIO_PRE[@]}"} fio --name="$job" --ioengine=nbd --uri="$uri" --time_based --runtime="$RUNTIME" --ramp_time=1 \
    --output-format=json --output="$dir/$job.$target.$run.json" "$@" >&2
  cpu_snapshot "${CPU_PROCS[@]}" >"$dir/cpu.after"
  wait "$sampler"
  while read -r name ticks; do
    printf '%s\t%s\t%s\t%s\t%s\n' "$job" "$target" "$run" "$name" $((ticks - $(awk -v n="$name" '$1 == n { print $2 }' "$dir/cpu.before"))) >>"$dir/cpu.tsv"
  done <"$dir/cpu.after"
  log "run $run/$RUNS $job against $target done"
}

# make_pki: a throwaway CA and one dual-use peer certificate (serverAuth and clientAuth,
# spiffe://blockmirror/bench/peer) for both ends of the netem link, as the tests make
# theirs (test/helpers/test-pki.ts, peer-pki.ts).
make_pki() {
  local d=$WORK/pki
  [[ -f $d/peer.crt ]] && return 0
  mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench test CA" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=bench-peer -keyout "$d/peer.key" -out "$d/peer.csr" 2>/dev/null
  printf 'subjectAltName=IP:%s,IP:%s,IP:127.0.0.1,DNS:localhost,URI:spiffe://blockmirror/bench/peer\nextendedKeyUsage=serverAuth,clientAuth\n' \
    "$NETEM_HOST_ADDR" "$NETEM_NS_ADDR" >"$d/peer.ext"
  openssl x509 -req -in "$d/peer.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 2 -out "$d/peer.crt" \
    -extfile "$d/peer.ext" 2>/dev/null
}

NETEM_UP=0
NETEM_KIND=netem # or tbf, when the kernel has no sch_netem (see netem_up)
NETEM_RTT_US=1000
# netem_up: the namespace, the veth pair and netem on both ends (0.5 ms each way: 1 ms
# RTT; 10 Gbit/s). limit: netem's queue of 1000 packets by default is below the link's
# bandwidth-delay product (1.25 MB) once TSO makes them small; 10000 is not. A kernel
# built without sch_netem (CONFIG_NET_SCH_NETEM unset: no other qdisc delays packets)
# gets the rate alone, from tbf, and the report says so: no RTT to subtract then.
netem_up() {
  local q
  netem_down
  NETEM_UP=1
  ip netns add "$NETNS"
  ip link add "$VETH_HOST" type veth peer name "$VETH_NS"
  ip link set "$VETH_NS" netns "$NETNS"
  ip addr add "$NETEM_HOST_ADDR/30" dev "$VETH_HOST"
  ip -n "$NETNS" addr add "$NETEM_NS_ADDR/30" dev "$VETH_NS"
  ip link set "$VETH_HOST" up
  ip -n "$NETNS" link set "$VETH_NS" up
  ip -n "$NETNS" link set lo up
  if tc qdisc add dev "$VETH_HOST" root netem delay 500us rate 10gbit limit 10000 2>"$WORK/tc.err"; then
    NETEM_KIND=netem NETEM_RTT_US=1000
    q=(netem delay 500us rate 10gbit limit 10000)
  else
    NETEM_KIND=tbf NETEM_RTT_US=0
    q=(tbf rate 10gbit burst 8mb latency 10ms)
    note "netem: this kernel has no netem qdisc ($(tr -d '\n' <"$WORK/tc.err")$(zcat /proc/config.gz 2>/dev/null | grep '^# CONFIG_NET_SCH_NETEM is not set' >/dev/null && echo ': CONFIG_NET_SCH_NETEM is not set')): the link is rate-limited by tbf to 10 Gbit/s with NO added delay; the netem part's latency is the veth's, not a 1 ms RTT's"
    tc qdisc add dev "$VETH_HOST" root "${q[@]}"
  fi
  ip netns exec "$NETNS" tc qdisc add dev "$VETH_NS" root "${q[@]}"
  NETEM_QDISC="tc qdisc add dev ... root ${q[*]}"
  NETEM_PING=$(ping -c 5 -i 0.2 -q "$NETEM_NS_ADDR" 2>/dev/null | awk -F'[/ ]' '/^rtt/ { print $8 }') || true
  log "netem: $VETH_HOST $NETEM_HOST_ADDR <-> $NETNS $VETH_NS $NETEM_NS_ADDR, ${q[*]}, ping rtt avg ${NETEM_PING:-?} ms"
}

# netem_down: removes what netem_up made (deleting the namespace deletes its veth end,
# and with it the pair and both qdiscs); harmless when there is nothing.
netem_down() {
  ((NETEM_UP)) || return 0
  ip link del "$VETH_HOST" 2>/dev/null
  ip netns del "$NETNS" 2>/dev/null
  NETEM_UP=0
  return 0
}

# run_fio_part PART: fio, pinned or netem.
run_fio_part() {
  local part=$1 dir=$WORK/results-$1 f run job t retries_before retries_after deadline
  local targets=(sync nopeer) files=(fa-sync fb-sync fa-nopeer) bound_pid='' recv_pid=''
  mkdir -p "$dir"
  CPUS=() IN_NS=() LISTEN_HOST=() TLS=() PROF_TAG=([fa]="$part-primary" [fb]="$part-secondary")
  FIO_PRE=()
  case $part in
    fio) targets+=(bound) files+=(fa-bound fb-bound) ;;
    pinned | pinned-tls | netem)
      CPUS=([fa]=0 [fb]=1)
      FIO_PRE=(taskset -c 0)
      ;;
  esac
  if [[ $part == pinned-tls ]]; then
    make_pki
    TLS=([fa]=1 [fb]=1)
  fi
  if [[ $part == netem ]]; then
    make_pki
    netem_up
    IN_NS=([fb]="$NETNS")
    LISTEN_HOST=([fb]="$NETEM_NS_ADDR")
    TLS=([fa]=1 [fb]=1)
  fi
  # Fully written up front (not fallocate, whose unwritten extents are converted on
  # first write), so no side pays for block allocation during the runs.
  log "$part: writing ${#files[@]} ${FIO_VOLUME_MIB} MiB backing files (${files[*]})"
  for f in "${files[@]}"; do
    dd if=/dev/zero of="$WORK/$f.img" bs=1M count="$FIO_VOLUME_MIB" oflag=direct conv=fsync status=none
  done
  rm -rf "$WORK/state-fa" "$WORK/state-fb"
  start_sidecar fb
  start_sidecar fa
  pair fb create sync --volume "$WORK/fb-sync.img" --role secondary >/dev/null
  pair fa create sync --volume "$WORK/fa-sync.img" --role primary --peer "${PEER[fb]}" --nbd-listen 127.0.0.1:0 >/dev/null
  # The baseline: the same sidecar process, a primary with no peer (Standalone).
  pair fa create nopeer --volume "$WORK/fa-nopeer.img" --role primary --nbd-listen 127.0.0.1:0 >/dev/null
  CPU_PROCS=("fa=${PID[fa]}" "fb=${PID[fb]}")
  declare -A uri
  uri[sync]="nbd://$(status fa sync nbdAddress)/sync"
  uri[nopeer]="nbd://$(status fa nopeer nbdAddress)/nopeer"
  if [[ $part == fio ]]; then
    # The yardstick: the same NBD server code mirroring over a bare socket.
    node bench/mirror-bound.mjs serve "$WORK/fa-bound.img" "$WORK/fb-bound.img" >"$WORK/bound.out" 2>"$WORK/bound.log" &
    bound_pid=$!
    CHILDREN+=("$bound_pid")
    wait_for "the mirror bound's NBD export" 30 "$bound_pid" grep -q '^nbd ' "$WORK/bound.out"
    recv_pid=$(pgrep -P "$bound_pid" | head -n 1)
    CPU_PROCS+=("bound=$bound_pid" "bound-recv=$recv_pid")
    uri[bound]="nbd://$(awk '/^nbd /{ print $2 }' "$WORK/bound.out")/bound"
  fi
  for t in "${targets[@]}"; do [[ ${uri[$t]} == nbd://*:*/* ]] || die "$part: pair $t reports no nbdAddress (${uri[$t]})"; done
  log "$part: waiting for the initial full sync of the ${FIO_VOLUME_MIB} MiB sync pair"
  wait_for "the initial full sync of the fio pair" $((120 + FIO_VOLUME_MIB / 4)) "${PID[fa]}" in_sync "${METRICS[fa]}" sync

  local order=("${targets[@]}")
  for ((run = 1; run <= RUNS; run++)); do
    for job in "${FIO_JOBS[@]}"; do
      # Rotate which side goes first, so drift over time hits all equally.
      for t in "${order[@]}"; do
        if [[ $t == sync ]]; then
          # A previous run may have left blocks out of sync (a write timeout): start in sync.
          deadline=$((60 + FIO_VOLUME_MIB / 8))
          wait_for "the sync pair to be InSync before run $run" "$deadline" "${PID[fa]}" in_sync "${METRICS[fa]}" sync
          retries_before=$(retries_of "${METRICS[fa]}" sync)
        fi
        # shellcheck disable=SC2046 # fio_job_opts returns several words on purpose
        fio_run "$dir" "$job" "$t" "$run" "${uri[$t]}" $(fio_job_opts "$job")
        if [[ $t == sync ]]; then
          retries_after=$(retries_of "${METRICS[fa]}" sync)
          if [[ $retries_after != "$retries_before" ]] || ! in_state "${METRICS[fa]}" sync InSync; then
            FIO_DROPS+=("$part run $run $job")
            note "$part: sync pair left InSync during run $run of $job ($(pair_metrics "${METRICS[fa]}" sync))"
          fi
        fi
      done
    done
    order=("${order[@]:1}" "${order[0]}")
  done
  local kind=$part
  case $part in fio) kind=shared ;; pinned-tls) kind=pinned ;; esac
  FIO_TABLE[$part]=$(helper fio-table "$dir" "$kind" "$NETEM_RTT_US")
  CPU_TABLE[$part]=$(helper cpu-table "$dir" "$CLK_TCK")
  # Free the CPU and the disk for the next part.
  if [[ -n $bound_pid ]]; then
    stop "$bound_pid"
    forget "$bound_pid"
  fi
  stop_sidecar fa
  stop_sidecar fb
  if [[ $part == netem ]]; then netem_down; fi
  CPUS=() IN_NS=() LISTEN_HOST=() TLS=() PROF_TAG=() FIO_PRE=()
  rm -f "$WORK"/fa-*.img "$WORK"/fb-*.img
}

# ---------------------------------------------------------------------------------
# (b) resync after an outage vs rsync and a full copy
# ---------------------------------------------------------------------------------
RESYNC_TABLE="(skipped: BENCH_PARTS leaves out resync)"
INITIAL_SYNC="n/a"
INITIAL_SYNC_MS=0
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
  # --peer: once restarted, it tells the primary it is ready (PeerReady).
  pair rb create resync --volume "$b" --role secondary --peer "${PEER[ra]}" >/dev/null
  pair ra create resync --volume "$a" --role primary --peer "$b_peer" --nbd-listen 127.0.0.1:0 >/dev/null
  ruri="nbd://$(status ra resync nbdAddress)/resync"
  [[ $ruri == nbd://*:*/resync ]] || die "resync pair reports no nbdAddress ($ruri)"

  log "resync: waiting for the initial full sync of ${RESYNC_MIB} MiB"
  wait_for "the initial full sync" $((300 + RESYNC_MIB / 8)) "${PID[ra]}" in_sync "${METRICS[ra]}" resync
  sess=$(helper logtime "${LOGF[ra]}" "peer session started" 0 resync)
  insync=$(status ra resync lastInSyncTime)
  INITIAL_SYNC_MS=$((insync - sess))
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
  RESYNC_TABLE=$(helper resync-table "$WORK/resync.tsv" "$((RESYNC_MIB * 1048576))" "$INITIAL_SYNC_MS")
  stop_sidecar ra
  stop_sidecar rb
}

for p in "${FIO_PARTS[@]}"; do if want "$p"; then run_fio_part "$p"; fi; done
if want resync; then run_resync_part; fi

FIO_MD=""
for p in "${FIO_PARTS[@]}"; do
  t=$p
  if [[ $p == netem && $NETEM_KIND == tbf ]]; then t="netem - tbf"; fi
  FIO_MD+="### (a) ${PART_TITLE[$t]}"$'\n\n'
  if want "$p"; then
    FIO_MD+="${FIO_TABLE[$p]}"$'\n\n'"CPU-seconds per GiB written (median over runs; CPU time of each process while fio measured, after its ramp):"$'\n\n'"${CPU_TABLE[$p]}"$'\n\n'
  else
    FIO_MD+="(skipped: BENCH_PARTS leaves out $p)"$'\n\n'
  fi
done
if ((${#FIO_DROPS[@]})); then
  FIO_MD+="The sync pair left InSync (session dropped or blocks out of sync) during: ${FIO_DROPS[*]}."
else
  FIO_MD+="The sync pair stayed InSync through every sync run (no reconnect, nothing out of sync)."
fi

PROF_MD=""
if [[ -n $CPU_PROF ]]; then
  PROF_MD=$'\n'"### CPU profiles (node --cpu-prof, in $CPU_PROF)"$'\n\n'"Each profile covers its sidecar's whole life: the initial sync, the sync runs and, on the primary, the no-peer runs too."$'\n'
  for d in "$CPU_PROF"/*/; do
    [[ -d $d ]] || continue
    PROF_MD+=$'\n'"$(node bench/cpu-profile-summary.mjs --top 10 --title "${d%/}" "$d" 2>&1)"$'\n'
  done
fi

NOTES_MD="none"
if ((${#NOTES[@]})); then NOTES_MD=$(printf -- '- %s\n' "${NOTES[@]}"); fi

REPORT=$(
  cat <<EOF
## $(date -u '+%Y-%m-%d %H:%M UTC'): sync replication (bench/sync-replication.sh)

- machine: $(nproc) cores ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM, $(uname -srm)
- software: node $(node --version), $(fio --version), $(rsync --version | awk 'NR == 1 { print $1, $3 }'), $(nbdcopy --version | head -n 1)
- setup: two sidecars, one primary and one secondary; plaintext peer link on 127.0.0.1
  (fio, pinned, resync), mutual TLS over the veth (netem); page cache synced$( ((DROP_CACHES)) && echo ' and dropped')
  before every timed run; fio ${FIO_JOBS[*]}
- (a): each part its own sidecars and files; primary files and the secondary's ${FIO_VOLUME_MIB} MiB each,
  preallocated with zeroes; the no-peer primary is a second pair of the primary sidecar; $RUNS runs of
  $RUNTIME s (+1 s ramp) per job and target, the order of the targets rotated every run; medians, and
  medians of per-run paired ratios (the two targets' runs of the same job and round, back to back).
  Pinned: \`taskset -c 0\` for fio and the primary, \`taskset -c 1\` for the secondary. Netem: the
  secondary in network namespace $NETNS behind a veth pair ($NETEM_HOST_ADDR/30 ↔ $NETEM_NS_ADDR/30),
  \`${NETEM_QDISC:-tc qdisc add dev ... root netem delay 500us rate 10gbit limit 10000}\` on both ends $([[ -n ${NETEM_PING:-} ]] && echo " (ping RTT $NETEM_PING ms)")$([[ -n $CPU_PROF ]] && echo '. Sidecars under node --cpu-prof: the profiler slows them')
- (b): ${RESYNC_MIB} MiB volume of random data, 64 KiB blocks; per run: secondary stopped (SIGTERM),
  $REWRITE_BLOCKS random blocks (1%) rewritten by fio through the export, then resync, rsync and nbdcopy
  on that same data in an order rotated every run; $RUNS runs; medians. "Secondary back" is its
  "sidecar ready" log line after the restart; "session started" the primary's "peer session
  started" line; InSync the primary's lastInSyncTime. rsync runs with --ignore-times (no mtime
  quick check); rsync and nbdcopy are timed up to an fsync of their destination, since a resync
  block is durable on the secondary when acknowledged

$FIO_MD

### (b) Resync after an outage vs rsync and a full copy

Initial full sync of the ${RESYNC_MIB} MiB volume (session started → InSync): $INITIAL_SYNC.

$RESYNC_TABLE

### Observations

$NOTES_MD
$PROF_MD

Rerun: \`bash bench/sync-replication.sh --write-results\` (env: BENCH_RUNS, BENCH_RUNTIME, BENCH_RESYNC_GB, BENCH_PARTS, BENCH_CPU_PROF).
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
