import { describe, expect, it } from '@jest/globals';
import { crc32c } from '@node-rs/crc32';
import type { BlockFrame__Output } from '../../../proto/gen/blockmirror/replication/v1/BlockFrame.js';
import { BlockmirrorError, InvalidArgumentError } from '../../errors.js';
import { FrameBuilder, FrameCorruptError, frameRuns, verifyFrame, type Frame, type RunInput, type WireFrame, frameChecksum } from './frame-builder.js';
import { mulberry32 } from '../../../test/helpers/seeded-random.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** Deterministic bytes, different per offset, so misplaced data shows. */
/** Memory of its own: Buffer.alloc never takes from Buffer's shared pool (64 KiB on Node 24). */
function pattern(offset: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = ((offset + i) * 131 + ((offset + i) >>> 8)) & 0xff;
  return b;
}

/** True when the two buffers overlap in memory. */
function sharesMemory(x: Buffer, y: Buffer): boolean {
  return x.buffer === y.buffer && x.byteOffset < y.byteOffset + y.length && y.byteOffset < x.byteOffset + x.length;
}

function takeAll(builder: FrameBuilder): Frame[] {
  const out: Frame[] = [];
  for (let f = builder.take(); f !== null; f = builder.take()) out.push(f);
  return out;
}


function corruptCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    // Callers branch on BlockmirrorError codes.
    expect(err).toBeInstanceOf(FrameCorruptError);
    expect(err).toBeInstanceOf(BlockmirrorError);
    return (err as BlockmirrorError).code;
  }
  return undefined;
}

