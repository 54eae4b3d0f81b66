import { describe, expect, it } from '@jest/globals';
import { ToolError } from '../host/run-tool.js';
import { RangeZeroer, type RangeZeroerOptions } from './range-zeroer.js';

const MiB = 1024 * 1024;

/** A fake fallocate: records its calls and answers each with the next scripted outcome. */
function fake(outcomes: Array<'ok' | ToolError> = []) {
  const calls: string[][] = [];
  const warnings: string[] = [];
  let writeBacks = 0;
  const opts: RangeZeroerOptions = {
    fd: 7,
    isBlockDevice: false,
    blockSize: 4096,
    run: (args, fd) => {
      calls.push([...args, `fd ${fd}`]);
      const next = outcomes.shift() ?? 'ok';
      return next === 'ok' ? Promise.resolve('') : Promise.reject(next);
    },
    writeBack: () => {
      writeBacks++;
      return Promise.resolve();
    },
    logger: { warn: (m) => warnings.push(m) },
  };
  return { opts, calls, warnings, writeBacks: () => writeBacks };
}

const failed = (stderr: string, exitCode = 1): ToolError => new ToolError('fallocate', [], exitCode, stderr);

describe('RangeZeroer', () => {
  it('hands the tool only the block-aligned middle of runs of at least the threshold', () => {
    const { opts } = fake();
    const z = new RangeZeroer('/v', opts);
    expect(z.middle(0, MiB - 1, 'punch')).toBeNull();
    expect(z.middle(0, MiB, 'punch')).toEqual({ offset: 0, length: MiB });
    // Unaligned ends are cut off: 100 bytes in, the middle starts at the next 4 KiB.
    expect(z.middle(100, 2 * MiB, 'punch')).toEqual({ offset: 4096, length: 2 * MiB - 4096 });
    // Long enough before alignment, too short after it.
    expect(z.middle(100, MiB + 100, 'punch')).toBeNull();
    expect(new RangeZeroer('/v', { ...opts, minBytes: 64 * 1024 }).middle(8192, 64 * 1024, 'zero-range')).toEqual({ offset: 8192, length: 64 * 1024 });
  });

  it('aligns to the filesystem block size when it is a sane power of two, else to 4 KiB', () => {
    const { opts } = fake();
    expect(new RangeZeroer('/v', { ...opts, blockSize: 64 * 1024 }).middle(4096, 2 * MiB, 'punch')).toEqual({ offset: 64 * 1024, length: 2 * MiB - 64 * 1024 });
    // A loop device reports 512: still 4 KiB, a multiple of every logical block size.
    expect(new RangeZeroer('/v', { ...opts, blockSize: 512 }).middle(512, 2 * MiB, 'punch')).toEqual({ offset: 4096, length: 2 * MiB - 4096 });
    expect(new RangeZeroer('/v', { ...opts, blockSize: 3000 }).middle(512, 2 * MiB, 'punch')).toEqual({ offset: 4096, length: 2 * MiB - 4096 });
  });

  it('runs fallocate --punch-hole or --zero-range on the volume\'s descriptor, keeping the size', async () => {
    const { opts, calls } = fake();
    const z = new RangeZeroer('/vol/a.img', opts);
    await expect(z.zero(4096, MiB, 'punch')).resolves.toBe(true);
    await expect(z.zero(0, MiB, 'zero-range')).resolves.toBe(true);
    expect(calls).toEqual([
      ['--punch-hole', '--keep-size', '--offset', '4096', '--length', String(MiB), 'fd 7'],
      ['--zero-range', '--keep-size', '--offset', '0', '--length', String(MiB), 'fd 7'],
    ]);
  });

  it('a mode the volume refuses is remembered and logged once; the other mode is still tried', async () => {
    const { opts, calls, warnings } = fake([failed('fallocate: fallocate failed: keep size mode is unsupported')]);
    const z = new RangeZeroer('/v', opts);
    await expect(z.zero(0, MiB, 'zero-range')).resolves.toBe(false);
    await expect(z.zero(0, MiB, 'zero-range')).resolves.toBe(false);
    expect(z.middle(0, MiB, 'zero-range')).toBeNull();
    expect(calls).toHaveLength(1);
    expect(warnings).toHaveLength(1);
    expect(z.middle(0, MiB, 'punch')).not.toBeNull();
    await expect(z.zero(0, MiB, 'punch')).resolves.toBe(true);
  });

  it('no fallocate at all: both modes are given up after one try', async () => {
    const notFound = new ToolError('fallocate', [], undefined, '', Object.assign(new Error('spawn fallocate ENOENT'), { code: 'ENOENT' }));
    const { opts, calls, warnings } = fake([notFound]);
    const z = new RangeZeroer('/v', opts);
    await expect(z.zero(0, MiB, 'punch')).resolves.toBe(false);
    expect(z.middle(0, 4 * MiB, 'punch')).toBeNull();
    expect(z.middle(0, 4 * MiB, 'zero-range')).toBeNull();
    expect(calls).toHaveLength(1);
    expect(warnings).toHaveLength(1);
  });

  it('another failure falls back for that run only', async () => {
    const { opts, warnings } = fake([failed('fallocate: fallocate failed: Input/output error'), new ToolError('fallocate', [], undefined, '', new Error('killed by SIGKILL'))]);
    const z = new RangeZeroer('/v', opts);
    await expect(z.zero(0, MiB, 'punch')).resolves.toBe(false);
    // Killed (a timeout) is not "not installed".
    await expect(z.zero(0, MiB, 'punch')).resolves.toBe(false);
    await expect(z.zero(0, MiB, 'punch')).resolves.toBe(true);
    expect(warnings).toHaveLength(2);
  });

  it('a block device busy with dirty pages in the range is written back, then zeroed', async () => {
    const f = fake([failed('fallocate: fallocate failed: Device or resource busy')]);
    const z = new RangeZeroer('/dev/x', { ...f.opts, isBlockDevice: true });
    await expect(z.zero(0, MiB, 'punch')).resolves.toBe(true);
    expect(f.calls).toHaveLength(2);
    expect(f.writeBacks()).toBe(1);
    expect(f.warnings).toEqual([]);
  });
});
