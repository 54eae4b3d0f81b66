#!/usr/bin/env node
// Helpers of bench/sync-replication.sh: reading the sidecars' JSON logs and status, and
// summarising the runs as markdown tables. Medians, not means: a single noisy run on a
// shared 2-core machine must not move the result.
// Usage: node bench/sync-replication.mjs COMMAND ARGS...
//   ready LOG FIELD                     a field of the first "sidecar ready" line of LOG
//   logtime LOG MESSAGE AFTER_MS [PAIR] epoch ms of the first MESSAGE line at or after AFTER_MS
//   status FIELD...                     fields of `pair status -o json` (stdin), tab-separated;
//                                       lastInSyncTime is printed as epoch ms (0: never)
//   fio-table DIR                       fio JSON files JOB.TARGET.RUN.json, TARGET sync or nopeer
//   resync-table TSV                    one line per resync run (columns: see RESYNC_COLUMNS)
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const [cmd, ...args] = process.argv.slice(2);

function fail(message) {
  console.error(`sync-replication.mjs: ${message}`);
  process.exit(1);
}

function* logRecords(file) {
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      yield JSON.parse(line);
    } catch {
      /* not a JSON line */
    }
  }
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function readFio(file) {
  const text = readFileSync(file, 'utf8');
  // fio may print warnings ahead of the JSON document; skip to its first brace.
  const report = JSON.parse(text.slice(text.indexOf('{')));
  const job = report.jobs[0];
  if (job.error) throw new Error(`${file}: fio job error ${job.error}`);
  return job.write;
}

const FIO_METRICS = {
  mbps: { unit: 'MB/s', pick: (w) => w.bw_bytes / 1e6, fmt: (x) => x.toFixed(1) },
  iops: { unit: 'IOPS', pick: (w) => w.iops, fmt: (x) => Math.round(x).toLocaleString('en-US') },
  p50: {
    unit: 'µs',
    pick: (w) => {
      const p = w.clat_ns?.percentile?.['50.000000'];
      if (p === undefined) throw new Error('fio JSON has no clat_ns.percentile 50.000000');
      return p / 1000;
    },
    fmt: (x) => x.toFixed(0),
  },
};

// Targets of the sync mode against the standalone primary.
const THROUGHPUT_RATIO_MIN = 0.6;
const ADDED_P50_MAX_US = 300;
const RSYNC_SPEEDUP_MIN = 20;

