import { FrameBuilder, type Frame } from './frame-builder.js';

/**
 * All-zero frames in a row are joined into one zero run up to this: the secondary then
 * zeroes (punches) megabytes at once, where each 256 KiB run would cost it a tool run or
 * writing zeroes.
 */
export const MAX_JOINED_ZERO_RUN = 64 << 20;

/** A frame of one zero run and no payload. */
export function isZeroFrame(f: Frame): boolean {
  return f.runs.length === 1 && f.runs[0]!.zero;
}

/** `next` (all zero) follows `held` (all zero) directly, and the two fit in one zero run. */
export function extendsZeroFrame(held: Frame, next: Frame): boolean {
  const a = held.runs[0]!;
  const b = next.runs[0]!;
  return isZeroFrame(held) && isZeroFrame(next) && a.offset + a.length === b.offset && a.length + b.length <= MAX_JOINED_ZERO_RUN;
}

/** The zero runs of `held` and `next` (see extendsZeroFrame) as one frame of one zero run. */
export function joinZeroFrames(held: Frame, next: Frame): Frame {
  const builder = new FrameBuilder({ maxZeroRunBytes: MAX_JOINED_ZERO_RUN });
  for (const r of [...held.runs, ...next.runs]) builder.add({ offset: r.offset, length: r.length, zero: true });
  return builder.takeOne();
}
