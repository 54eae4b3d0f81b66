import { crc32c } from '@node-rs/crc32';
import { InvalidArgumentError } from '../../errors.js';
import { FrameCorruptError } from './frame-corrupt-error.js';

export { FrameCorruptError } from './frame-corrupt-error.js';

/** grpc-js moves a few large messages far faster than many small ones. */
export const DEFAULT_MAX_FRAME_PAYLOAD = 256 * 1024;
/** Bounds the size of a frame's run list, which zero runs would otherwise let grow unbounded. */
export const DEFAULT_MAX_FRAME_RUNS = 1024;
/** Longer zero runs are split: BlockRun.length is a uint32. A power of two keeps the pieces block-aligned. */
export const DEFAULT_MAX_ZERO_RUN = 1024 ** 3;
/** Largest payload a frame may be configured for: well below grpc-js's 4 MiB default message limit. */
export const MAX_FRAME_PAYLOAD_LIMIT = 2 * 1024 * 1024;
const UINT32_MAX = 0xffffffff;
const ZEROES = Buffer.alloc(1 << 20);

/** Data to ship at `offset`: one buffer, or several that follow each other in the volume. */
export interface DataRunInput {
  offset: number;
  data: Buffer | readonly Buffer[];
  zero?: false;
}

/** `length` bytes of zeroes at `offset`: described in the frame, never sent as payload. */
export interface ZeroRunInput {
  offset: number;
  length: number;
  zero: true;
}

export type RunInput = DataRunInput | ZeroRunInput;

/** One run of a frame; the shape of the proto's BlockRun. */
export interface FrameRun {
  offset: number;
  length: number;
  zero: boolean;
}

/** A frame ready to send; the sender adds the session id and sequence number. */
export interface Frame {
  runs: FrameRun[];
  /** The data of the non-zero runs, concatenated in run order. */
  payload: Buffer;
  crc32c: number;
}

export interface FrameBuilderOptions {
  /** Default 256 KiB, at most 2 MiB. */
  maxPayloadBytes?: number;
  /** Default 1024. */
  maxRuns?: number;
  /** Default 1 GiB, at most 2^32 - 1. */
  maxZeroRunBytes?: number;
  /**
   * The data buffers are handed over for good, never modified again: a frame whose data
   * are adjacent pieces of one buffer (a read of adjacent blocks) takes them as its
   * payload without a copy. Default false: the payload is a copy, and the caller may
   * reuse its buffers once the frame is taken (the NBD slabs are).
   */
  ownsData?: boolean;
}

interface PendingFrame {
  runs: FrameRun[];
  chunks: Buffer[];
  bytes: number;
}

/**
 * Packs block runs into frames of at most `maxPayloadBytes` of payload. Adjacent runs of
 * the same kind merge into one; a run longer than the space left is split across frames.
 *
 * Data buffers are referenced, not copied, until their frame is taken (one
 * Buffer.concat per frame, or none with `ownsData`): do not modify or recycle them
 * before that.
 */
export class FrameBuilder {
  readonly maxPayloadBytes: number;
  readonly maxRuns: number;
  readonly maxZeroRunBytes: number;
  readonly #ownsData: boolean;
  readonly #sealed: PendingFrame[] = [];
  #open: PendingFrame = emptyFrame();
  #pendingBytes = 0;

  constructor(options: FrameBuilderOptions = {}) {
    this.maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_FRAME_PAYLOAD;
    this.maxRuns = options.maxRuns ?? DEFAULT_MAX_FRAME_RUNS;
    this.maxZeroRunBytes = options.maxZeroRunBytes ?? DEFAULT_MAX_ZERO_RUN;
    this.#ownsData = options.ownsData ?? false;
    if (!isIntegerIn(this.maxPayloadBytes, 1, MAX_FRAME_PAYLOAD_LIMIT)) {
      throw new InvalidArgumentError(`maxPayloadBytes must be an integer from 1 to ${MAX_FRAME_PAYLOAD_LIMIT}, not ${this.maxPayloadBytes}`);
    }
    if (!isIntegerIn(this.maxRuns, 1, 1 << 20)) throw new InvalidArgumentError(`maxRuns must be a positive integer, not ${this.maxRuns}`);
    if (!isIntegerIn(this.maxZeroRunBytes, 1, UINT32_MAX)) {
      throw new InvalidArgumentError(`maxZeroRunBytes must be an integer from 1 to ${UINT32_MAX}, not ${this.maxZeroRunBytes}`);
    }
  }

  /** Payload bytes added and not yet taken. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** True when there is nothing to take. */
  get isEmpty(): boolean {
    return this.#sealed.length === 0 && this.#open.runs.length === 0;
  }

