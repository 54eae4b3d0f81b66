#!/usr/bin/env node
// Benchmarks asynchronous replication (consistency groups) between two sidecars on
// 127.0.0.1, in one run (driven by bench/async-replication.sh, which installs and builds):
//   (a) fio through the export, async pair vs a no-peer primary of the same sidecar, same
//       preallocated files: 1 MiB sequential writes (iodepth 8, MB/s) and 4 KiB random
//       writes (iodepth 32, IOPS) -> ratios (target >= 0.9)
//   (b) link capacity: a burst of writes, bytes over the time the drain took to ship them
//   (c) steady random writes at half that capacity: RPO sampled from the pair status every
//       250 ms (target p99 <= 2 x the group interval) and the coordination hold p99
//       (target <= the configured maximum)
// Environment: BENCH_RUNS (3), BENCH_RUNTIME (10 s per fio run), BENCH_STEADY (30 s),
//   BENCH_INTERVAL_MS (1000, the group interval), BENCH_WRITE_RESULTS=1 appends to RESULTS.md.
import { spawn, execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem, release } from 'node:os';
import { join, dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist', 'sidecar', 'cli', 'main.js');
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const RUNTIME = Number(process.env.BENCH_RUNTIME ?? 10);
const STEADY = Number(process.env.BENCH_STEADY ?? 30);
const INTERVAL_MS = Number(process.env.BENCH_INTERVAL_MS ?? 1000);
const MAX_COORDINATION_MS = 50;
const VOLUME_MIB = 1024;
for (const [k, v] of Object.entries({ RUNS, RUNTIME, STEADY })) if (!(Number.isInteger(v) && v > 0)) throw new Error(`BENCH_${k} must be a positive integer`);
if (!(Number.isInteger(INTERVAL_MS) && INTERVAL_MS >= 0)) throw new Error('BENCH_INTERVAL_MS must be a whole number');

const log = (m) => process.stderr.write(`bench: ${m}\n`);
const work = mkdtempSync(join(tmpdir(), 'blockmirror-async-bench.'));
const children = [];

function sidecar(name) {
  const child = spawn(process.execPath, [CLI, 'sidecar', '--state-dir', join(work, `state-${name}`), '--control-listen', '127.0.0.1:0', '--peer-listen', '127.0.0.1:0', '--allow-volume-prefix', work], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let buf = '';
    child.once('exit', (code) => reject(new Error(`sidecar ${name} exited (${code})`)));
    child.stdout.on('data', (c) => {
      buf += c;
      for (const line of buf.split('\n').slice(0, -1)) {
        try {
          const j = JSON.parse(line);
          if (j.message === 'sidecar ready') resolve(j);
        } catch {
          // not JSON
        }
      }
      buf = buf.slice(buf.lastIndexOf('\n') + 1);
    });
  });
}

const cli = (control, ...args) => execFileSync(process.execPath, [CLI, ...args, '--control', control], { encoding: 'utf8' });
const status = (control, pair) => JSON.parse(cli(control, 'pair', 'status', pair, '-o', 'json'));

async function until(what, fn, timeoutMs) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

function settle() {
  execFileSync('sync');
  try {
    execFileSync('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']);
  } catch {
    // not root: the page cache stays warm for both sides alike
  }
}