function fioTable(dir) {
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  const samples = (job, target, metric) =>
    files.filter((f) => f.startsWith(`${job}.${target}.`)).map((f) => FIO_METRICS[metric].pick(readFio(join(dir, f))));
  const rows = [
    '| measure | unit | sync (median) | no peer (median) | sync / no peer | sync min–max | no peer min–max | runs |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  const med = {};
  for (const [job, metric, label] of [
    ['seqwrite-1m', 'mbps', '1 MiB sequential write, iodepth 8'],
    ['randwrite-4k-qd1', 'iops', '4 KiB random write, iodepth 1'],
    ['randwrite-4k-qd1', 'p50', '4 KiB random write, iodepth 1: completion latency p50'],
  ]) {
    const m = FIO_METRICS[metric];
    const s = samples(job, 'sync', metric);
    const n = samples(job, 'nopeer', metric);
    if (s.length === 0 || n.length === 0) throw new Error(`no runs of ${job} for both targets in ${dir}`);
    const range = (xs) => `${m.fmt(Math.min(...xs))}–${m.fmt(Math.max(...xs))}`;
    med[`${job}.${metric}`] = { sync: median(s), nopeer: median(n) };
    const { sync, nopeer } = med[`${job}.${metric}`];
    rows.push(`| ${label} | ${m.unit} | ${m.fmt(sync)} | ${m.fmt(nopeer)} | ${(sync / nopeer).toFixed(2)} | ${range(s)} | ${range(n)} | ${s.length} + ${n.length} |`);
  }
  const bound = samples('seqwrite-1m', 'bound', 'mbps');
  if (bound.length > 0) {
    const b = median(bound);
    const n = med['seqwrite-1m.mbps'].nopeer;
    rows.push(`| 1 MiB sequential write, iodepth 8: mirror bound (bench/mirror-bound.mjs) | MB/s | ${FIO_METRICS.mbps.fmt(b)} | ${FIO_METRICS.mbps.fmt(n)} | ${(b / n).toFixed(2)} | ${FIO_METRICS.mbps.fmt(Math.min(...bound))}–${FIO_METRICS.mbps.fmt(Math.max(...bound))} | | ${bound.length} |`);
  }
  const seq = med['seqwrite-1m.mbps'];
  const iops = med['randwrite-4k-qd1.iops'];
  const p50 = med['randwrite-4k-qd1.p50'];
  const added = p50.sync - p50.nopeer;
  const verdict = (ok) => (ok ? 'pass' : 'FAIL');
  rows.push(
    '',
    '| target | measured | verdict |',
    '| --- | ---: | --- |',
    `| 1 MiB sequential throughput, sync / no peer ≥ ${THROUGHPUT_RATIO_MIN} | ${(seq.sync / seq.nopeer).toFixed(2)} | ${verdict(seq.sync / seq.nopeer >= THROUGHPUT_RATIO_MIN)} |`,
    `| 4 KiB iodepth 1 IOPS, sync / no peer ≥ ${THROUGHPUT_RATIO_MIN} | ${(iops.sync / iops.nopeer).toFixed(2)} | ${verdict(iops.sync / iops.nopeer >= THROUGHPUT_RATIO_MIN)} |`,
    `| added completion latency p50 (sync − no peer) ≤ ${ADDED_P50_MAX_US} µs | ${added.toFixed(0)} µs | ${verdict(added <= ADDED_P50_MAX_US)} |`,
  );
  return rows.join('\n');
}

// Times are epoch ms (from the sidecars' logs and status), durations seconds.
const RESYNC_COLUMNS = ['run', 'order', 'oosBytes', 'returnMs', 'sessionMs', 'inSyncMs', 'rsyncS', 'rsyncLiteral', 'nbdcopyS', 'wireBytes', 'identical'];

function resyncTable(file) {
  const runs = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => Object.fromEntries(l.split('\t').map((v, i) => [RESYNC_COLUMNS[i], v])));
  if (runs.length === 0) throw new Error(`no resync runs in ${file}`);
  const num = (k) => runs.map((r) => Number(r[k]));
  const fromReturn = runs.map((r) => (Number(r.inSyncMs) - Number(r.returnMs)) / 1000);
  const fromSession = runs.map((r) => (Number(r.inSyncMs) - Number(r.sessionMs)) / 1000);
  const rsync = num('rsyncS');
  const nbdcopy = num('nbdcopyS');
  const s = (x) => (x < 10 ? x.toFixed(3) : x.toFixed(1));
  const range = (xs) => `${s(Math.min(...xs))}–${s(Math.max(...xs))}`;
  const mib = (b) => (b / 2 ** 20).toFixed(1);
  const rows = [
    '| measure | median (s) | min–max (s) | runs |',
    '| --- | ---: | ---: | ---: |',
    `| resync: secondary back ("sidecar ready") → InSync | ${s(median(fromReturn))} | ${range(fromReturn)} | ${runs.length} |`,
    `| resync: peer session started → InSync | ${s(median(fromSession))} | ${range(fromSession)} | ${runs.length} |`,
    `| rsync --inplace --no-whole-file --ignore-times A.img → pre-outage copy of B.img, + fsync | ${s(median(rsync))} | ${range(rsync)} | ${runs.length} |`,
    `| nbdcopy of the whole export to a file, + fsync | ${s(median(nbdcopy))} | ${range(nbdcopy)} | ${runs.length} |`,
  ];
  const speedup = (a, b) => median(a) / median(b);
  const verdict = (x) => (x >= RSYNC_SPEEDUP_MIN ? 'pass' : 'FAIL');
  const x1 = speedup(rsync, fromSession);
  const x2 = speedup(rsync, fromReturn);
  rows.push(
    '',
    '| ratio (of medians) | value | target |',
    '| --- | ---: | --- |',
    `| rsync / resync (session started → InSync) | ${x1.toFixed(1)}× | ≥ ${RSYNC_SPEEDUP_MIN}×: ${verdict(x1)} |`,
    `| rsync / resync (secondary back → InSync, reconnect backoff included) | ${x2.toFixed(1)}× | ≥ ${RSYNC_SPEEDUP_MIN}×: ${verdict(x2)} |`,
    `| nbdcopy full copy / resync (session started → InSync) | ${speedup(nbdcopy, fromSession).toFixed(1)}× | |`,
    `| nbdcopy full copy / resync (secondary back → InSync) | ${speedup(nbdcopy, fromReturn).toFixed(1)}× | |`,
    '',
    '| data per run (median) | MiB |',
    '| --- | ---: |',
    `| out of sync on the primary before the secondary came back | ${mib(median(num('oosBytes')))} |`,
    `| resync payload sent (bytesOnWire delta) | ${mib(median(num('wireBytes')))} |`,
    `| rsync literal data | ${mib(median(num('rsyncLiteral')))} |`,
  );
  const bad = runs.filter((r) => r.identical !== 'yes').map((r) => r.run);
  rows.push('', bad.length === 0 ? `Secondary image identical to the primary's after every resync (cmp): yes.` : `Secondary image DIFFERS from the primary's after the resync of run(s) ${bad.join(', ')}.`);
  return rows.join('\n');
}

try {
  switch (cmd) {
    case 'ready': {
      const [file, field] = args;
      for (const rec of logRecords(file)) {
        if (rec.message === 'sidecar ready') {
          console.log(rec[field] ?? '');
          process.exit(0);
        }
      }
      process.exit(1);
      break;
    }
    case 'logtime': {
      const [file, message, after, pair] = args;
      for (const rec of logRecords(file)) {
        if (rec.message !== message || (pair && rec.pair !== pair)) continue;
        const t = Date.parse(rec.timestamp);
        if (t >= Number(after)) {
          console.log(t);
          process.exit(0);
        }
      }
      process.exit(1);
      break;
    }
    case 'status': {
      const s = JSON.parse(readFileSync(0, 'utf8'));
      console.log(args.map((f) => (f === 'lastInSyncTime' ? (s[f] ? Date.parse(s[f]) : 0) : (s[f] ?? ''))).join('\t'));
      break;
    }
    case 'fio-table':
      console.log(fioTable(args[0]));
      break;
    case 'resync-table':
      console.log(resyncTable(args[0]));
      break;
    default:
      fail(`unknown command ${cmd ?? '(none)'}`);
  }
} catch (err) {
  fail(err.message);
}