describe('FrameBuilder', () => {
  it('uses the crc32c (Castagnoli) polynomial', () => {
    // The standard check value of CRC-32C.
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  });

  it('packs one data run into one frame with its crc', () => {
    const b = new FrameBuilder();
    const data = pattern(0, 4096);
    b.add({ offset: 8192, data });
    expect(b.pendingBytes).toBe(4096);
    expect(b.isEmpty).toBe(false);
    expect(b.fullFrames).toBe(0);
    const f = b.take()!;
    expect(f.runs).toEqual([{ offset: 8192, length: 4096, zero: false }]);
    expect(f.payload.equals(data)).toBe(true);
    expect(f.crc32c).toBe(frameChecksum(f.runs, data));
    expect(b.take()).toBeNull();
    expect(b.isEmpty).toBe(true);
    expect(b.pendingBytes).toBe(0);
  });

  it('returns null from an empty builder and ignores empty runs', () => {
    const b = new FrameBuilder();
    expect(b.take()).toBeNull();
    expect(b.takeFull()).toBeNull();
    b.add({ offset: 0, data: Buffer.alloc(0) });
    b.add({ offset: 0, data: [] });
    b.add({ offset: 0, length: 0, zero: true });
    expect(b.isEmpty).toBe(true);
    expect(b.take()).toBeNull();
  });

  it('merges adjacent runs of the same kind, and only those', () => {
    const b = new FrameBuilder();
    b.add({ offset: 0, data: pattern(0, 4096) });
    b.add({ offset: 4096, data: [pattern(4096, 100), pattern(4196, 3996)] });
    b.add({ offset: 8192, length: 8192, zero: true });
    b.add({ offset: 16384, length: 4096, zero: true });
    b.add({ offset: 20480, data: pattern(20480, 4096) });
    // A gap: a new run.
    b.add({ offset: 65536, data: pattern(65536, 4096) });
    // Backwards (a later write to an earlier place): a new run, kept in order.
    b.add({ offset: 0, data: pattern(1, 10) });
    const f = b.take()!;
    expect(f.runs).toEqual([
      { offset: 0, length: 8192, zero: false },
      { offset: 8192, length: 12288, zero: true },
      { offset: 20480, length: 4096, zero: false },
      { offset: 65536, length: 4096, zero: false },
      { offset: 0, length: 10, zero: false },
    ]);
    expect(f.payload.equals(Buffer.concat([pattern(0, 8192), pattern(20480, 4096), pattern(65536, 4096), pattern(1, 10)]))).toBe(true);
    expect(b.take()).toBeNull();
  });

  it('sends no payload for zero runs', () => {
    const b = new FrameBuilder();
    b.add({ offset: 0, length: 1 * GiB, zero: true });
    expect(b.pendingBytes).toBe(0);
    const f = b.take()!;
    expect(f.runs).toEqual([{ offset: 0, length: GiB, zero: true }]);
    expect(f.payload.length).toBe(0);
    expect(f.crc32c).toBe(frameChecksum(f.runs, f.payload));
  });

  it('splits a run larger than the maximum across frames, at the payload limit', () => {
    const b = new FrameBuilder();
    const data = pattern(1 * MiB, 600 * KiB);
    b.add({ offset: 1 * MiB, data });
    expect(b.fullFrames).toBe(2);
    const full1 = b.takeFull()!;
    const full2 = b.takeFull()!;
    // The rest is a partial frame: only take() flushes it.
    expect(b.takeFull()).toBeNull();
    const rest = b.take()!;
    expect([full1, full2, rest].map((f) => f.runs)).toEqual([
      [{ offset: 1 * MiB, length: 256 * KiB, zero: false }],
      [{ offset: 1 * MiB + 256 * KiB, length: 256 * KiB, zero: false }],
      [{ offset: 1 * MiB + 512 * KiB, length: 88 * KiB, zero: false }],
    ]);
    expect(Buffer.concat([full1.payload, full2.payload, rest.payload]).equals(data)).toBe(true);
    for (const f of [full1, full2, rest]) expect(f.crc32c).toBe(frameChecksum(f.runs, f.payload));
  });

  it('fills the space left in a partly used frame before splitting', () => {
    const b = new FrameBuilder({ maxPayloadBytes: 64 * KiB });
    b.add({ offset: 0, data: pattern(0, 60 * KiB) });
    b.add({ offset: 1 * MiB, data: [pattern(1 * MiB, 3 * KiB), pattern(1 * MiB + 3 * KiB, 5 * KiB)] });
    const frames = takeAll(b);
    expect(frames.map((f) => f.runs)).toEqual([
      [
        { offset: 0, length: 60 * KiB, zero: false },
        { offset: 1 * MiB, length: 4 * KiB, zero: false },
      ],
      [{ offset: 1 * MiB + 4 * KiB, length: 4 * KiB, zero: false }],
    ]);
    expect(frames[0]!.payload.equals(Buffer.concat([pattern(0, 60 * KiB), pattern(1 * MiB, 4 * KiB)]))).toBe(true);
    expect(frames[1]!.payload.equals(pattern(1 * MiB + 4 * KiB, 4 * KiB))).toBe(true);
  });

  it('lets zero runs join a frame whose payload is full', () => {
    const b = new FrameBuilder({ maxPayloadBytes: 4096 });
    b.add({ offset: 0, data: pattern(0, 4096) });
    b.add({ offset: 4096, length: 4096, zero: true });
    expect(b.fullFrames).toBe(1);
    expect(b.takeFull()!.runs).toEqual([
      { offset: 0, length: 4096, zero: false },
      { offset: 4096, length: 4096, zero: true },
    ]);
    expect(b.isEmpty).toBe(true);
  });

  it('starts a new frame when the run list is full', () => {
    const b = new FrameBuilder({ maxRuns: 3 });
    for (let i = 0; i < 7; i++) {
      if (i % 2 === 0) b.add({ offset: i * 8192, data: pattern(i * 8192, 512) });
      else b.add({ offset: i * 8192, length: 4096, zero: true });
    }
    expect(b.fullFrames).toBe(2);
    const frames = takeAll(b);
    expect(frames.map((f) => f.runs.length)).toEqual([3, 3, 1]);
    expect(frames.map((f) => f.payload.length)).toEqual([1024, 512, 512]);
    // A merge needs no new run, so it still fits a full run list.
    const m = new FrameBuilder({ maxRuns: 1 });
    m.add({ offset: 0, data: pattern(0, 100) });
    m.add({ offset: 100, data: pattern(100, 100) });
    m.add({ offset: 200, length: 100, zero: true });
    expect(takeAll(m).map((f) => f.runs)).toEqual([[{ offset: 0, length: 200, zero: false }], [{ offset: 200, length: 100, zero: true }]]);
  });

  it('splits zero runs longer than a BlockRun length can hold', () => {
    const b = new FrameBuilder();
    b.add({ offset: 4096, length: 5 * GiB + 4096, zero: true });
    const f = b.take()!;
    expect(f.runs.map((r) => r.length)).toEqual([GiB, GiB, GiB, GiB, GiB, 4096]);
    expect(f.runs.every((r, i) => r.zero && r.offset === 4096 + i * GiB)).toBe(true);
    for (const r of f.runs) expect(r.length).toBeLessThanOrEqual(0xffffffff);

    // Extending a zero run stops at the limit and goes on in a new run.
    const s = new FrameBuilder({ maxZeroRunBytes: 10_000 });
    s.add({ offset: 0, length: 7000, zero: true });
    s.add({ offset: 7000, length: 7000, zero: true });
    expect(s.take()!.runs).toEqual([
      { offset: 0, length: 10_000, zero: true },
      { offset: 10_000, length: 4000, zero: true },
    ]);
  });

  it('copies the data once, when the frame is taken', () => {
    const b = new FrameBuilder();
    const data = pattern(0, 4096);
    b.add({ offset: 0, data });
    const f = b.take()!;
    expect(f.payload).not.toBe(data);
    data.fill(0);
    expect(f.payload.equals(pattern(0, 4096))).toBe(true);
  });

  it('with ownsData, sends adjacent pieces of one buffer as they are, and copies anything else', () => {
    const read = pattern(0, 64 * 1024);
    const owned = new FrameBuilder({ ownsData: true });
    // A read of four adjacent blocks, added block by block: its payload is that read.
    for (let at = 0; at < read.length; at += 16 * 1024) owned.addBlock(at, read.subarray(at, at + 16 * 1024));
    const f = owned.takeOne();
    expect(f.payload.buffer).toBe(read.buffer);
    expect(f.payload.byteOffset).toBe(read.byteOffset);
    expect(f.payload.equals(read)).toBe(true);
    expect(f.crc32c).toBe(frameChecksum(f.runs, read));
    // Two separate buffers, pieces of one buffer with a gap, or pieces out of order: one
    // copy, as without the option. (pattern's buffers are never neighbours in a pool,
    // where two allocations in a row may be adjacent and then rightly sent as one view.)
    const a = pattern(1, 16 * 1024);
    const c = pattern(2, 16 * 1024);
    owned.add({ offset: 0, data: [a, c] });
    const g = owned.takeOne();
    expect(sharesMemory(g.payload, a) || sharesMemory(g.payload, c)).toBe(false);
    expect(g.payload.equals(Buffer.concat([a, c]))).toBe(true);
    const gapped = pattern(4, 48 * 1024);
    owned.add({ offset: 0, data: [gapped.subarray(0, 16 * 1024), gapped.subarray(32 * 1024)] });
    const k = owned.takeOne();
    expect(sharesMemory(k.payload, gapped)).toBe(false);
    expect(k.payload.equals(Buffer.concat([gapped.subarray(0, 16 * 1024), gapped.subarray(32 * 1024)]))).toBe(true);
    const swapped = pattern(3, 32 * 1024);
    owned.add({ offset: 0, data: [swapped.subarray(16 * 1024), swapped.subarray(0, 16 * 1024)] });
    const h = owned.takeOne();
    expect(sharesMemory(h.payload, swapped)).toBe(false);
    // Without the option, adjacent pieces are copied too.
    const plain = new FrameBuilder();
    plain.add({ offset: 0, data: [read.subarray(0, 4096), read.subarray(4096, 8192)] });
    expect(sharesMemory(plain.takeOne().payload, read)).toBe(false);
  });

  it('refuses bad runs and options', () => {
    const b = new FrameBuilder();
    const bad: RunInput[] = [
      { offset: -1, data: Buffer.alloc(1) },
      { offset: 0.5, data: Buffer.alloc(1) },
      { offset: Number.NaN, length: 1, zero: true },
      { offset: 0, length: -1, zero: true },
      { offset: 0, length: 1.5, zero: true },
      { offset: Number.MAX_SAFE_INTEGER, length: 1, zero: true },
    ];
    for (const run of bad) expect(() => b.add(run)).toThrow(InvalidArgumentError);
    expect(b.isEmpty).toBe(true);
    expect(() => new FrameBuilder({ maxPayloadBytes: 0 })).toThrow(InvalidArgumentError);
    expect(() => new FrameBuilder({ maxPayloadBytes: 64 * MiB })).toThrow(InvalidArgumentError);
    expect(() => new FrameBuilder({ maxRuns: 0 })).toThrow(InvalidArgumentError);
    expect(() => new FrameBuilder({ maxZeroRunBytes: 2 ** 32 })).toThrow(InvalidArgumentError);
  });

  it('sends blocks read as all zero as zero runs, merged with their neighbours', () => {
    const b = new FrameBuilder({ maxPayloadBytes: 2 * MiB });
    const data = pattern(8 * KiB, 4 * KiB);
    b.addBlock(0, Buffer.alloc(4 * KiB));
    b.addBlock(4 * KiB, Buffer.alloc(4 * KiB));
    b.addBlock(8 * KiB, data);
    // Longer than any buffer the zero test compares with at once.
    b.addBlock(MiB, Buffer.alloc(2 * MiB));
    const f = b.takeOne();
    expect(f.runs).toEqual([
      { offset: 0, length: 8 * KiB, zero: true },
      { offset: 8 * KiB, length: 4 * KiB, zero: false },
      { offset: MiB, length: 2 * MiB, zero: true },
    ]);
    expect(f.payload).toEqual(data);
    expect(f.crc32c).toBe(frameChecksum(f.runs, f.payload));
    const late = Buffer.alloc(2 * MiB);
    late[2 * MiB - 1] = 1;
    b.addBlock(0, late);
    expect(b.takeOne().runs).toEqual([{ offset: 0, length: 2 * MiB, zero: false }]);
  });

  it('takes everything as one frame only when it fits one', () => {
    const b = new FrameBuilder({ maxPayloadBytes: 8 * KiB });
    expect(() => b.takeOne()).toThrow(InvalidArgumentError);
    b.add({ offset: 0, data: pattern(0, 8 * KiB) });
    expect(b.takeOne().payload).toEqual(pattern(0, 8 * KiB));
    b.add({ offset: 0, data: pattern(0, 12 * KiB) });
    expect(() => b.takeOne()).toThrow(InvalidArgumentError);
    // Nothing was taken: the frames are all still there.
    expect(takeAll(b).map((f) => f.payload.length)).toEqual([8 * KiB, 4 * KiB]);
  });

  it('round-trips random runs through frames and the decoder', () => {
    const volumeBytes = 8 * MiB;
    for (const seed of [1, 2, 3, 4, 5]) {
      const random = mulberry32(seed);
      const maxPayloadBytes = [4096, 65536, 256 * KiB][seed % 3]!;
      const b = new FrameBuilder({ maxPayloadBytes, maxRuns: 2 + Math.floor(random() * 40) });
      const expected = Buffer.alloc(volumeBytes, 0xee);
      const actual = Buffer.alloc(volumeBytes, 0xee);
      let cursor = 0;
      const frames: Frame[] = [];
      for (let i = 0; i < 400; i++) {
        // Mostly sequential (as a resync walks the bitmap), sometimes anywhere.
        const offset = random() < 0.7 && cursor + 300 * KiB <= volumeBytes ? cursor : Math.floor(random() * (volumeBytes - 300 * KiB));
        const length = 1 + Math.floor(random() * (random() < 0.1 ? 300 * KiB : 16 * KiB));
        if (random() < 0.3) {
          b.add({ offset, length, zero: true });
          expected.fill(0, offset, offset + length);
        } else {
          const data = pattern(offset * 7 + i, length);
          const pieces = random() < 0.5 ? data : [data.subarray(0, length >> 1), data.subarray(length >> 1)];
          b.add({ offset, data: pieces });
          data.copy(expected, offset);
        }
        cursor = offset + length;
        for (let f = b.takeFull(); f !== null; f = b.takeFull()) frames.push(f);
      }
      frames.push(...takeAll(b));
      for (const f of frames) {
        expect(f.payload.length).toBeLessThanOrEqual(maxPayloadBytes);
        for (const r of frameRuns(f, volumeBytes)) {
          if (r.zero) actual.fill(0, r.offset, r.offset + r.length);
          else r.data.copy(actual, r.offset);
        }
      }
      expect(actual.equals(expected)).toBe(true);
    }
  });
});

