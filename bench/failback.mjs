#!/usr/bin/env node
// Benchmarks a forced failover and the failback after it (issue 18) between two real
// sidecars on 127.0.0.1, driven by bench/failback.sh (which installs and builds). Per mode
// (sync, async) one pair A -> B, the initial copy done (setup, not measured), then rounds of:
//   1. ~1 % of the volume written on A that B never confirms: whole 4 MiB extents, so the
//      dirty log's activity-log superset after kill -9 is the same 1 % (sync: mirrored
//      and confirmed, but A's log cannot know that after a crash; async: a group interval
//      longer than the round, so the writes are still in A's recording bitmap);
//   2. A's sidecar killed (kill -9: its link goes with it), B sees its primary gone, and
//      `pair promote --force` on B. RTO = from the promote command's start to the first
//      write acknowledged by B's NBD export (qemu-io: write + flush, a real NBD client);
//   3. ~1 % more written on B (64 KiB blocks at random: fio through the export), then
//      A's sidecar restarted: it learns B is newer, demotes itself and takes the union
//      resync. Failback time = from A's sidecar start until B is settled (sync: InSync,
//      its lastInSyncTime; async: Replicating) with nothing out of sync and A holds B's
//      generation; the bytes B shipped (bytesOnWire) are recorded;
//   4. in the same round, the peer: nbdcopy of B's whole export to a fresh file, + fsync;
//      the order of 3 and 4 alternates between rounds;
//   5. A's and B's images compared (cmp) and the full copy against B's; then a planned
//      switchover home (demote B, promote A), timed, for the next round.
// Ratio of medians and median of the per-round ratios full copy / failback (target >= 20x).
// Environment: BENCH_RUNS (3) rounds per mode, BENCH_MODES ("sync async"), BENCH_VOLUME_MIB
//   (2048), BENCH_FILL_PERCENT (100: share of the volume holding random data, the rest a
//   hole; lower makes the setup cheaper and the full copy faster), BENCH_DROP_CACHES (1; 0
//   keeps the page cache, for trying the script beside other work), BENCH_WRITE_RESULTS=1
//   appends the report to bench/RESULTS.md.
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, createWriteStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { open, truncate } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist', 'sidecar', 'cli', 'main.js');
const { ControlClient } = await import(join(ROOT, 'dist', 'sidecar', 'control', 'control-client.js'));
const { pairToJson } = await import(join(ROOT, 'dist', 'sidecar', 'control', 'pair-json.js'));

const MiB = 1 << 20;
const BLOCK = 64 * 1024; // the pairs' default tracking block
const EXTENT = 4 * MiB; // the dirty log's activity-log extent (DirtyTracker's default)
const PAIR = 'db';
const TARGET = 20;
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const MODES = (process.env.BENCH_MODES ?? 'sync async').split(/\s+/).filter(Boolean);
const VOLUME_MIB = Number(process.env.BENCH_VOLUME_MIB ?? 2048);
const FILL_PERCENT = Number(process.env.BENCH_FILL_PERCENT ?? 100);
// A's group interval in async mode: a round writes and kills A right after a group was
// applied, well within it, so A's writes stay unshipped.
const A_ASYNC_INTERVAL_MS = 20_000;
const B_ASYNC_INTERVAL_MS = 1000;
if (!(Number.isInteger(RUNS) && RUNS > 0)) throw new Error('BENCH_RUNS must be a positive integer');
if (!(Number.isInteger(VOLUME_MIB) && VOLUME_MIB >= 16)) throw new Error('BENCH_VOLUME_MIB must be an integer of at least 16');
if (!(FILL_PERCENT >= 0 && FILL_PERCENT <= 100)) throw new Error('BENCH_FILL_PERCENT must be 0-100');
for (const m of MODES) if (m !== 'sync' && m !== 'async') throw new Error(`BENCH_MODES: unknown mode ${m}`);
const VOLUME = VOLUME_MIB * MiB;
// ~1 % of the volume on each side: whole extents on A, single blocks on B.
const A_EXTENTS = Math.max(1, Math.round(VOLUME / 100 / EXTENT));
const B_BLOCKS = Math.max(2, Math.round(VOLUME / 100 / BLOCK));

