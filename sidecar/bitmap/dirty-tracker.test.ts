import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
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

  it('refuses a different geometry', async () => {
    const t = await openTracker();
    await t.close();
    await expect(DirtyTracker.open({ path, volumeBytes: 64 * MiB, blockSize: 4096, sweepIntervalMs: 0 })).rejects.toThrow(/blockSize/);
    await expect(DirtyTracker.open({ path, volumeBytes: 32 * MiB, blockSize: BLOCK, sweepIntervalMs: 0 })).rejects.toMatchObject({ code: 'GEOMETRY_MISMATCH' });
    // Refused, not rewritten: the log is intact for the right configuration.
    expect((await openTracker()).damage).toEqual([]);
  });

  it('refuses invalid block sizes', async () => {
    await expect(DirtyTracker.open({ path, volumeBytes: MiB, blockSize: 3000 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('1 TiB at 64 KiB costs 2 MiB of bitmap, and 0.4% more on disk for the page checksums', async () => {
    const t = await openTracker({ volumeBytes: 1024 * 1024 * MiB });
    expect(t.layout.blocks).toBe(16 * MiB);
    expect(t.layout.fineBytes).toBeGreaterThan(2 * MiB);
    expect(t.layout.fineBytes).toBeLessThan(2 * MiB * 1.01);
  });

  describe('a damaged log gives a superset of the dirty blocks, never fewer', () => {
    // These use only the tracker and the regions' offsets, so they also run against the
    // version 1 format (no page checksums), where the first three lose dirty blocks.
    const PAGE = 4096;
    const SECTOR = 512;

    /** Clears the highest set bit of the page at `offset`: bit rot that loses a dirty bit. */
    function clearHighestBit(image: Buffer, offset: number): void {
      for (let i = offset + PAGE - 1; i >= offset; i--) {
        if (image[i] !== 0) {
          image[i]! &= ~(1 << (31 - Math.clz32(image[i]!)));
          return;
        }
      }
      throw new Error('no bit set in the page');
    }

    function expectSuperset(t: DirtyTracker, truth: number[]): void {
      expect(truth.filter((b) => !t.isDirty(b))).toEqual([]);
    }

    it('a fine page with a flipped bit: every block it covers is dirty', async () => {
      const t = await openTracker();
      const truth = [3, 500, 1023];
      for (const b of truth) await t.beforeWrite(b * BLOCK, 4096);
      await t.close(); // the fine region alone holds them
      const image = readFileSync(path);
      clearHighestBit(image, t.layout.fineOffset);
      writeFileSync(path, image);
      const r = await openTracker();
      expectSuperset(r, truth);
      expect(r.dirtyBlocks).toBe(1024);
      expect(r.damage).toMatchObject([{ region: 'fine', firstPage: 0, firstBlock: 0, lastBlock: 1023, reason: 'checksum mismatch' }]);
      expect(r.damage[0]!.message).toMatch(/dirty\.log: fine region page 0 .*failed its check \(checksum mismatch\); blocks 0-1023 \(volume bytes 0-67108863\) counted dirty/);
    });

    it('an intent page with a flipped bit after a crash: every extent it covers is dirty', async () => {
      const t = await openTracker();
      const truth = [2 * 64 + 1, 9 * 64 + 5]; // in extents 2 and 9, not yet in the fine region
      for (const b of truth) await t.beforeWrite(b * BLOCK, 4096);
      const image = readFileSync(path); // "kill -9": t never closes before this
      clearHighestBit(image, t.layout.intentOffset);
      writeFileSync(path, image);
      const r = await openTracker();
      expectSuperset(r, truth);
      expect(r.dirtyBlocks).toBe(1024);
      expect(r.damage).toMatchObject([{ region: 'intent', firstPage: 0, firstBlock: 0, lastBlock: 1023 }]);
      expect(r.damage[0]!.message).toMatch(/intent region page 0 .*extents 0-15, blocks 0-1023/);
      // The verified intent bits count as usual; the damaged page is not "recovered extents".
      expect(r.recoveredExtents).toBe(0);
    });

    it('a page written to the wrong place (the intent page over the fine page) is caught where it landed', async () => {
      const t = await openTracker();
      const truth = [40, 41, 700];
      for (const b of truth) await t.beforeWrite(b * BLOCK, 4096);
      await t.close();
      const image = readFileSync(path);
      image.copy(image, t.layout.fineOffset, t.layout.intentOffset, t.layout.intentOffset + PAGE);
      writeFileSync(path, image);
      const r = await openTracker();
      expectSuperset(r, truth);
      expect(r.dirtyBlocks).toBe(1024);
      expect(r.damage).toMatchObject([{ region: 'fine', reason: expect.stringMatching(/holds page 1 of the file \(a misdirected write\)/) }]);
    });

    it('a fine page torn by a power cut mid-write (half new, half old) counts as all ones', async () => {
      // 2 GiB: the fine page's bits span all eight sectors. Under version 1 a torn page
      // was already safe (each sector old or new, the intents still set); version 2
      // sees the tear and widens it to the page, which must cover both versions.
      const volumeBytes = 2048 * MiB;
      const t = await openTracker({ volumeBytes });
      await t.beforeWrite(10 * BLOCK, 4096);
      await t.beforeWrite(30000 * BLOCK, 4096);
      await t.sweep();
      await t.sweep(); // retired: the fine page holds {10, 30000}, no intents
      t.markClean(30000);
      await t.beforeWrite(20 * BLOCK, 4096);
      await t.beforeWrite(30005 * BLOCK, 4096);
      const before = readFileSync(path); // intents for extents 0 and 468 on disk
      await t.sweep();
      await t.sweep(); // the fine page rewritten as {10, 20, 30005}, then the intents cleared
      const after = readFileSync(path);
      // The power cut during that fine page write: its first four sectors landed.
      const torn = Buffer.from(before);
      after.copy(torn, t.layout.fineOffset, t.layout.fineOffset, t.layout.fineOffset + 4 * SECTOR);
      writeFileSync(path, torn);
      const r = await openTracker({ volumeBytes });
      expectSuperset(r, [10, 20, 30005]);
      for (let b = 0; b < 32640; b++) if (!r.isDirty(b)) throw new Error(`block ${b} of the torn page is clean`);
      expect(r.damage).toMatchObject([{ region: 'fine', firstPage: 0, lastPage: 0, firstBlock: 0, lastBlock: 32639 }]);
    });

    it('a damaged header: the file is kept aside and the log rebuilt with every block dirty', async () => {
      const t = await openTracker();
      await t.beforeWrite(7 * BLOCK, 4096);
      await t.close();
      const image = readFileSync(path);
      image[20]! ^= 0x01; // a bit of the volume size
      writeFileSync(path, image);
      const r = await openTracker();
      expect(r.isDirty(7)).toBe(true);
      expect(r.dirtyBlocks).toBe(1024);
      expect(r.damage).toMatchObject([{ region: 'header', reason: 'header checksum mismatch', firstBlock: 0, lastBlock: 1023 }]);
      expect(r.damage[0]!.message).toMatch(/header failed its check .*kept as .*dirty\.log\.corrupt-\d+; replaced by a new log with every block dirty/);
      const aside = readdirSync(join(dir, 'pair')).filter((f) => f.startsWith('dirty.log.corrupt-'));
      expect(aside).toHaveLength(1);
      expect(readFileSync(join(dir, 'pair', aside[0]!)).equals(image)).toBe(true);
      // The rebuilt log is durable and sound: all dirty again, no damage.
      await r.close();
      const again = await openTracker();
      expect(again.damage).toEqual([]);
      expect(again.dirtyBlocks).toBe(1024);
    });

    it('an empty or foreign file where the log should be: rebuilt with every block dirty', async () => {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, ''); // as a crash while creating a version 1 log could leave it
      const empty = await openTracker();
      expect(empty.dirtyBlocks).toBe(1024);
      expect(empty.damage).toMatchObject([{ region: 'header', reason: 'no dirty log magic' }]);
      await empty.close();
      writeFileSync(path, Buffer.alloc(8192, 1));
      expect((await openTracker()).dirtyBlocks).toBe(1024);
    });

    it('a truncated log: the missing pages count as all ones and are written back', async () => {
      const volumeBytes = 2048 * MiB; // two fine pages
      const t = await openTracker({ volumeBytes });
      await t.beforeWrite(32700 * BLOCK, 4096); // in the second fine page
      await t.close();
      truncateSync(path, t.layout.fileBytes - 100);
      const r = await openTracker({ volumeBytes });
      expect(r.isDirty(32700)).toBe(true);
      expect(r.dirtyBlocks).toBe(32768 - 32640);
      expect(r.damage).toMatchObject([{ region: 'fine', firstPage: 1, reason: 'missing (the file ends before it)', firstBlock: 32640, lastBlock: 32767 }]);
      expect(statSync(path).size).toBe(t.layout.fileBytes);
      await r.close();
      expect((await openTracker({ volumeBytes })).damage).toEqual([]);
    });

    it('a damaged page is rewritten sound by the recovery, so the next open finds none', async () => {
      const t = await openTracker();
      await t.beforeWrite(0, 4096);
      const image = readFileSync(path);
      image.fill(0, t.layout.intentOffset, t.layout.intentOffset + SECTOR);
      writeFileSync(path, image);
      const r = await openTracker();
      expect(r.damage).toHaveLength(1);
      expect(r.dirtyBlocks).toBe(1024);
      // Not closed: a second crash right after the recovery.
      const again = await openTracker();
      expect(again.damage).toEqual([]);
      expect(again.dirtyBlocks).toBe(1024);
    });
  });

  it('creates a log whose every page verifies', async () => {
    const t = await openTracker({ volumeBytes: 4096 * MiB });
    const image = readFileSync(path);
    expect(image.length).toBe(t.layout.fileBytes);
    // Any page zeroed now would be caught; a fresh log has none that fails.
    await t.close();
    expect((await openTracker({ volumeBytes: 4096 * MiB })).damage).toEqual([]);
    expect(image.subarray(t.layout.intentOffset + 4, t.layout.intentOffset + 8).toString('latin1')).toBe('BMPG');
  });
});
