import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirtyTracker } from './dirty-tracker.js';

const MiB = 1 << 20;
const BLOCK = 64 * 1024;

describe('DirtyTracker', () => {
  let dir: string;
  let path: string;
  const open: DirtyTracker[] = [];
  const openTracker = async (opts: Partial<Parameters<typeof DirtyTracker.open>[0]> = {}): Promise<DirtyTracker> => {
    const t = await DirtyTracker.open({ path, volumeBytes: 64 * MiB, blockSize: BLOCK, sweepIntervalMs: 0, retireAfterIdleSweeps: 1, ...opts });
    open.push(t);
    return t;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'bm-dirty-'));
    path = join(dir, 'pair', 'dirty.log');
  });

  afterEach(async () => {
    for (const t of open.splice(0)) await t.close().catch(() => undefined);
    chmodSync(dir, 0o755);
    rmSync(dir, { recursive: true, force: true });
  });

  it('waits for the intent record on a cold extent and not on a hot one', async () => {
    const t = await openTracker();
    const first = t.beforeWrite(0, 4096);
    expect(first).toBeInstanceOf(Promise);
    await first;
    expect(t.beforeWrite(8192, 4096)).toBeUndefined();
    // Another 4 MiB extent is cold again.
    expect(t.beforeWrite(4 * MiB, 4096)).toBeInstanceOf(Promise);
  });

  it('marks every block a write touches, partial ones included', async () => {
    const t = await openTracker();
    await t.beforeWrite(BLOCK - 100, 200);
    expect(t.dirtyBlocks).toBe(2);
    expect(t.isDirty(0)).toBe(true);
    expect(t.isDirty(1)).toBe(true);
    expect(t.dirtyBytes).toBe(2 * BLOCK);
    t.markClean(0);
    expect(t.dirtyBlocks).toBe(1);
  });

  it('after a crash every block written is still dirty (a superset)', async () => {
    const t = await openTracker();
    const written = [0, 5 * MiB + 10, 17 * MiB, 63 * MiB];
    for (const off of written) await t.beforeWrite(off, 4096);
    // "kill -9": the tracker is never closed; a new one reads what is on disk.
    const recovered = await openTracker();
    expect(recovered.recoveredExtents).toBe(4);
    for (const off of written) expect(recovered.isDirty(Math.floor(off / BLOCK))).toBe(true);
    // Whole 4 MiB extents count as dirty: a superset, 64 blocks each.
    expect(recovered.dirtyBlocks).toBe(4 * 64);
  });

  it('a graceful close persists exactly the fine bitmap', async () => {
    const t = await openTracker();
    await t.beforeWrite(0, 4096);
    await t.beforeWrite(9 * MiB, 3 * BLOCK);
    t.markClean(0);
    await t.close();
    const reopened = await openTracker();
    expect(reopened.recoveredExtents).toBe(0);
    expect(reopened.dirtyBlocks).toBe(3);
    expect(reopened.isDirty((9 * MiB) / BLOCK)).toBe(true);
    expect(reopened.isDirty(0)).toBe(false);
  });

  it('retiring extents keeps the fine bits durable before the intent goes', async () => {
    const t = await openTracker({ maxActiveExtents: 2 });
    for (let e = 0; e < 6; e++) await t.beforeWrite(e * 4 * MiB + e * BLOCK, 4096);
    // Retirement runs in the background: poll for it, with a deadline.
    const deadline = Date.now() + 10_000;
    while (t.activeExtents > 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(t.activeExtents).toBeLessThanOrEqual(2);
    const recovered = await openTracker({ maxActiveExtents: 2 });
    for (let e = 0; e < 6; e++) expect(recovered.isDirty((e * 4 * MiB) / BLOCK + e)).toBe(true);
    // Retired extents came back from the fine region, not as whole extents.
    expect(recovered.dirtyBlocks).toBeLessThan(6 * 64);
  });

  it('idle extents are retired by the sweep, so a later crash resyncs only what was written', async () => {
    const t = await openTracker();
    await t.beforeWrite(0, 4096);
    await t.sweep(); // first sweep: remembers the write counts
    await t.sweep(); // nothing written since: extent 0 retires
    expect(t.activeExtents).toBe(0);
    const recovered = await openTracker();
    expect(recovered.recoveredExtents).toBe(0);
    expect(recovered.dirtyBlocks).toBe(1);
  });

  it('an extent retires only after the configured number of idle sweeps; a write resets the count', async () => {
    const t = await openTracker({ retireAfterIdleSweeps: 3 });
    await t.beforeWrite(0, 4096);
    await t.sweep(); // remembers the write counts
    await t.sweep(); // idle 1
    await t.sweep(); // idle 2
    expect(t.activeExtents).toBe(1);
    await t.beforeWrite(BLOCK, 4096);
    await t.sweep(); // written since: count back to 0
    await t.sweep();
    await t.sweep();
    expect(t.activeExtents).toBe(1);
    await t.sweep(); // idle 3
    expect(t.activeExtents).toBe(0);
  });

  it('an extent written during retirement keeps its intent', async () => {
    const t = await openTracker();
    await t.beforeWrite(0, 4096);
    await t.sweep();
    const retiring = t.sweep();
    // Races with the sweep's fine-region write: must stay covered.
    const w = t.beforeWrite(2 * BLOCK, 4096);
    if (w) await w;
    await retiring;
    const recovered = await openTracker();
    expect(recovered.isDirty(2)).toBe(true);
  });

  it('refuses a different geometry and a corrupt header', async () => {
    const t = await openTracker();
    await t.close();
    await expect(DirtyTracker.open({ path, volumeBytes: 64 * MiB, blockSize: 4096, sweepIntervalMs: 0 })).rejects.toThrow(/blockSize/);
    await expect(DirtyTracker.open({ path, volumeBytes: 32 * MiB, blockSize: BLOCK, sweepIntervalMs: 0 })).rejects.toThrow(/volumeBytes/);
    writeFileSync(path, Buffer.alloc(8192, 1));
    await expect(DirtyTracker.open({ path, volumeBytes: 64 * MiB, blockSize: BLOCK, sweepIntervalMs: 0 })).rejects.toMatchObject({ code: 'STATE_CORRUPT' });
  });

  it('refuses invalid block sizes', async () => {
    await expect(DirtyTracker.open({ path, volumeBytes: MiB, blockSize: 3000 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('1 TiB at 64 KiB costs 2 MiB of bitmap', async () => {
    const t = await openTracker({ volumeBytes: 1024 * 1024 * MiB });
    expect(t.layout.fineBytes).toBe(2 * MiB);
    expect(t.layout.blocks).toBe(16 * MiB);
  });
});