const log = (m) => process.stderr.write(`bench: ${m}\n`);
const CPU_PROF = process.env.BENCH_CPU_PROF ? resolve(process.env.BENCH_CPU_PROF) : '';
// Epoch ms to the monotonic clock of V8's profiles (µs): the shipping windows are cut
// out of the sidecars' whole-life profiles with it.
const MONO_OFFSET_US = Number(process.hrtime.bigint() / 1000n) - Date.now() * 1000;
const profWindows = [];
const work = mkdtempSync(join(tmpdir(), 'blockmirror-failback-bench.'));
const children = new Set();
const notes = [];
const note = (m) => {
  log(`NOTE: ${m}`);
  notes.push(m);
};

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

/** Runs a program to completion; resolves with its stdout, rejects with its stderr. */
function run(cmd, args, { quiet = false } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      children.delete(child);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${code ?? signal}): ${quiet ? '' : err.trim()}`));
    });
  });
}

const cli = (sc, ...args) => run(process.execPath, [CLI, ...args, '--control', sc.control]);

/**
 * A sidecar on STATE (kept across restarts); PEER_LISTEN pins its peer port so that the
 * other side finds it again. Its JSON log goes to a file and is kept in memory.
 */
async function startSidecar(name, state, peerListen = '127.0.0.1:0') {
  const startedAt = Date.now();
  const logFile = join(work, `sidecar-${name}.${startedAt}.log`);
  const out = createWriteStream(logFile);
  // --cpu-prof cannot go through NODE_OPTIONS; the profile is written when node exits
  // (SIGTERM at the end of a mode; an instance killed with -9 leaves none).
  const prof = CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${join(CPU_PROF, name)}`] : [];
  const child = spawn(process.execPath, [...prof, CLI, 'sidecar', '--state-dir', state, '--control-listen', '127.0.0.1:0', '--peer-listen', peerListen, '--allow-volume-prefix', work], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const records = [];
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    children.delete(child);
    resolve({ code, signal });
  }));
  let partial = '';
  const ready = new Promise((resolve, reject) => {
    child.stdout.on('data', (c) => {
      out.write(c);
      partial += c;
      const lines = partial.split('\n');
      partial = lines.pop();
      for (const line of lines) {
        try {
          const j = JSON.parse(line);
          records.push(j);
          if (j.message === 'sidecar ready') resolve(j);
        } catch {
          // not JSON
        }
      }
    });
    child.stderr.on('data', (c) => out.write(c));
    void exited.then(({ code, signal }) => reject(new Error(`sidecar ${name} exited (${code ?? signal}) before it was ready; log ${logFile}`)));
  });
  const r = await ready;
  return { name, child, records, exited, startedAt, state, control: r.control, peer: r.peer, client: new ControlClient(r.control) };
}

async function kill9(sc) {
  sc.child.kill('SIGKILL');
  await sc.exited;
  sc.client.close?.();
}

async function stopSidecar(sc) {
  sc.child.kill('SIGTERM');
  const r = await Promise.race([sc.exited, sleep(15_000, null)]);
  if (r === null) {
    note(`sidecar ${sc.name} did not stop within 15 s of SIGTERM: killed`);
    await kill9(sc);
  }
  sc.client.close?.();
}

/** Epoch ms of the first log record of SC with MESSAGE at or after AFTER (and its record). */
function logRecord(sc, message, after = 0) {
  for (const r of sc.records) {
    const t = Date.parse(r.timestamp);
    if (r.message === message && t >= after) return { t, r };
  }
  return undefined;
}

const status = async (sc) => pairToJson(await sc.client.getPair(PAIR));

async function until(what, fn, timeoutMs, intervalMs = 25) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(intervalMs);
  }
}