  /** Frames that `takeFull` would return now. */
  get fullFrames(): number {
    return this.#sealed.length + (this.#isFull(this.#open) ? 1 : 0);
  }

  add(run: RunInput): void {
    if (run.zero === true) this.#addZero(run.offset, run.length);
    else this.#addData(run.offset, run.data);
  }

  /** A block read from the volume: all zero, it goes as a zero run (no payload); else as data. */
  addBlock(offset: number, data: Buffer): void {
    if (isZero(data)) this.#addZero(offset, data.length);
    else this.#addData(offset, data);
  }

  /** The next frame, full or not (a partial frame is flushed), or null when empty. */
  take(): Frame | null {
    const next = this.#sealed.shift() ?? (this.#open.runs.length > 0 ? this.#detachOpen() : undefined);
    return next === undefined ? null : this.#finish(next);
  }

  /**
   * Everything added, as one frame: for a sender that chose what fits one frame. Throws
   * InvalidArgumentError when it did not fit (nothing is taken then) or nothing was added.
   */
  takeOne(): Frame {
    if (this.#sealed.length > 0) throw new InvalidArgumentError('the runs added do not fit one frame');
    if (this.#open.runs.length === 0) throw new InvalidArgumentError('no runs to take');
    return this.#finish(this.#detachOpen());
  }

  /** The next frame if it is full (payload or run count at its maximum), else null. */
  takeFull(): Frame | null {
    const next = this.#sealed.shift() ?? (this.#isFull(this.#open) ? this.#detachOpen() : undefined);
    return next === undefined ? null : this.#finish(next);
  }

  #addZero(offset: number, length: number): void {
    checkRange(offset, length);
    let at = offset;
    let left = length;
    while (left > 0) {
      const last = this.#open.runs.at(-1);
      if (last !== undefined && last.zero && last.offset + last.length === at && last.length < this.maxZeroRunBytes) {
        const n = Math.min(left, this.maxZeroRunBytes - last.length);
        last.length += n;
        at += n;
        left -= n;
        continue;
      }
      if (this.#open.runs.length >= this.maxRuns) this.#seal();
      const n = Math.min(left, this.maxZeroRunBytes);
      this.#open.runs.push({ offset: at, length: n, zero: true });
      at += n;
      left -= n;
    }
  }

  #addData(offset: number, data: Buffer | readonly Buffer[]): void {
    const chunks: readonly Buffer[] = Buffer.isBuffer(data) ? [data] : data;
    let total = 0;
    for (const c of chunks) total += c.length;
    checkRange(offset, total);
    let at = offset;
    for (const chunk of chunks) {
      let pos = 0;
      while (pos < chunk.length) {
        if (this.#open.bytes === this.maxPayloadBytes) this.#seal();
        const open = this.#open;
        const last = open.runs.at(-1);
        const merge = last !== undefined && !last.zero && last.offset + last.length === at;
        if (!merge && open.runs.length >= this.maxRuns) this.#seal();
        const n = Math.min(chunk.length - pos, this.maxPayloadBytes - this.#open.bytes);
        if (merge) last.length += n;
        else this.#open.runs.push({ offset: at, length: n, zero: false });
        this.#open.chunks.push(pos === 0 && n === chunk.length ? chunk : chunk.subarray(pos, pos + n));
        this.#open.bytes += n;
        this.#pendingBytes += n;
        pos += n;
        at += n;
      }
    }
  }

  #isFull(f: PendingFrame): boolean {
    return f.bytes === this.maxPayloadBytes || f.runs.length >= this.maxRuns;
  }

  #seal(): void {
    if (this.#open.runs.length === 0) return;
    this.#sealed.push(this.#open);
    this.#open = emptyFrame();
  }

  #detachOpen(): PendingFrame {
    const f = this.#open;
    this.#open = emptyFrame();
    return f;
  }

  #finish(f: PendingFrame): Frame {
    const payload = (this.#ownsData ? adjacentView(f.chunks, f.bytes) : null) ?? Buffer.concat(f.chunks, f.bytes);
    this.#pendingBytes -= f.bytes;
    return { runs: f.runs, payload, crc32c: frameChecksum(f.runs, payload) };
  }
}

/** One view over `chunks` when each starts where the one before ends in the same memory, else null. */
function adjacentView(chunks: readonly Buffer[], bytes: number): Buffer | null {
  const first = chunks[0];
  if (first === undefined) return null;
  let end = first.byteOffset + first.length;
  for (let i = 1; i < chunks.length; i++) {
    const c = chunks[i]!;
    if (c.buffer !== first.buffer || c.byteOffset !== end) return null;
    end += c.length;
  }
  return Buffer.from(first.buffer, first.byteOffset, bytes);
}

/**
 * crc32c of a frame: its run headers (offset, length, zero flag) and its payload. The
 * headers count as much as the data — a flipped offset bit would write good data to
 * the wrong place.
 */
export function frameChecksum(runs: readonly WireRun[], payload: Buffer | readonly Buffer[]): number {
  const head = Buffer.alloc(runs.length * 13);
  runs.forEach((r, i) => {
    head.writeBigUInt64LE(BigInt(r.offset), i * 13);
    head.writeUInt32LE(r.length >>> 0, i * 13 + 8);
    head.writeUInt8(r.zero === true ? 1 : 0, i * 13 + 12);
  });
  // Incremental over the chunks: the same value as over their concatenation, without making it.
  let crc = crc32c(head);
  for (const c of Buffer.isBuffer(payload) ? [payload] : payload) crc = crc32c(c, crc);
  return crc;
}

/** A run as received: BlockRun__Output fits. */
export interface WireRun {
  offset: number;
  length: number;
  zero?: boolean;
}

/** A frame as received: BlockFrame__Output fits. */
export interface WireFrame {
  runs: readonly WireRun[];
  payload: Buffer;
  crc32c: number;
}

/** A run of a verified frame; `data` is a view of the frame's payload, not a copy. */
export type DecodedRun =
  | { offset: number; length: number; zero: false; data: Buffer }
  | { offset: number; length: number; zero: true; data?: undefined };

/**
 * Checks a received frame before any of it is applied: every run well formed and inside
 * a volume of `volumeBytes`, the data runs adding up to the payload, the crc32c right.
 * Throws FrameCorruptError otherwise.
 */
export function verifyFrame(frame: WireFrame, volumeBytes: number): void {
  if (!Number.isSafeInteger(volumeBytes) || volumeBytes < 0) throw new InvalidArgumentError(`invalid volume size ${volumeBytes}`);
  let dataBytes = 0;
  for (let i = 0; i < frame.runs.length; i++) {
    const r = frame.runs[i]!;
    if (!Number.isSafeInteger(r.offset) || r.offset < 0 || !isIntegerIn(r.length, 1, UINT32_MAX)) {
      throw new FrameCorruptError(`run ${i} is malformed (offset ${r.offset}, length ${r.length})`);
    }
    if (r.offset + r.length > volumeBytes) {
      throw new FrameCorruptError(`run ${i} (offset ${r.offset}, length ${r.length}) ends past the volume's ${volumeBytes} bytes`);
    }
    if (r.zero !== true) dataBytes += r.length;
  }
  if (dataBytes !== frame.payload.length) {
    throw new FrameCorruptError(`runs describe ${dataBytes} bytes of data, the payload has ${frame.payload.length}`);
  }
  const crc = frameChecksum(frame.runs, frame.payload);
  if (crc !== frame.crc32c) throw new FrameCorruptError(`frame crc32c is ${hex(crc)}, the frame says ${hex(frame.crc32c)}`);
}

/**
 * The runs of a received frame, verified first as a whole (see verifyFrame): nothing is
 * returned from a corrupt frame, so a receiver never applies part of one.
 */
export function frameRuns(frame: WireFrame, volumeBytes: number): DecodedRun[] {
  verifyFrame(frame, volumeBytes);
  const out: DecodedRun[] = [];
  let pos = 0;
  for (const r of frame.runs) {
    if (r.zero === true) {
      out.push({ offset: r.offset, length: r.length, zero: true });
    } else {
      out.push({ offset: r.offset, length: r.length, zero: false, data: frame.payload.subarray(pos, pos + r.length) });
      pos += r.length;
    }
  }
  return out;
}

function emptyFrame(): PendingFrame {
  return { runs: [], chunks: [], bytes: 0 };
}

function isZero(data: Buffer): boolean {
  for (let at = 0; at < data.length; at += ZEROES.length) {
    const n = Math.min(ZEROES.length, data.length - at);
    if (!data.subarray(at, at + n).equals(ZEROES.subarray(0, n))) return false;
  }
  return true;
}

function isIntegerIn(n: number, min: number, max: number): boolean {
  return Number.isInteger(n) && n >= min && n <= max;
}

function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidArgumentError(`invalid run offset ${offset}`);
  if (!Number.isSafeInteger(length) || length < 0) throw new InvalidArgumentError(`invalid run length ${length}`);
  if (!Number.isSafeInteger(offset + length)) throw new InvalidArgumentError(`run at ${offset} of ${length} bytes ends past 2^53`);
}

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}
