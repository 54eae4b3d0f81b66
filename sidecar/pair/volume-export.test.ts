import { afterEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DirtyTracker } from '../bitmap/dirty-tracker.js';
import { ToolError } from '../host/run-tool.js';
import { runFallocate } from '../volume/range-zeroer.js';
import { Volume, type VolumeOptions } from '../volume/volume.js';
import type { Replicator, ReplicatorStatus } from '../replication/primary/replicator.js';
import { VolumeExport } from './volume-export.js';

const MiB = 1024 * 1024;
const dirs: string[] = [];
const volumes: Volume[] = [];
afterEach(async () => {
  for (const v of volumes.splice(0)) await v.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** A replication that records what it was asked to mirror (only its write-path hooks are used). */
class Recorder implements Replicator {
  readonly tracked: Array<[number, number]> = [];
  readonly mirrored: Array<{ offset: number; length: number; zero: boolean }> = [];
  beforeLocalWrite(): number {
    return 0;
  }
  afterLocalWrite(_t: number, offset: number, chunks: Buffer[] | null, length: number, _durable?: boolean): Promise<void> {
    this.mirrored.push({ offset, length, zero: chunks === null });
    return Promise.resolve();
  }
  flushBarrier(): Promise<void> {
    return Promise.resolve();
  }
  abandon(): void {}
  start(): void {}
  close(): void {}
  setPaused(): void {}
  peerSeen(): void {}
  shipEverything(): Promise<void> {
    return Promise.resolve();
  }
  status(): ReplicatorStatus {
    throw new Error('not used by the export');
  }
}

async function rig(bytes: number, opts: VolumeOptions = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'bm-export-'));
  dirs.push(dir);
  const path = join(dir, 'v.img');
  await writeFile(path, Buffer.alloc(bytes, 0xab));
  const calls: string[][] = [];
  const volume = await Volume.open(path, { fallocate: (args, fd) => (calls.push([...args]), runFallocate(args, fd)), ...opts });
  volumes.push(volume);
  const rec = new Recorder();
  const tracker = { beforeWrite: (offset: number, length: number) => void rec.tracked.push([offset, length]) } as unknown as DirtyTracker;
  const exp = new VolumeExport('t', volume, tracker);
  exp.attachReplication(rec);
  return { path, volume, exp, rec, calls };
}

const allocated = async (path: string): Promise<number> => (await stat(path)).blocks * 512;

describe('VolumeExport zeroes', () => {
  it('WRITE_ZEROES of a long run punches it without reading, tracked and replicated on a 32 MiB grid', async () => {
    const { path, exp, rec, calls } = await rig(80 * MiB);
    await exp.writeZeroes(8 * MiB, 64 * MiB, false);
    const data = await readFile(path);
    expect(data.subarray(8 * MiB, 72 * MiB).every((b) => b === 0)).toBe(true);
    expect(data[8 * MiB - 1]).toBe(0xab);
    expect(data[72 * MiB]).toBe(0xab);
    const runs = [
      { offset: 8 * MiB, length: 24 * MiB, zero: true },
      { offset: 32 * MiB, length: 32 * MiB, zero: true },
      { offset: 64 * MiB, length: 8 * MiB, zero: true },
    ];
    expect(rec.mirrored).toEqual(runs);
    expect(rec.tracked).toEqual(runs.map((r) => [r.offset, r.length]));
    expect(calls.every((c) => c[0] === '--punch-hole')).toBe(true);
    expect(await allocated(path)).toBeLessThanOrEqual(16 * MiB + 64 * 1024);
  });

  it('NO_HOLE zeroes without punching (fallocate --zero-range)', async () => {
    const { path, exp, calls } = await rig(8 * MiB);
    await exp.writeZeroes(0, 8 * MiB, false, true);
    expect((await readFile(path)).every((b) => b === 0)).toBe(true);
    expect(calls.map((c) => c[0])).toEqual(['--zero-range']);
  });

  it('short WRITE_ZEROES still skips chunks that read zero, so they are not dirtied', async () => {
    const { exp, rec, calls } = await rig(4 * MiB);
    await exp.writeZeroes(0, 512 * 1024, false);
    await exp.writeZeroes(0, 512 * 1024, false);
    expect(rec.mirrored).toEqual([{ offset: 0, length: 512 * 1024, zero: true }]);
    expect(calls).toEqual([]);
  });

  it('TRIM punches and replicates the aligned middle of a long range, and ignores a short one', async () => {
    const { path, exp, rec } = await rig(8 * MiB);
    await exp.trim(4096, 64 * 1024, false);
    expect(rec.mirrored).toEqual([]);
    expect((await readFile(path)).every((b) => b === 0xab)).toBe(true);
    await exp.trim(100, 6 * MiB, false);
    expect(rec.mirrored).toEqual([{ offset: 4096, length: 6 * MiB - 4096, zero: true }]);
    const data = await readFile(path);
    expect(data.subarray(4096, 6 * MiB).every((b) => b === 0)).toBe(true);
    expect(data.subarray(0, 4096).every((b) => b === 0xab)).toBe(true);
  });

  it('TRIM on a volume that cannot punch is ignored once that is known', async () => {
    const refuse = (args: readonly string[]): Promise<string> => Promise.reject(new ToolError('fallocate', args, 1, 'fallocate: fallocate failed: Operation not supported'));
    const { path, exp, rec } = await rig(8 * MiB, { fallocate: refuse });
    // The first finds out (and writes zeroes: the range was promised to the replication).
    await exp.trim(0, 4 * MiB, false);
    expect(rec.mirrored).toEqual([{ offset: 0, length: 4 * MiB, zero: true }]);
    await exp.trim(4 * MiB, 4 * MiB, false);
    expect(rec.mirrored).toHaveLength(1);
    expect((await readFile(path)).subarray(4 * MiB).every((b) => b === 0xab)).toBe(true);
  });
});

describe('VolumeExport FUA writes', () => {
  it('flush locally while the secondary makes the write durable, and complete only when both did', async () => {
    const { volume, exp, rec } = await rig(MiB);
    const events: string[] = [];
    let ack: () => void = () => undefined;
    rec.afterLocalWrite = (_t, offset, _chunks, length, durable) => {
      events.push(`mirror ${offset}+${length}${durable === true ? ' durable' : ''}`);
      return new Promise<void>((resolve) => (ack = resolve));
    };
    const flush = volume.flush.bind(volume);
    let flushed: Promise<void> | undefined;
    volume.flush = () => (events.push('local flush'), (flushed = flush()));
    let done = false;
    const written = exp.write(4096, [Buffer.alloc(4096, 1)], 4096, true).then(() => (done = true));
    // The local flush starts while the secondary's durable answer is still outstanding.
    for (let i = 0; i < 50 && flushed === undefined; i++) await new Promise((r) => setImmediate(r));
    expect(events).toEqual(['mirror 4096+4096 durable', 'local flush']);
    await flushed;
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    ack();
    await written;
    expect(done).toBe(true);
  });
});
