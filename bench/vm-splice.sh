#!/usr/bin/env bash
# Benchmarks the device-mapper splice on a real kernel (hack/vm.sh: Debian's kernel in
# qemu, TCG): fio 1 MiB sequential writes (QD8) and 4 KiB random writes (QD32), O_DIRECT,
# on the volume directly and through /dev/mapper/blockmirror-<pv> attached to a sync
# pair (tap, kernel NBD client, sidecar export, replication to a second sidecar in the
# VM), alternating sides in one boot; also the kernel NBD client over nbdkit (a C
# server) and the splice with replication paused, to tell the kernel path's cost from the
# sidecar's. Reports medians and ratios to direct only: TCG emulates every instruction,
# so absolute numbers mean nothing.
# Usage: bench/vm-splice.sh [--write-results]
# Environment: BENCH_RUNS (default 3) runs per side and job, BENCH_RUNTIME (default 10) s.
# Not part of the tests: ~10 minutes at the defaults.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
RUNS=${BENCH_RUNS:-3}
RUNTIME=${BENCH_RUNTIME:-10}
WRITE_RESULTS=0
case ${1:-} in
  --write-results) WRITE_RESULTS=1 ;;
  '') ;;
  *) sed -n '2,10s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
[[ $RUNS =~ ^[1-9][0-9]*$ && $RUNTIME =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_RUNS and BENCH_RUNTIME must be positive integers" >&2; exit 2; }

bash hack/install-deps.sh >/dev/null
bash hack/vm.sh build >&2
npm run -s build
HELPER=$(bash hack/build-nbd-helper.sh)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for d in a b; do truncate -s 256M "$work/$d.img"; done
VM_CPUS=2 VM_TIMEOUT=$((900 + RUNS * RUNTIME * 16)) VM_CONSOLE_LOG="$work/console.log" \
  bash hack/vm.sh run --disk "$work/a.img" --disk "$work/b.img" -- \
  "sh $ROOT/bench/vm/splice-fio.sh $ROOT $HELPER $RUNS $RUNTIME" | tee "$work/out"
grep -q '^bench: FAILED' "$work/out" && exit 1

report=$(node - "$work/out" "$RUNS" "$RUNTIME" <<'EOF'
const [file, runs, runtime] = process.argv.slice(2);
const rows = require('fs').readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('fio: ')).map((l) => {
  const [, job, side, run, mbs, iops, p50] = l.split(' ');
  return { job, side, run: Number(run), mbs: Number(mbs), iops: Number(iops), p50: Number(p50) };
});
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const sides = ['direct', 'nbdkit', 'spliced', 'paused'];
const out = [`### Device-mapper splice in the VM (${new Date().toISOString().slice(0, 10)}, TCG, ${runs} × ${runtime} s per side)`, '',
  'Medians; in brackets the ratio to direct. direct: the virtio disk; nbdkit: kernel NBD client over nbdkit (C) on the same disk;',
  'spliced: /dev/mapper/blockmirror-<pv> attached, sync replication to a second sidecar in the VM; paused: the same, replication paused.', '',
  `| job | measure | ${sides.join(' | ')} |`, `| --- | --- | ${sides.map(() => '---').join(' | ')} |`];
for (const [job, key, unit] of [['seq1m', 'mbs', 'MB/s'], ['rand4k', 'iops', 'IOPS'], ['rand4k', 'p50', 'clat p50 µs']]) {
  const med = Object.fromEntries(sides.map((s) => [s, median(rows.filter((r) => r.job === job && r.side === s).map((r) => r[key]))]));
  if (sides.some((s) => Number.isNaN(med[s]) || med[s] === undefined)) throw new Error(`missing ${job} runs`);
  const cell = (s) => (s === 'direct' ? `${med[s]}` : `${med[s]} (**${(med[s] / med.direct).toFixed(3)}**)`);
  out.push(`| ${job === 'seq1m' ? '1 MiB sequential, QD8' : '4 KiB random, QD32'} | ${unit} | ${sides.map(cell).join(' | ')} |`);
}
console.log(out.join('\n'));
EOF
)
report+=$'\n\n'"Peer sessions the sync pair lost during the runs: $(sed -n 's/^bench: peer sessions ended during the runs: \([0-9]*\).*/\1/p' "$work/out")."
echo
echo "$report"
if ((WRITE_RESULTS)); then printf '\n%s\n' "$report" >>bench/RESULTS.md; fi
