import { afterEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ToolError } from '../host/run-tool.js';
import { runFallocate } from './range-zeroer.js';
import { Volume } from './volume.js';

const MiB = 1024 * 1024;
const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function fullFile(bytes: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bm-volume-'));
  dirs.push(dir);
  const path = join(dir, 'v.img');
  await writeFile(path, Buffer.alloc(bytes, 0xab));
  return path;
}

const allocated = async (path: string): Promise<number> => (await stat(path)).blocks * 512;

describe('Volume.writeZeroes', () => {
  it('punches the aligned middle of a long run and writes the unaligned ends', async () => {
    const path = await fullFile(8 * MiB);
    const calls: string[][] = [];
    const v = await Volume.open(path, { fallocate: (args, fd) => (calls.push([...args]), runFallocate(args, fd)) });
    try {
      await v.writeZeroes(100, 6 * MiB);
      await v.flush();
    } finally {
      await v.close();
    }
    const data = await readFile(path);
    expect(data.subarray(0, 100).every((b) => b === 0xab)).toBe(true);
    expect(data.subarray(100, 100 + 6 * MiB).every((b) => b === 0)).toBe(true);
    expect(data.subarray(100 + 6 * MiB).every((b) => b === 0xab)).toBe(true);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toEqual(['--punch-hole', '--keep-size', '--offset', '4096', '--length', String(6 * MiB - 4096)]);
    // Only the 4 KiB blocks of the ends and the 2 MiB outside the run stay allocated.
    expect(await allocated(path)).toBeLessThanOrEqual(2 * MiB + 2 * 4096);
  });

  it('short runs are written as zeroes, without the tool', async () => {
    const path = await fullFile(2 * MiB);
    let calls = 0;
    const v = await Volume.open(path, { fallocate: () => (calls++, Promise.resolve('')) });
    try {
      await v.writeZeroes(4096, 512 * 1024);
    } finally {
      await v.close();
    }
    const data = await readFile(path);
    expect(data.subarray(4096, 4096 + 512 * 1024).every((b) => b === 0)).toBe(true);
    expect(calls).toBe(0);
  });

  it('a volume that cannot punch still reads back zeroes, and the tool is not tried again', async () => {
    const path = await fullFile(4 * MiB);
    let calls = 0;
    const warnings: string[] = [];
    const v = await Volume.open(path, {
      fallocate: (args) => (calls++, Promise.reject(new ToolError('fallocate', args, 1, 'fallocate: fallocate failed: Operation not supported'))),
      logger: { warn: (m) => warnings.push(m) },
    });
    try {
      await v.writeZeroes(0, 2 * MiB);
      await v.writeZeroes(2 * MiB, 2 * MiB);
      expect(v.fastZeroRange(0, 4 * MiB)).toBeNull();
    } finally {
      await v.close();
    }
    expect((await readFile(path)).every((b) => b === 0)).toBe(true);
    expect(calls).toBe(1);
    expect(warnings).toHaveLength(1);
  });

  it('without unmap: fallocate --zero-range (the data reads zero, blocks stay allocated)', async () => {
    const path = await fullFile(4 * MiB);
    const v = await Volume.open(path);
    try {
      await v.writeZeroes(0, 4 * MiB, { mayUnmap: false });
      await v.flush();
    } finally {
      await v.close();
    }
    expect((await readFile(path)).every((b) => b === 0)).toBe(true);
  });
});

describe('Volume.flush', () => {
  it('fails every flush after a failed fdatasync: the next one returning 0 would claim lost writes durable', async () => {
    const path = await fullFile(MiB);
    // A writeback error is reported to one fdatasync; the next one returns 0.
    let calls = 0;
    const v = await Volume.open(path, { fdatasync: () => (++calls === 2 ? Promise.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' })) : Promise.resolve()) });
    try {
      await v.write(0, Buffer.alloc(4096, 1));
      await v.flush();
      await v.write(4096, Buffer.alloc(4096, 2));
      await expect(v.flush()).rejects.toMatchObject({ code: 'VOLUME_IO' });
      await v.write(8192, Buffer.alloc(4096, 3));
      await expect(v.flush()).rejects.toThrow(/EIO/);
      expect(calls).toBe(2);
    } finally {
      await v.close();
    }
    // Opened again, it syncs again.
    const again = await Volume.open(path);
    await again.flush();
    await again.close();
  });
});