/** One fio run; resolves with the write side of its JSON report. */
function fio(uri, args) {
  const out = execFileSync('fio', ['--name=bench', '--ioengine=nbd', `--uri=${uri}`, '--output-format=json', ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return JSON.parse(out.slice(out.indexOf('{'))).jobs[0].write;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const pct = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

async function main() {
  log(`work dir ${work}`);
  for (const f of ['a-async', 'b-async', 'a-nopeer']) {
    execFileSync('dd', ['if=/dev/zero', `of=${join(work, f + '.img')}`, 'bs=1M', `count=${VOLUME_MIB}`, 'oflag=direct', 'conv=fsync', 'status=none']);
  }
  const b = await sidecar('b');
  const a = await sidecar('a');
  cli(b.control, 'pair', 'create', 'async', '--volume', join(work, 'b-async.img'), '--role', 'secondary');
  cli(a.control, 'pair', 'create', 'async', '--volume', join(work, 'a-async.img'), '--role', 'primary', '--mode', 'async', '--peer', b.peer, '--nbd-listen', '127.0.0.1:0', '--group-interval-ms', String(INTERVAL_MS), '--max-coordination-ms', String(MAX_COORDINATION_MS));
  cli(a.control, 'pair', 'create', 'nopeer', '--volume', join(work, 'a-nopeer.img'), '--role', 'primary', '--mode', 'async', '--nbd-listen', '127.0.0.1:0');
  const uri = { async: `nbd://${status(a.control, 'async').nbdAddress}/async`, nopeer: `nbd://${status(a.control, 'nopeer').nbdAddress}/nopeer` };
  const drained = () => {
    const s = status(a.control, 'async');
    return s.state === 'Replicating' && s.outOfSyncBytes === 0 ? s : undefined;
  };
  log('waiting for the initial copy');
  await until('the initial copy', drained, 300_000);

  // (a) throughput, alternating which side goes first.
  const jobs = {
    'seqwrite-1m': { label: '1 MiB sequential write, iodepth 8', unit: 'MB/s', args: ['--rw=write', '--bs=1M', '--iodepth=8'], value: (w) => w.bw_bytes / 1e6 },
    'randwrite-4k': { label: '4 KiB random write, iodepth 32', unit: 'IOPS', args: ['--rw=randwrite', '--bs=4k', '--iodepth=32'], value: (w) => w.iops },
  };
  const samples = {};
  // Seconds from the end of each async run until its backlog was applied on the secondary.
  const catchUp = [];
  let order = ['async', 'nopeer'];
  for (let run = 1; run <= RUNS; run++) {
    for (const [job, j] of Object.entries(jobs)) {
      for (const side of order) {
        // Every run starts on a quiet machine: the async pair ships what the previous
        // run left (a burst defers its groups) before either side is measured.
        await until('the async pair drained', drained, 600_000);
        settle();
        const w = fio(uri[side], ['--time_based', `--runtime=${RUNTIME}`, '--ramp_time=1', ...j.args]);
        ((samples[job] ??= { async: [], nopeer: [] })[side]).push(j.value(w));
        log(`run ${run}/${RUNS} ${job} ${side}: ${j.value(w).toFixed(1)} ${j.unit}`);
        if (side === 'async') {
          const ended = Date.now();
          await until('the async pair drained', drained, 600_000);
          catchUp.push((Date.now() - ended) / 1000);
          log(`run ${run}/${RUNS} ${job} async: backlog applied ${catchUp.at(-1).toFixed(1)} s after the run`);
        }
      }
    }
    order = [order[1], order[0]];
  }

  // (b) link capacity: what the drain ships per second with a backlog to ship.
  await until('the async pair drained', drained, 600_000);
  settle();
  fio(uri.async, ['--rw=randwrite', '--bs=64k', '--iodepth=16', '--size=512M', '--time_based', '--runtime=5']);
  // Timed from the end of the burst: the groups it deferred are shipped from then on.
  const before = status(a.control, 'async').bytesReplicated;
  const t0 = Date.now();
  await until('the burst drained', drained, 600_000);
  const capacity = (status(a.control, 'async').bytesReplicated - before) / ((Date.now() - t0) / 1000);
  log(`link capacity (drain throughput): ${(capacity / 1e6).toFixed(1)} MB/s`);

  // (c) steady load at half the capacity; RPO sampled all along.
  const rate = Math.floor(capacity / 2);
  const rpo = [];
  const fioDone = new Promise((resolve, reject) => {
    const p = spawn('fio', ['--name=steady', '--ioengine=nbd', `--uri=${uri.async}`, '--rw=randwrite', '--bs=64k', '--iodepth=4', `--rate=${rate}`, '--time_based', `--runtime=${STEADY}`, '--output-format=json'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (c) => (out += c));
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.slice(out.indexOf('{'))).jobs[0].write) : reject(new Error(`fio exited ${code}`))));
  });
  let running = true;
  void fioDone.finally(() => (running = false));
  await sleep(2000); // past the first groups of the load
  const holdsBefore = status(a.control, 'async');
  while (running) {
    rpo.push(status(a.control, 'async').rpoSeconds);
    await sleep(250);
  }
  const steady = await fioDone;
  const after = status(a.control, 'async');

  const rows = [];
  rows.push(`## ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC: async replication (bench/async-replication.sh)`, '');
  rows.push(`- machine: ${cpus().length} cores (${cpus()[0]?.model.trim()}), ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Linux ${release()}`);
  rows.push(`- software: node ${process.version}, ${execFileSync('fio', ['--version'], { encoding: 'utf8' }).trim()}`);
  rows.push(`- setup: two sidecars on 127.0.0.1 (plaintext peer link); ${VOLUME_MIB} MiB preallocated files; the no-peer primary is a second pair of the same sidecar;`);
  rows.push(`  group interval ${INTERVAL_MS} ms, maximum coordination ${MAX_COORDINATION_MS} ms; ${RUNS} runs of ${RUNTIME} s (+1 s ramp) per job and side, alternating; medians;`);
  rows.push('  the async pair fully drained and the page cache dropped before each run', '');
  rows.push('### (a) Async replication vs no peer: fio through the NBD export', '');
  rows.push('| job | unit | async (median) | no peer (median) | async / no peer | paired ratio: median (min–max) | async min–max | no peer min–max | runs |', '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  const fmt = (x, u) => (u === 'IOPS' ? Math.round(x).toLocaleString('en-US') : x.toFixed(1));
  for (const [job, j] of Object.entries(jobs)) {
    const s = samples[job];
    const ra = median(s.async) / median(s.nopeer);
    // Each run's async result over the no-peer run beside it: drift between runs cancels.
    const paired = s.async.map((x, i) => x / s.nopeer[i]);
    rows.push(`| ${j.label} | ${j.unit} | ${fmt(median(s.async), j.unit)} | ${fmt(median(s.nopeer), j.unit)} | ${ra.toFixed(2)} | ${median(paired).toFixed(2)} (${Math.min(...paired).toFixed(2)}–${Math.max(...paired).toFixed(2)}) | ${fmt(Math.min(...s.async), j.unit)}–${fmt(Math.max(...s.async), j.unit)} | ${fmt(Math.min(...s.nopeer), j.unit)}–${fmt(Math.max(...s.nopeer), j.unit)} | ${s.async.length} + ${s.nopeer.length} |`);
    rows.push('');
    rows.splice(rows.length - 1, 1);
    samples[job].ratio = ra;
  }
  rows.push('', `Each async run saturates the primary: its groups are deferred while it lasts (the application first) and its backlog is applied on the secondary after it, in ${median(catchUp).toFixed(1)} s at the median (${Math.min(...catchUp).toFixed(1)}–${Math.max(...catchUp).toFixed(1)} s over ${catchUp.length} runs); the next run starts only then.`);
  rows.push('', '### (b), (c) RPO under a steady load at half the link capacity', '');
  rows.push(`Link capacity, measured as the drain's throughput from the end of a 5 s burst of 64 KiB random writes until its backlog was applied: ${(capacity / 1e6).toFixed(1)} MB/s.`);
  rows.push(`Steady load: 64 KiB random writes, iodepth 4, fio --rate ${(rate / 1e6).toFixed(1)} MB/s for ${STEADY} s (achieved ${(steady.bw_bytes / 1e6).toFixed(1)} MB/s); RPO sampled every 250 ms from the pair status (${rpo.length} samples, the first 2 s skipped).`, '');
  const groups = after.groupsFormed - holdsBefore.groupsFormed;
  rows.push('| measure | value | target | verdict |', '| --- | ---: | ---: | --- |');
  const target2 = (2 * INTERVAL_MS) / 1000;
  rows.push(`| RPO p50 | ${median(rpo).toFixed(2)} s | | |`);
  rows.push(`| RPO p99 | ${pct(rpo, 0.99).toFixed(2)} s | ≤ ${target2} s (2 × interval) | ${pct(rpo, 0.99) <= target2 ? 'pass' : 'FAIL'} |`);
  rows.push(`| RPO max | ${Math.max(...rpo).toFixed(2)} s | | |`);
  rows.push(`| consistency groups formed during the load / failed | ${groups} / ${after.groupsFailed - holdsBefore.groupsFailed} | | |`);
  rows.push(`| coordination hold p50 / p99 / max (last 1024 groups) | ${after.coordinationHoldP50Ms.toFixed(3)} / ${after.coordinationHoldP99Ms.toFixed(3)} / ${after.coordinationHoldMaxMs.toFixed(3)} ms | p99 ≤ ${MAX_COORDINATION_MS} ms | ${after.coordinationHoldP99Ms <= MAX_COORDINATION_MS ? 'pass' : 'FAIL'} |`);
  for (const [job, j] of Object.entries(jobs)) rows.push(`| ${j.label}: async / no peer | ${samples[job].ratio.toFixed(2)} | ≥ 0.9 | ${samples[job].ratio >= 0.9 ? 'pass' : 'FAIL'} |`);
  rows.push('', 'Rerun: `bash bench/async-replication.sh --write-results` (env: BENCH_RUNS, BENCH_RUNTIME, BENCH_STEADY, BENCH_INTERVAL_MS).', '');
  const report = rows.join('\n');
  console.log(report);
  if (process.env.BENCH_WRITE_RESULTS === '1') appendFileSync(join(ROOT, 'bench', 'RESULTS.md'), '\n' + report);
}

try {
  await main();
} finally {
  for (const c of children) c.kill('SIGTERM');
  await sleep(1000);
  rmSync(work, { recursive: true, force: true });
}
