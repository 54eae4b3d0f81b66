import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateCorruptError } from '../errors.js';
import { CarriedWrites, MAX_CARRIED_RANGES, type ByteRanges } from './carried-writes.js';

const MiB = 1024 * 1024;
let dir = '';

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bm-carried-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('CarriedWrites', () => {
  it('joins what each unstaging adds, overlapping and touching ranges into one', async () => {
    const c = new CarriedWrites(dir);
    expect(await c.get('pv1', MiB)).toEqual([]);
    await c.add('pv1', [[4096, 4096], [0, 1024]], MiB);
    await c.add('pv1', [[1024, 4096], [8192, 0], [65536, 4096]], MiB);
    expect(await c.get('pv1', MiB)).toEqual([
      [0, 8192],
      [65536, 4096],
    ]);
    // Another volume's are its own.
    expect(await c.get('pv2', MiB)).toEqual([]);
    await c.drop('pv1');
    expect(await c.get('pv1', MiB)).toEqual([]);
  });

  it('writes no file for nothing, and clamps to the volume it is read for', async () => {
    const c = new CarriedWrites(dir);
    await c.add('pv1', [], MiB);
    await expect(readFile(join(dir, 'pv1.carried'))).rejects.toMatchObject({ code: 'ENOENT' });
    await c.add('pv1', [[MiB - 4096, 4096], [MiB, 8192]], 2 * MiB);
    // Shrunk since: only what is left of the volume.
    expect(await c.get('pv1', MiB)).toEqual([[MiB - 4096, 4096]]);
  });

  it('carries all of the volume rather than a list without bound', async () => {
    const c = new CarriedWrites(dir);
    const many: ByteRanges = Array.from({ length: MAX_CARRIED_RANGES + 1 }, (_, i) => [i * 8192, 4096]);
    await c.add('pv1', many, 64 * MiB);
    expect(await c.get('pv1', 64 * MiB)).toEqual([[0, 64 * MiB]]);
  });

  it('refuses a file it cannot read rather than take it for nothing written', async () => {
    await writeFile(join(dir, 'pv1.carried'), '{"volumeBytes":1,"ranges":[[0,-1]]}');
    await expect(new CarriedWrites(dir).get('pv1', MiB)).rejects.toBeInstanceOf(StateCorruptError);
  });
});
