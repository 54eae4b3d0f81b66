import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dirtyBlocksOnDisk } from './dirty-blocks-on-disk.js';
import { DirtyTracker } from './dirty-tracker.js';

const MiB = 1 << 20;

describe('dirtyBlocksOnDisk', () => {
  let dir = '';
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bm-dirty-disk-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it("counts a log's dirty blocks from its own header's geometry, and says nothing of a log it cannot read", async () => {
    const path = join(dir, 'dirty.log');
    const t = await DirtyTracker.open({ path, volumeBytes: 64 * MiB, blockSize: 65536, sweepIntervalMs: 0 });
    await t.beforeWrite(0, 4096);
    await t.beforeWrite(10 * MiB, 3 * 65536);
    await t.checkpoint();
    await t.close();
    expect(await dirtyBlocksOnDisk(path)).toBe(4);
    expect(await dirtyBlocksOnDisk(join(dir, 'missing.log'))).toBeUndefined();
    await writeFile(join(dir, 'garbage.log'), Buffer.alloc(8192, 0x5a));
    expect(await dirtyBlocksOnDisk(join(dir, 'garbage.log'))).toBeUndefined();
  });
});
