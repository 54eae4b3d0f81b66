import { describe, expect, it } from '@jest/globals';
import { frameChecksum, FrameBuilder, verifyFrame, type Frame } from './frame-builder.js';
import { extendsZeroFrame, isZeroFrame, joinZeroFrames, MAX_JOINED_ZERO_RUN } from './zero-frames.js';

const KiB = 1024;
const MiB = 1024 * KiB;

function zeroFrame(offset: number, length: number): Frame {
  const b = new FrameBuilder();
  b.add({ offset, length, zero: true });
  return b.takeOne();
}

describe('zero frames', () => {
  it('tells a frame of one zero run from one with data or several runs', () => {
    const data = new FrameBuilder();
    data.addBlock(0, Buffer.alloc(64 * KiB, 1));
    const gaps = new FrameBuilder();
    gaps.add({ offset: 0, length: 64 * KiB, zero: true });
    gaps.add({ offset: 128 * KiB, length: 64 * KiB, zero: true });
    expect(isZeroFrame(zeroFrame(0, 256 * KiB))).toBe(true);
    expect(isZeroFrame(data.takeOne())).toBe(false);
    expect(isZeroFrame(gaps.takeOne())).toBe(false);
  });

  it('joins adjacent zero frames into one zero run with its own checksum, up to MAX_JOINED_ZERO_RUN', () => {
    const a = zeroFrame(MiB, 256 * KiB);
    const b = zeroFrame(MiB + 256 * KiB, 256 * KiB);
    expect(extendsZeroFrame(a, b)).toBe(true);
    const j = joinZeroFrames(a, b);
    expect(j.runs).toEqual([{ offset: MiB, length: 512 * KiB, zero: true }]);
    expect(j.payload.length).toBe(0);
    expect(j.crc32c).toBe(frameChecksum(j.runs, j.payload));
    expect(() => verifyFrame(j, 2 * MiB)).not.toThrow();
    // A gap, or a run that would grow past the limit, is not joined.
    expect(extendsZeroFrame(a, zeroFrame(MiB + 512 * KiB, 256 * KiB))).toBe(false);
    expect(extendsZeroFrame(zeroFrame(0, MAX_JOINED_ZERO_RUN - 256 * KiB), zeroFrame(MAX_JOINED_ZERO_RUN - 256 * KiB, 256 * KiB))).toBe(true);
    expect(extendsZeroFrame(zeroFrame(0, MAX_JOINED_ZERO_RUN), zeroFrame(MAX_JOINED_ZERO_RUN, 256 * KiB))).toBe(false);
  });
});