describe('frameRuns and verifyFrame', () => {
  function sample(): Frame {
    const b = new FrameBuilder();
    b.add({ offset: 0, data: pattern(0, 1000) });
    b.add({ offset: 1000, length: 3000, zero: true });
    b.add({ offset: 8192, data: pattern(8192, 500) });
    return b.take()!;
  }

  it('decodes data runs as views of the payload and zero runs without data', () => {
    const f = sample();
    const runs = frameRuns(f, 16384);
    expect(runs).toHaveLength(3);
    const [a, z, c] = runs;
    expect(a).toMatchObject({ offset: 0, length: 1000, zero: false });
    expect(z).toEqual({ offset: 1000, length: 3000, zero: true });
    expect(c).toMatchObject({ offset: 8192, length: 500, zero: false });
    expect(a!.data!.equals(pattern(0, 1000))).toBe(true);
    expect(c!.data!.equals(pattern(8192, 500))).toBe(true);
    expect(a!.data!.buffer).toBe(f.payload.buffer);
  });

  it('accepts a frame as grpc decodes it', () => {
    const f = sample();
    const wire: BlockFrame__Output = { sessionId: 's', sequence: 7, runs: f.runs, payload: f.payload, crc32c: f.crc32c, durable: false, group: 0 };
    expect(() => verifyFrame(wire, 16384)).not.toThrow();
    expect(frameRuns(wire, 16384)).toHaveLength(3);
  });

  it('accepts a run ending exactly at the end of the volume, and an empty frame', () => {
    const f = sample();
    expect(() => verifyFrame(f, 8192 + 500)).not.toThrow();
    expect(frameRuns({ runs: [], payload: Buffer.alloc(0), crc32c: 0 }, 0)).toEqual([]);
  });

  it('refuses a payload that does not match its crc', () => {
    const f = sample();
    const flipped = Buffer.from(f.payload);
    flipped[700]! ^= 0x01;
    expect(corruptCode(() => frameRuns({ ...f, payload: flipped }, 16384))).toBe('FRAME_CORRUPT');
    expect(corruptCode(() => verifyFrame({ ...f, crc32c: (f.crc32c + 1) >>> 0 }, 16384))).toBe('FRAME_CORRUPT');
  });

  it('refuses runs that do not add up to the payload', () => {
    const f = sample();
    const longer = Buffer.concat([f.payload, Buffer.alloc(1)]);
    const shorter = f.payload.subarray(0, f.payload.length - 1);
    expect(corruptCode(() => frameRuns({ ...f, payload: longer, crc32c: crc32c(longer) }, 16384))).toBe('FRAME_CORRUPT');
    expect(corruptCode(() => frameRuns({ ...f, payload: shorter, crc32c: crc32c(shorter) }, 16384))).toBe('FRAME_CORRUPT');
    // A zero run turned into a data run claims payload it does not have.
    const runs = f.runs.map((r) => ({ ...r, zero: false }));
    expect(corruptCode(() => frameRuns({ ...f, runs }, 16384))).toBe('FRAME_CORRUPT');
  });

  it('refuses runs outside the volume or malformed', () => {
    const f = sample();
    expect(corruptCode(() => frameRuns(f, 8192 + 499))).toBe('FRAME_CORRUPT');
    const zeroAt = (offset: number, length: number): WireFrame => ({ runs: [{ offset, length, zero: true }], payload: Buffer.alloc(0), crc32c: 0 });
    for (const [offset, length] of [
      [-1, 10],
      [0.5, 10],
      [0, 0],
      [0, 1.5],
      [0, 2 ** 32],
      [2 ** 53, 1],
      [16384, 1],
    ] as const) {
      expect(corruptCode(() => verifyFrame(zeroAt(offset, length), 16384))).toBe('FRAME_CORRUPT');
    }
    expect(() => verifyFrame(zeroAt(0, 1), -1)).toThrow(InvalidArgumentError);
  });

  it('returns nothing from a frame whose last run is bad', () => {
    const f = sample();
    const runs = [...f.runs, { offset: 1 << 30, length: 4096, zero: true }];
    let out: unknown;
    expect(() => (out = frameRuns({ ...f, runs }, 16384))).toThrow(FrameCorruptError);
    expect(out).toBeUndefined();
  });

  it('covers the run headers: a flipped offset bit is refused even with an intact payload', () => {
    const b = new FrameBuilder();
    b.add({ offset: 65536, data: Buffer.alloc(4096, 3) });
    const f = b.take()!;
    const moved = { ...f, runs: [{ ...f.runs[0]!, offset: f.runs[0]!.offset + 128 }] };
    expect(() => verifyFrame(moved, 1 << 20)).toThrow(/crc32c/);
  });
});
