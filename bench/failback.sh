#!/usr/bin/env bash
# Benchmarks a forced failover and the failback after it (issue 18) on loopback: RTO (from
# `pair promote --force` to the first write acknowledged by the promoted side's export) and
# the failback resync of a 2 GiB volume with ~1 % changed on each side, against a full copy
# (nbdcopy) of the volume in the same round (target: >= 20x faster), in sync and async mode.
# See bench/failback.mjs for what is measured and how.
# Usage: bench/failback.sh [--write-results]
#   --write-results  also append the report to bench/RESULTS.md
# Environment: BENCH_RUNS (3), BENCH_MODES ("sync async"), BENCH_VOLUME_MIB (2048),
#   BENCH_FILL_PERCENT (100), BENCH_DROP_CACHES (1), BENCH_CPU_PROF=DIR (sidecars under
#   node --cpu-prof, profiles in DIR/A and DIR/B; the report summarises each shipping).
# Needs about 3 x the volume free in $TMPDIR (two images and the full copy); root only to
# drop the page cache before each timed step.
# Not part of the tests: ~11 minutes at the defaults on a loaded machine; it measures, it does not check.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
case ${1:-} in
  --write-results) export BENCH_WRITE_RESULTS=1 ;;
  '') ;;
  *) sed -n '2,15s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
bash hack/install-deps.sh >&2
npm run --silent build >&2
exec node bench/failback.mjs
