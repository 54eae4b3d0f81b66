#!/usr/bin/env bash
# Benchmarks asynchronous replication with consistency groups on loopback: throughput
# against a no-peer primary, RPO and coordination hold under a steady load at half the
# link capacity. See bench/async-replication.mjs for what is measured and how.
# Usage: bench/async-replication.sh [--write-results]
# Not part of the tests: ~4 minutes at the defaults; it measures, it does not check.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
case ${1:-} in
  --write-results) export BENCH_WRITE_RESULTS=1 ;;
  '') ;;
  *) sed -n '2,6s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
bash hack/install-deps.sh >&2
npm run --silent build >&2
exec node bench/async-replication.mjs
