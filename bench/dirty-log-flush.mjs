#!/usr/bin/env node
// Cost of one intent flush of the dirty log (sidecar/bitmap/, from dist/): the first
// write into a cold 4 MiB extent waits for its intent page to be written and
// fdatasync'd. Each round writes into a new cold extent and awaits the flush, one at a
// time, so every round is exactly one flush of one page. Reports wall time (dominated
// by fdatasync on the state disk) and this process's CPU time (the synchronous work:
// bitmap update, page encoding and checksum, the write call) per flush. Then the
// synchronous page preparation alone, in a loop: the copy of a page (version 1) or the
// copy and its crc32c seal (version 2).
// Usage: node bench/dirty-log-flush.mjs [DIR] [ROUNDS]   (DIR on the disk to measure; default a temp dir)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { DirtyTracker } = await import(join(ROOT, 'dist/sidecar/bitmap/dirty-tracker.js'));
const { BlockBitmap } = await import(join(ROOT, 'dist/sidecar/bitmap/block-bitmap.js'));
const format = await import(join(ROOT, 'dist/sidecar/bitmap/dirty-log-format.js'));

const MiB = 1 << 20;
const dir = mkdtempSync(join(process.argv[2] ?? tmpdir(), 'bm-flush-'));
const rounds = Number(process.argv[3] ?? 2000);
const extent = 4 * MiB;

try {
  const t = await DirtyTracker.open({ path: join(dir, 'dirty.log'), volumeBytes: (rounds + 100) * extent, blockSize: 64 * 1024, sweepIntervalMs: 0, maxActiveExtents: rounds + 100 });
  // Warm-up: the first flushes pay for the file's allocation and JIT.
  for (let e = 0; e < 100; e++) await t.beforeWrite((rounds + e) * extent, 4096);
  const wall = [];
  const cpu0 = process.cpuUsage();
  const start = process.hrtime.bigint();
  for (let e = 0; e < rounds; e++) {
    const t0 = process.hrtime.bigint();
    await t.beforeWrite(e * extent, 4096);
    wall.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  const elapsed = Number(process.hrtime.bigint() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await t.close();
  wall.sort((a, b) => a - b);
  const bitmap = new BlockBitmap(1 << 20);
  for (let b = 0; b < bitmap.bits; b += 7) bitmap.set(b);
  const prepare = format.encodeBitmapPage ? (p) => format.encodeBitmapPage(bitmap, p, p + 1) : (p) => bitmap.takePage(p);
  const loops = 200_000;
  const e0 = process.hrtime.bigint();
  for (let i = 0; i < loops; i++) prepare(i % bitmap.pageCount);
  const preparePageNs = Number(process.hrtime.bigint() - e0) / loops;
  const pct = (q) => wall[Math.min(wall.length - 1, Math.floor(q * wall.length))].toFixed(1);
  console.log(
    JSON.stringify({
      rounds,
      wallMeanUs: +(elapsed / rounds).toFixed(1),
      wallP50Us: +pct(0.5),
      wallP99Us: +pct(0.99),
      cpuPerFlushUs: +((cpu.user + cpu.system) / rounds).toFixed(1),
      cpuUserPerFlushUs: +(cpu.user / rounds).toFixed(1),
      preparePageNs: Math.round(preparePageNs),
      version: format.DIRTY_LOG_VERSION ?? 1,
    }),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