/** Page cache synced and, as root, dropped: every timed step starts alike. */
let dropCaches = process.env.BENCH_DROP_CACHES !== '0';
async function settle() {
  await run('sync', []);
  if (!dropCaches) return;
  try {
    await run('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches'], { quiet: true });
  } catch {
    dropCaches = false; // not root: the cache stays warm for both measures alike
  }
}

// ---------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------

/** A's image: random data in FILL_PERCENT of the volume, spread in 1 MiB regions; B's: a hole. */
async function makeImages(a, b) {
  await truncate(a, 0).catch(() => undefined);
  const fh = await open(a, 'w');
  try {
    const regions = VOLUME / MiB;
    const filled = Math.round((regions * FILL_PERCENT) / 100);
    for (let i = 0; i < filled; i++) {
      // Bresenham-style spread: region k*regions/filled for the k-th filled one.
      const region = Math.floor((i * regions) / filled);
      await fh.write(randomBytes(MiB), 0, MiB, region * MiB);
    }
    await fh.truncate(VOLUME);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await truncate(b, 0).catch(() => undefined);
  const fb = await open(b, 'w');
  await fb.truncate(VOLUME);
  await fb.close();
}

/** Distinct random integers in [0, n). */
function pick(count, n) {
  const s = new Set();
  while (s.size < count) s.add(Math.floor(Math.random() * n));
  return [...s];
}

/** fio through an export: each job writes every 64 KiB block of one whole extent once. */
async function writeExtents(uri, extents) {
  const args = ['--ioengine=nbd', `--uri=${uri}`, '--rw=randwrite', '--bs=64k', '--iodepth=8', '--refill_buffers', '--randrepeat=0', `--size=${EXTENT}`, '--group_reporting', '--output-format=terse'];
  for (const e of extents) args.push(`--name=e${e}`, `--offset=${e * EXTENT}`);
  await run('fio', args);
}

/** fio through an export: COUNT random 64 KiB blocks of the whole volume, each once. */
async function writeBlocks(uri, count) {
  await run('fio', ['--name=spread', '--ioengine=nbd', `--uri=${uri}`, '--rw=randwrite', '--bs=64k', '--iodepth=8', `--number_ios=${count}`, '--refill_buffers', '--randrepeat=0', '--output-format=terse']);
}

async function identical(x, y) {
  try {
    await run('cmp', ['-s', x, y], { quiet: true });
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------
// The pair
// ---------------------------------------------------------------------------------------

const settledAs = (mode) => (s) => s.role === 'primary' && s.state === (mode === 'sync' ? 'InSync' : 'Replicating') && s.outOfSyncBytes === 0;

/** The primary settled and the secondary holding its generation, consistent. */
async function converged(p, s, mode, what, timeoutMs = 300_000) {
  return until(
    what,
    async () => {
      const [x, y] = [await status(p), await status(s)];
      return settledAs(mode)(x) && y.role === 'secondary' && y.consistent && y.generation !== '' && y.generation === x.generation ? { p: x, s: y, at: Date.now() } : undefined;
    },
    timeoutMs,
  );
}

const ms = (x) => (x === undefined || x === null ? NaN : x);
const med = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function benchMode(mode) {
  const dir = join(work, mode);
  mkdirSync(dir);
  const imgA = join(dir, 'A.img');
  const imgB = join(dir, 'B.img');
  const full = join(dir, 'full.img');
  log(`${mode}: writing A's ${VOLUME_MIB} MiB image (${FILL_PERCENT} % random data) and B's empty one`);
  await makeImages(imgA, imgB);
  let b = await startSidecar('B', join(dir, 'state-b'));
  let a = await startSidecar('A', join(dir, 'state-a'));
  const aPeer = a.peer;
  const modeArgs = (side) => (mode === 'async' ? ['--mode', 'async', '--group-interval-ms', String(side === 'A' ? A_ASYNC_INTERVAL_MS : B_ASYNC_INTERVAL_MS)] : []);
  try {
    // B knows where A is: it replicates there once promoted.
    await cli(b, 'pair', 'create', PAIR, '--volume', imgB, '--role', 'secondary', '--peer', aPeer, ...modeArgs('B'));
    const t0 = Date.now();
    await cli(a, 'pair', 'create', PAIR, '--volume', imgA, '--role', 'primary', '--peer', b.peer, '--nbd-listen', '127.0.0.1:0', ...modeArgs('A'));
    log(`${mode}: initial copy of ${VOLUME_MIB} MiB`);
    await converged(a, b, mode, 'the initial copy', 600_000);
    const initialMs = Date.now() - t0;
    log(`${mode}: initial copy took ${(initialMs / 1000).toFixed(1)} s`);
    if (!(await identical(imgA, imgB))) throw new Error(`${mode}: B's image differs from A's after the initial copy`);

    const rounds = [];
    for (let r = 1; r <= RUNS; r++) {
      const row = { round: r };
      const first = r % 2 === 1 ? 'failback' : 'fullcopy';
      row.order = first === 'failback' ? 'failback, full copy' : 'full copy, failback';
      const uriA = `nbd://${(await status(a)).nbdAddress}/${PAIR}`;
      const extents = pick(A_EXTENTS, Math.floor(VOLUME / EXTENT));
      if (mode === 'sync') await converged(a, b, mode, `the pair converged A -> B before round ${r}`);
      else {
        // A group just applied: the next one is a whole interval away, and B holds A's
        // generation (after a promotion it adopts it only with a group). The primer goes
        // into an extent the round writes anyway: it adds nothing to A's dirty extents.
        const g0 = (await status(a)).groupsFormed;
        await run('qemu-io', ['-f', 'raw', '-c', `write -P 0x11 ${extents[0] * EXTENT} 4k`, '-c', 'flush', uriA]);
        await until('a group after the primer write', async () => (await status(a)).groupsFormed > g0, 120_000);
        await converged(a, b, mode, `the pair converged A -> B after the primer write of round ${r}`);
      }
      const stA = await status(a);

      // 1. ~1 % on A that B never confirms (after a crash, for A's dirty log).
      log(`${mode} round ${r}/${RUNS}: writing ${extents.length} whole 4 MiB extents on A`);
      await writeExtents(uriA, extents);
      if (mode === 'sync') await until('A settled after its writes', async () => settledAs(mode)(await status(a)), 60_000);
      const beforeKill = await status(a);
      if (mode === 'async' && beforeKill.groupsFormed !== stA.groupsFormed) note(`${mode} round ${r}: A formed a group during its writes (B got some of them)`);

      // 2. kill -9 A; B notices; forced promotion; first write through B's export.
      await kill9(a);
      const killedAt = Date.now();
      await until('B to see its primary gone', async () => (await status(b)).state === 'Retrying', 60_000);
      row.detectMs = Date.now() - killedAt;
      await settle();
      const tPromote = Date.now();
      const promoted = JSON.parse(await cli(b, 'pair', 'promote', PAIR, '--force', '--nbd-listen', '127.0.0.1:0', '-o', 'json'));
      const tPromoted = Date.now();
      if (promoted.role !== 'primary' || !promoted.nbdAddress) throw new Error(`promote answered ${JSON.stringify({ role: promoted.role, nbd: promoted.nbdAddress })}`);
      const uriB = `nbd://${promoted.nbdAddress}/${PAIR}`;
      const firstOffset = Math.floor(Math.random() * (VOLUME / BLOCK)) * BLOCK;
      await run('qemu-io', ['-f', 'raw', '-c', `write -P 0x5a ${firstOffset} 64k`, '-c', 'flush', uriB]);
      const tWritten = Date.now();
      row.promoteMs = tPromoted - tPromote;
      row.firstWriteMs = tWritten - tPromoted;
      row.rtoMs = tWritten - tPromote;
      log(`${mode} round ${r}/${RUNS}: RTO ${row.rtoMs} ms (promote ${row.promoteMs} ms, first write ${row.firstWriteMs} ms)`);

      // 3. ~1 % on B, spread.
      await writeBlocks(uriB, B_BLOCKS - 1);
      const stB = await status(b);
      row.bOutOfSync = stB.outOfSyncBytes;
      row.bDirty = stB.dirtyBlocks * BLOCK;
      row.bWireBefore = stB.bytesOnWire;

      for (const step of first === 'failback' ? ['failback', 'fullcopy'] : ['fullcopy', 'failback']) {
        await settle();
        if (step === 'fullcopy') {
          log(`${mode} round ${r}/${RUNS}: full copy of B's export with nbdcopy`);
          rmSync(full, { force: true });
          const t = Date.now();
          await run('nbdcopy', [uriB, full]);
          await run('sync', [full]);
          row.fullCopyMs = Date.now() - t;
          log(`${mode} round ${r}/${RUNS}: nbdcopy + fsync ${row.fullCopyMs} ms`);
        } else {
          log(`${mode} round ${r}/${RUNS}: restarting A's sidecar, timing the failback`);
          const tStart = Date.now();
          a = await startSidecar('A', join(dir, 'state-a'), aPeer);
          const tReady = Date.now();
          await until('A demoted itself', async () => (await status(a)).role === 'secondary', 120_000);
          const c = await converged(b, a, mode, 'the failback resync', 300_000);
          // The end: sync, B's own lastInSyncTime; async, the poll that saw it all settled.
          const end = mode === 'sync' && c.p.lastInSyncTime ? Date.parse(c.p.lastInSyncTime) : c.at;
          row.failbackMs = end - tStart;
          row.shipped = c.p.bytesOnWire - row.bWireBefore;
          const rec = logRecord(a, 'recovered dirty extents after an unclean stop', tStart);
          row.aRecoveredBytes = rec ? rec.r.dirtyBlocks * BLOCK : 0;
          const stale = logRecord(a, 'this primary is stale: demoting itself', tStart);
          const session = logRecord(b, 'peer session started', tStart);
          // The resync's session is the last one started before the end.
          const sessions = b.records.filter((x) => x.message === 'peer session started' && Date.parse(x.timestamp) >= tStart && Date.parse(x.timestamp) <= end);
          const lastSession = sessions.length ? Date.parse(sessions.at(-1).timestamp) : undefined;
          const resync = logRecord(b, 'resync started', tStart);
          row.readyMs = Date.parse(logRecord(a, 'sidecar ready', tStart)?.r.timestamp ?? '') - tStart;
          row.staleMs = stale ? stale.t - tStart : NaN;
          const asSecondary = logRecord(a, 'secondary pair started', stale?.t ?? tStart);
          row.secondaryMs = asSecondary ? asSecondary.t - tStart : NaN;
          row.sessionMs = lastSession !== undefined ? lastSession - tStart : session ? session.t - tStart : NaN;
          row.shipMs = lastSession !== undefined ? end - lastSession : NaN;
          row.resyncStartMs = resync ? resync.t - tStart : NaN;
          if (CPU_PROF && lastSession !== undefined) {
            const w = { what: `${mode} round ${r}: session started → settled`, from: Math.round(lastSession * 1000 + MONO_OFFSET_US), to: Math.round(end * 1000 + MONO_OFFSET_US) };
            profWindows.push(w);
            log(`${w.what}: profile window ${w.from} ${w.to} (µs, monotonic; cpu-profile-summary.mjs --between)`);
          }
          row.resyncRecord = resync?.r;
          // Where the shipping went (disk reads, the window, the closing barrier).
          const passes = b.records.filter((x) => x.message === 'resync pass done' && Date.parse(x.timestamp) >= tStart && Date.parse(x.timestamp) <= end);
          if (passes.length) log(`${mode} round ${r}/${RUNS}: resync passes ${JSON.stringify(passes.map(({ bytes, frames, ms, shippedMs, readWaitMs, windowWaitMs, windowBytes }) => ({ bytes, frames, ms, shippedMs, readWaitMs, windowWaitMs, windowBytes })))}`);
          row.startCliMs = tReady - tStart;
          log(`${mode} round ${r}/${RUNS}: failback ${row.failbackMs} ms, ${row.shipped} bytes shipped (A's dirty log after the crash: ${row.aRecoveredBytes} bytes, B's writes: ${row.bOutOfSync} bytes out of sync)`);
        }
      }

      // 5. Byte-identical, or the numbers mean nothing.
      row.identical = await identical(imgA, imgB);
      row.fullIdentical = await identical(full, imgB);
      if (!row.identical) note(`${mode} round ${r}: A's image differs from B's after the failback`);
      if (!row.fullIdentical) note(`${mode} round ${r}: nbdcopy's copy differs from B's image`);
      rmSync(full, { force: true });

      // Home: a planned switchover back to A for the next round (timed, not a target here).
      const tDemote = Date.now();
      await cli(b, 'pair', 'demote', PAIR);
      const tPromoteA = Date.now();
      await cli(a, 'pair', 'promote', PAIR);
      row.switchDemoteMs = tPromoteA - tDemote;
      row.switchPromoteMs = Date.now() - tPromoteA;
      rounds.push(row);
    }
    return { mode, initialMs, rounds };
  } finally {
    await Promise.all([stopSidecar(a), stopSidecar(b)]);
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------

const sec = (x) => (Number.isFinite(x) ? (x / 1000).toFixed(3) : 'n/a');
const mib = (x) => (Number.isFinite(x) ? (x / MiB).toFixed(1) : 'n/a');
const range = (xs, f) => {
  const s = xs.filter((x) => Number.isFinite(x));
  return s.length ? `${f(Math.min(...s))}–${f(Math.max(...s))}` : 'n/a';
};

function modeReport({ mode, initialMs, rounds }) {
  const col = (k) => rounds.map((r) => ms(r[k]));
  const rows = [];
  rows.push(`### ${mode} mode`, '');
  rows.push(`Initial copy of the ${VOLUME_MIB} MiB volume (setup, pair create → converged): ${(initialMs / 1000).toFixed(1)} s.`, '');
  rows.push('| measure | median (s) | min–max (s) | rounds |', '| --- | ---: | ---: | ---: |');
  const line = (label, k) => rows.push(`| ${label} | ${sec(med(col(k)))} | ${range(col(k), sec)} | ${col(k).filter(Number.isFinite).length} |`);
  line('**RTO**: `pair promote --force` started → first write acknowledged by B\'s export (qemu-io write + flush)', 'rtoMs');
  line('… of which the promote command (CLI process, PromotePair, export up)', 'promoteMs');
  line('… of which the first write (qemu-io process: connect, write 64 KiB, flush)', 'firstWriteMs');
  line('B sees its primary gone (kill -9 → B Retrying; before the promotion, not in RTO)', 'detectMs');
  line('**failback resync**: A\'s sidecar started → B settled, nothing out of sync, A holds B\'s generation', 'failbackMs');
  line('… A\'s sidecar ready (process start, state, pair opened)', 'readyMs');
  line('… A learns it is stale and demotes itself', 'staleMs');
  line('… A\'s pair restarted as a secondary', 'secondaryMs');
  line('… B\'s session to the demoted A started', 'sessionMs');
  line('… that session started → settled (union shipped, MarkSynced)', 'shipMs');
  line('**full copy**: nbdcopy of B\'s whole export to a fresh file + fsync', 'fullCopyMs');
  line('planned switchover home: `pair demote` on B', 'switchDemoteMs');
  line('planned switchover home: `pair promote` on A', 'switchPromoteMs');
  rows.push('');
  const paired = rounds.map((r) => r.fullCopyMs / r.failbackMs);
  const ratio = med(col('fullCopyMs')) / med(col('failbackMs'));
  const pairedMed = med(paired);
  const verdict = (x) => (x >= TARGET ? 'pass' : 'FAIL');
  rows.push('| ratio | value | target |', '| --- | ---: | --- |');
  rows.push(`| full copy / failback resync (of medians) | ${ratio.toFixed(1)}× | ≥ ${TARGET}×: ${verdict(ratio)} |`);
  rows.push(`| full copy / failback resync, paired per round: median (min–max) | ${pairedMed.toFixed(1)}× (${range(paired, (x) => x.toFixed(1))}) | ≥ ${TARGET}×: ${verdict(pairedMed)} |`);
  const shipOnly = med(col('fullCopyMs')) / med(col('shipMs'));
  rows.push(`| full copy / shipping only (session started → settled) | ${shipOnly.toFixed(1)}× | |`);
  rows.push('');
  rows.push('| data per round (median) | MiB | % of the volume |', '| --- | ---: | ---: |');
  const dl = (label, k) => rows.push(`| ${label} | ${mib(med(col(k)))} | ${((100 * med(col(k))) / VOLUME).toFixed(2)} |`);
  dl('A: dirty after the crash (recovered extents, its unconfirmed writes)', 'aRecoveredBytes');
  dl('B: out of sync before A returned (its writes since the promotion)', 'bOutOfSync');
  dl('shipped by B in the failback (bytesOnWire delta)', 'shipped');
  rows.push('');
  rows.push(`Images byte-identical after every round (cmp A.img B.img): ${rounds.every((r) => r.identical) ? 'yes' : 'NO'}; nbdcopy's copy identical to B's: ${rounds.every((r) => r.fullIdentical) ? 'yes' : 'NO'}.`);
  rows.push('', 'Per round (ms): ' + rounds.map((r) => `${r.round} (${r.order}): RTO ${r.rtoMs}, failback ${r.failbackMs}, full copy ${r.fullCopyMs}, shipped ${mib(r.shipped)} MiB`).join('; ') + '.');
  return { text: rows.join('\n'), ratio, pairedMed };
}

/**
 * The floor under the promote command and under A's return: a Node process, and the CLI's
 * own start (every module the sidecar and CLI load) printing its help.
 */
async function startFloor() {
  const nodeMs = [];
  const cliMs = [];
  for (let i = 0; i < Math.max(3, RUNS); i++) {
    let t = Date.now();
    await run(process.execPath, ['-e', '0']);
    nodeMs.push(Date.now() - t);
    t = Date.now();
    await run(process.execPath, [CLI, '--help']);
    cliMs.push(Date.now() - t);
  }
  return { nodeMs, cliMs };
}

async function main() {
  const floorBefore = await startFloor();
  const results = [];
  for (const mode of MODES) results.push(await benchMode(mode));
  const floorAfter = await startFloor();
  const floor = { nodeMs: [...floorBefore.nodeMs, ...floorAfter.nodeMs], cliMs: [...floorBefore.cliMs, ...floorAfter.cliMs] };
  const fioV = (await run('fio', ['--version'])).trim();
  const nbdcopyV = (await run('nbdcopy', ['--version'])).split('\n')[0];
  const qemuV = (await run('qemu-io', ['--version'])).split('\n')[0];
  const out = [];
  out.push(`## ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC: failback after a forced failover (bench/failback.sh)`, '');
  out.push(`- machine: ${cpus().length} cores (${cpus()[0]?.model.trim()}), ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Linux ${release()}`);
  out.push(`- software: node ${process.version}, ${fioV}, ${nbdcopyV}, ${qemuV}`);
  out.push(`- setup: two sidecars on 127.0.0.1 (plaintext peer link), files of ${VOLUME_MIB} MiB (A: ${FILL_PERCENT} % random data in 1 MiB regions spread over it), 64 KiB blocks;`);
  out.push(`  per round: ${A_EXTENTS} whole 4 MiB extent${A_EXTENTS === 1 ? '' : 's'} (${((100 * A_EXTENTS * EXTENT) / VOLUME).toFixed(2)} %) written on A through its export that B never confirms`);
  out.push(`  (sync: mirrored, but after kill -9 A's activity log counts the hot extents as unconfirmed; async: A's group interval`);
  out.push(`  is ${A_ASYNC_INTERVAL_MS / 1000} s and they are written right after a group was applied, so they are still in its recording bitmap),`);
  out.push(`  A's sidecar killed (kill -9), B promoted with \`--force\`,`);
  out.push(`  ${B_BLOCKS} random 64 KiB blocks (1 %) written on B by fio, then the failback (A restarted) and the full copy in an order`);
  out.push(`  alternating per round, A's and B's images compared, and a planned switchover home; ${RUNS} rounds per mode; medians;`);
  out.push(`  page cache synced${dropCaches ? ' and dropped' : ''} before the promotion and before each timed step; async: B's group interval ${B_ASYNC_INTERVAL_MS} ms`);
  out.push('');
  for (const r of results) out.push(modeReport(r).text, '');
  out.push('### Process start (the floor under the promote command and under A\'s return)', '');
  out.push('| measure | median (s) | min–max (s) | runs |', '| --- | ---: | ---: | ---: |');
  out.push(`| \`node -e 0\` | ${sec(med(floor.nodeMs))} | ${range(floor.nodeMs, sec)} | ${floor.nodeMs.length} |`);
  out.push(`| \`node dist/sidecar/cli/main.js --help\` (loading the CLI's modules) | ${sec(med(floor.cliMs))} | ${range(floor.cliMs, sec)} | ${floor.cliMs.length} |`);
  out.push('', '(measured before and after the modes, alternating)', '');
  if (CPU_PROF) {
    out.push('### CPU profiles of the shipping (node --cpu-prof: samples inside each session started → settled)', '');
    out.push("The profiler slows the sidecars. A's instance of a round is killed with -9 in the next one and writes no profile: only the last round of a mode has A's.", '');
    for (const w of profWindows) {
      for (const side of ['A', 'B']) {
        const r = spawnSync(process.execPath, [join(ROOT, 'bench', 'cpu-profile-summary.mjs'), '--top', '12', '--between', String(w.from), String(w.to), '--title', `${w.what}, sidecar ${side}`, join(CPU_PROF, side)], { encoding: 'utf8' });
        out.push((r.stdout || r.stderr).trimEnd(), '');
      }
    }
  }
  out.push('### Observations', '', notes.length ? notes.map((n) => `- ${n}`).join('\n') : 'none', '');
  out.push('Rerun: `bash bench/failback.sh --write-results` (env: BENCH_RUNS, BENCH_MODES, BENCH_VOLUME_MIB, BENCH_FILL_PERCENT, BENCH_DROP_CACHES, BENCH_CPU_PROF).');
  const report = out.join('\n');
  process.stdout.write('\n' + report + '\n');
  if (process.env.BENCH_WRITE_RESULTS === '1') {
    appendFileSync(join(ROOT, 'bench', 'RESULTS.md'), '\n' + report + '\n');
    log('appended to bench/RESULTS.md');
  }
}

function killAll() {
  for (const c of children) c.kill('SIGKILL');
}
process.once('SIGINT', () => {
  killAll();
  rmSync(work, { recursive: true, force: true });
  process.exit(130);
});
process.once('SIGTERM', () => {
  killAll();
  rmSync(work, { recursive: true, force: true });
  process.exit(143);
});

try {
  statSync(CLI);
  await main();
} catch (err) {
  log(`FAILED: ${err.stack ?? err}`);
  for (const f of readdirSync(work, { recursive: true }).filter((x) => String(x).endsWith('.log'))) {
    const lines = readFileSync(join(work, String(f)), 'utf8').trimEnd().split('\n');
    process.stderr.write(`\n--- last lines of ${f}\n${lines.slice(-15).join('\n')}\n`);
  }
  process.exitCode = 1;
} finally {
  killAll();
  // Give killed children a moment to exit before their files go.
  await sleep(200);
  rmSync(work, { recursive: true, force: true });
}
process.exit(process.exitCode ?? 0);
