#!/usr/bin/env bash
# Benchmarks the sidecar's NBD export against nbdkit's file plugin serving the same
# preallocated backing file, both over TCP on 127.0.0.1, in one run:
#   (a) 4 KiB random writes, iodepth 32 -> IOPS
#   (b) 1 MiB sequential writes, iodepth 8 -> MB/s
#   (c) sidecar RSS serving a sparse 1 TiB volume after a random-write burst (target < 150 MiB)
# Usage: bench/nbd-vs-nbdkit.sh [--write-results]
#   --write-results  also append the report to bench/RESULTS.md
# Environment: BENCH_RUNS (default 5) runs per job and target, BENCH_RUNTIME (default 10)
#   seconds per fio run, BENCH_RSS_RUNTIME (default 5) seconds of the 1 TiB burst,
#   BENCH_TARGETS (default "ours nbdkit") to benchmark one side only.
# Root is optional: it lets every run start with the page cache dropped.
# Not part of the tests: it takes several minutes (~4 at the defaults) and measures, not checks.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=hack/lib/processes.sh
source "$ROOT/hack/lib/processes.sh"
CLI=(node "$ROOT/dist/sidecar/cli/main.js")
RUNS=${BENCH_RUNS:-5}
RUNTIME=${BENCH_RUNTIME:-10}
RSS_RUNTIME=${BENCH_RSS_RUNTIME:-5}
TARGETS=${BENCH_TARGETS:-ours nbdkit}
RSS_TARGET_MIB=150
WRITE_RESULTS=0

usage() { sed -n '2,14s/^# \{0,1\}//p' "$0"; }
for arg in "$@"; do
  case $arg in
    --write-results) WRITE_RESULTS=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_RUNS must be a positive integer" >&2; exit 2; }
want() { [[ " $TARGETS " == *" $1 "* ]]; }

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

bash hack/install-deps.sh >&2
if want ours; then npm run --silent build >&2; fi

WORK=$(mktemp -d -t blockmirror-bench.XXXXXX)
CHILDREN=()

cleanup() {
  local rc=$? pid
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
  local desc=$1 deadline=$((SECONDS + $2)) pid=$3
  shift 3
  until "$@"; do
    alive "$pid" || die "process $pid exited while waiting for $desc"
    ((SECONDS < deadline)) || die "timed out waiting for $desc"
    sleep 0.1
  done
}

sidecar_ready() { ready_field "$1" control >/dev/null 2>&1; }

# start_sidecar NAME VOLUME: a sidecar with one primary pair NAME on VOLUME;
# sets SIDECAR_PID, CONTROL and NBD_ADDR (host:port of the pair's NBD export).
start_sidecar() {
  local name=$1 volume=$2
  mkdir -p "$WORK/state-$name"
  "${CLI[@]}" sidecar --state-dir "$WORK/state-$name" --allow-volume-prefix "$WORK" \
    --control-listen 127.0.0.1:0 --peer-listen 127.0.0.1:0 >"$WORK/sidecar-$name.log" 2>&1 &
  SIDECAR_PID=$!
  CHILDREN+=("$SIDECAR_PID")
  wait_for "sidecar ready" 30 "$SIDECAR_PID" sidecar_ready "$WORK/sidecar-$name.log"
  CONTROL=$(ready_field "$WORK/sidecar-$name.log" control)
  # async: there is no secondary here, and the point is the NBD data path.
  "${CLI[@]}" pair create "$name" --control "$CONTROL" --volume "$volume" \
    --role primary --mode async --nbd-listen 127.0.0.1:0 >"$WORK/pair-$name.txt"
  NBD_ADDR=$("${CLI[@]}" pair status "$name" --control "$CONTROL" -o json |
    node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).nbdAddress ?? ""));')
  [[ $NBD_ADDR == *:* ]] || die "pair status reports no nbdAddress (got '$NBD_ADDR')"
}

# listen_port PID: the TCP port PID listens on (nbdkit cannot print it when given -p 0).
listen_port() {
  ss -ltnpH | awk -v pid="pid=$1," 'index($0, pid) { n = split($4, a, ":"); print a[n]; exit }'
}
has_port() { [[ -n $(listen_port "$1") ]]; }

vmfield() { awk -v k="$2:" '$1 == k { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# fio_run JOB TARGET RUN URI [OPTIONS...]: one time-based fio run, JSON to the results dir.
fio_run() {
  local job=$1 target=$2 run=$3 uri=$4
  shift 4
  # Start every run from the same page-cache state: no dirty pages left for it to
  # write back and, when root, nothing cached. Cached large folios left by the 1 MiB
  # job make later 4 KiB writes several times slower on ext4, for either server.
  sync
  if ((DROP_CACHES)); then echo 1 >/proc/sys/vm/drop_caches; fi
  fio --name="$job" --ioengine=nbd --uri="$uri" --time_based --runtime="$RUNTIME" --ramp_time=1 \
    --output-format=json --output="$WORK/results/$job.$target.$run.json" "$@" >&2
  log "run $run/$RUNS $job against $target done"
}

JOBS=(randwrite-4k seqwrite-1m)
job_opts() {
  case $1 in
    randwrite-4k) echo --rw=randwrite --bs=4k --iodepth=32 ;;
    seqwrite-1m) echo --rw=write --bs=1M --iodepth=8 ;;
  esac
}

