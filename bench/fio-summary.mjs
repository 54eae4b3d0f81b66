#!/usr/bin/env node
// Summarises the fio runs of bench/nbd-vs-nbdkit.sh as a markdown table.
// Usage: node bench/fio-summary.mjs DIR JOB:METRIC:LABEL...
//   DIR holds fio --output-format=json files named JOB.TARGET.RUN.json, TARGET being
//   "ours" or "nbdkit"; METRIC is "iops" or "mbps" (write bandwidth, 10^6 bytes/s).
// Medians, not means: a single noisy run on a shared 2-core machine must not move the result.
// The paired ratio divides each run of ours by the nbdkit run of the same round (taken
// back to back), then takes the median: slow drift of the machine (page-cache writeback,
// a neighbour's load) then cancels instead of landing on whichever side it hit.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const [dir, ...jobSpecs] = process.argv.slice(2);
if (!dir || jobSpecs.length === 0) {
  console.error('usage: fio-summary.mjs DIR JOB:METRIC:LABEL...');
  process.exit(2);
}

function readFio(file) {
  const text = readFileSync(file, 'utf8');
  // fio may print warnings ahead of the JSON document; skip to its first brace.
  const report = JSON.parse(text.slice(text.indexOf('{')));
  const job = report.jobs[0];
  if (job.error) throw new Error(`${file}: fio job error ${job.error}`);
  return job.write;
}

function value(write, metric) {
  if (metric === 'iops') return write.iops;
  if (metric === 'mbps') return write.bw_bytes / 1e6;
  throw new Error(`unknown metric ${metric}`);
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

const fmt = (x, metric) => (metric === 'iops' ? Math.round(x).toLocaleString('en-US') : x.toFixed(1));
const unit = { iops: 'IOPS', mbps: 'MB/s' };

const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
const rows = [
  '| job | unit | ours (median) | nbdkit (median) | ours / nbdkit | paired ratio (median, min–max) | ours min–max | nbdkit min–max | runs |',
  '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
];
for (const spec of jobSpecs) {
  const [job, metric, ...labelParts] = spec.split(':');
  const label = labelParts.join(':') || job;
  const samples = {};
  const byRun = {};
  for (const target of ['ours', 'nbdkit']) {
    byRun[target] = new Map(
      files.filter((f) => f.startsWith(`${job}.${target}.`)).map((f) => [f.split('.')[2], value(readFio(join(dir, f)), metric)]),
    );
    samples[target] = [...byRun[target].values()];
  }
  const paired = [...byRun.ours].filter(([run]) => byRun.nbdkit.has(run)).map(([run, v]) => v / byRun.nbdkit.get(run));
  if (samples.ours.length + samples.nbdkit.length === 0) throw new Error(`no runs of ${job} in ${dir}`);
  // A target left out (BENCH_TARGETS) shows as n/a rather than failing the summary.
  const med = (xs) => (xs.length ? median(xs) : undefined);
  const show = (x) => (x === undefined ? 'n/a' : fmt(x, metric));
  const range = (xs) => (xs.length ? `${fmt(Math.min(...xs), metric)}–${fmt(Math.max(...xs), metric)}` : 'n/a');
  const ours = med(samples.ours);
  const theirs = med(samples.nbdkit);
  const ratio = ours !== undefined && theirs !== undefined ? (ours / theirs).toFixed(2) : 'n/a';
  const pairedCell = paired.length
    ? `${median(paired).toFixed(2)} (${Math.min(...paired).toFixed(2)}–${Math.max(...paired).toFixed(2)})`
    : 'n/a';
  rows.push(
    `| ${label} | ${unit[metric]} | ${show(ours)} | ${show(theirs)} | ${ratio} | ${pairedCell} | ` +
      `${range(samples.ours)} | ${range(samples.nbdkit)} | ${samples.ours.length} + ${samples.nbdkit.length} |`,
  );
}
console.log(rows.join('\n'));
// Every run, in round order, so a pattern (a side slow whenever it runs first) shows.
const rounds = [...new Set(files.map((f) => f.split('.')[2]))].sort((a, b) => Number(a) - Number(b));
console.log('\nPer round (ours / nbdkit):\n');
for (const spec of jobSpecs) {
  const [job, metric] = spec.split(':');
  const cells = rounds.map((r) => {
    const v = (t) => {
      const f = files.find((x) => x === `${job}.${t}.${r}.json`);
      return f === undefined ? 'n/a' : fmt(value(readFio(join(dir, f)), metric), metric);
    };
    return `${r}: ${v('ours')} / ${v('nbdkit')}`;
  });
  console.log(`- ${job}: ${cells.join('; ')}`);
}