mkdir -p "$WORK/results"
if [[ -w /proc/sys/vm/drop_caches ]]; then DROP_CACHES=1; else DROP_CACHES=0; fi
BACKING=$WORK/backing.img
# Fully written up front (not fallocate, whose unwritten extents are converted on
# first write), so neither server pays for block allocation during the runs.
log "writing the 2 GiB backing file"
dd if=/dev/zero of="$BACKING" bs=1M count=2048 oflag=direct conv=fsync status=none

declare -A URI
if want ours; then
  log "starting the sidecar on the 2 GiB backing file"
  start_sidecar bench "$BACKING"
  URI[ours]="nbd://$NBD_ADDR/bench"
  THROUGHPUT_SIDECAR=$SIDECAR_PID
fi
if want nbdkit; then
  log "starting nbdkit file on the same backing file"
  nbdkit -f --exit-with-parent -i 127.0.0.1 -p 0 file "$BACKING" >"$WORK/nbdkit.log" 2>&1 &
  NBDKIT_PID=$!
  CHILDREN+=("$NBDKIT_PID")
  wait_for "nbdkit to listen" 30 "$NBDKIT_PID" has_port "$NBDKIT_PID"
  URI[nbdkit]="nbd://127.0.0.1:$(listen_port "$NBDKIT_PID")/"
fi
for t in $TARGETS; do log "target $t: ${URI[$t]:?unknown target $t}"; done

read -ra order <<<"$TARGETS"
for ((run = 1; run <= RUNS; run++)); do
  for job in "${JOBS[@]}"; do
    # Alternate which side goes first, so drift over time hits both equally.
    for t in "${order[@]}"; do
      # shellcheck disable=SC2046 # job_opts returns several words on purpose
      fio_run "$job" "$t" "$run" "${URI[$t]}" $(job_opts "$job")
    done
  done
  order=("${order[@]:1}" "${order[0]}")
done

TABLE=$(node bench/fio-summary.mjs "$WORK/results" \
  'randwrite-4k:iops:4 KiB random write, iodepth 32' \
  'seqwrite-1m:mbps:1 MiB sequential write, iodepth 8')

RSS_TABLE="(skipped: BENCH_TARGETS leaves out ours)"
if want ours; then
  # Free the CPU for the memory run; the throughput servers are done.
  stop "$THROUGHPUT_SIDECAR"
  if want nbdkit; then stop "$NBDKIT_PID"; fi

  log "memory: sidecar serving a sparse 1 TiB volume"
  truncate -s 1T "$WORK/huge.img"
  start_sidecar huge "$WORK/huge.img"
  rss_idle=$(vmfield "$SIDECAR_PID" VmRSS)
  # Random 4 KiB writes over the whole 1 TiB, so dirty-tracking state is spread
  # across the volume; --norandommap keeps fio from tracking 2^28 blocks itself.
  fio --name=rss-burst --ioengine=nbd --uri="nbd://$NBD_ADDR/huge" --rw=randwrite --bs=4k \
    --iodepth=32 --norandommap --time_based --runtime="$RSS_RUNTIME" \
    --output-format=json --output="$WORK/rss-burst.json" >&2
  rss_after=$(vmfield "$SIDECAR_PID" VmRSS)
  hwm=$(vmfield "$SIDECAR_PID" VmHWM)
  burst_iops=$(node -e 'const t = require("fs").readFileSync(process.argv[1], "utf8"); console.log(Math.round(JSON.parse(t.slice(t.indexOf("{"))).jobs[0].write.iops));' "$WORK/rss-burst.json")
  verdict=$(awk -v h="$hwm" -v t="$RSS_TARGET_MIB" 'BEGIN { print (h < t) ? "pass" : "FAIL" }')
  RSS_TABLE=$(
    cat <<EOF
| measure | MiB |
| --- | ---: |
| VmRSS after pair create, idle | $rss_idle |
| VmRSS after ${RSS_RUNTIME} s of 4 KiB random writes over 1 TiB ($burst_iops IOPS) | $rss_after |
| VmHWM (peak RSS) | $hwm |
| target: peak < $RSS_TARGET_MIB MiB | $verdict |
EOF
  )
fi

REPORT=$(
  cat <<EOF
## $(date -u '+%Y-%m-%d %H:%M UTC')

- machine: $(nproc) cores ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM, $(uname -srm)
- software: node $(node --version), $(fio --version), $(nbdkit --version)
- setup: NBD over TCP on 127.0.0.1; both servers on one preallocated 2 GiB file; pair mode async, no secondary;
  $RUNS runs of $RUNTIME s (+1 s ramp) per job and server, alternating which server goes first; medians;
  page cache synced$( ((DROP_CACHES)) && echo ' and dropped') before each run

### Throughput: sidecar NBD export vs nbdkit file

$TABLE

### Sidecar memory serving a sparse 1 TiB volume

$RSS_TABLE

Rerun: \`bash bench/nbd-vs-nbdkit.sh --write-results\` (env: BENCH_RUNS, BENCH_RUNTIME, BENCH_RSS_RUNTIME, BENCH_TARGETS).
EOF
)

printf '\n%s\n' "$REPORT"
if ((WRITE_RESULTS)); then
  if [[ ! -f bench/RESULTS.md ]]; then
    # shellcheck disable=SC2016 # backquotes are markdown here
    printf '# Benchmark results\n\nProduced by `bench/nbd-vs-nbdkit.sh --write-results`; newest last.\n' >bench/RESULTS.md
  fi
  printf '\n%s\n' "$REPORT" >>bench/RESULTS.md
  log "appended to bench/RESULTS.md"
fi
