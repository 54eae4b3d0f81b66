import type { BlockFrame__Output } from '../../../proto/gen/blockmirror/replication/v1/BlockFrame.js';
import type { BlockRun__Output } from '../../../proto/gen/blockmirror/replication/v1/BlockRun.js';
import { FrameCorruptError } from './frame-corrupt-error.js';

const malformed = (why: string): FrameCorruptError => new FrameCorruptError(`malformed BlockFrame: ${why}`);

/**
 * A BlockFrame as the primary sends it. The payload may be the slab chunks themselves:
 * the encoder copies them once, straight into the message, instead of concatenating
 * them first and having protobufjs copy the result again.
 */
export interface OutgoingBlockFrame {
  sessionId: string;
  sequence: number;
  runs: readonly { offset: number; length: number; zero?: boolean }[];
  payload: Buffer | readonly Buffer[];
  crc32c: number;
  durable: boolean;
  group?: number;
}

// Field tags of blockmirror.replication.v1.BlockFrame and BlockRun (replication.proto):
// (field number << 3) | wire type. The same .proto is on the wire; only the code that
// writes and reads it is ours.
const WT_VARINT = 0;
const WT_FIXED64 = 1;
const WT_LEN = 2;
const WT_FIXED32 = 5;
const TAG_SESSION = (1 << 3) | WT_LEN;
const TAG_SEQUENCE = (2 << 3) | WT_VARINT;
const TAG_RUN = (3 << 3) | WT_LEN;
const TAG_PAYLOAD = (4 << 3) | WT_LEN;
const TAG_CRC = (5 << 3) | WT_FIXED32;
const TAG_DURABLE = (6 << 3) | WT_VARINT;
const TAG_GROUP = (7 << 3) | WT_VARINT;
const TAG_RUN_OFFSET = (1 << 3) | WT_VARINT;
const TAG_RUN_LENGTH = (2 << 3) | WT_VARINT;
const TAG_RUN_ZERO = (3 << 3) | WT_VARINT;

/** Bytes of `n` (a non-negative safe integer) as a varint. */
function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(buf: Buffer, at: number, n: number): number {
  // Division, not shifts: offsets go past 2^32.
  while (n >= 128) {
    buf[at++] = (n % 128) | 128;
    n = Math.floor(n / 128);
  }
  buf[at++] = n;
  return at;
}

function runSize(r: OutgoingBlockFrame['runs'][number]): number {
  let s = 0;
  if (r.offset !== 0) s += 1 + varintSize(r.offset);
  if (r.length !== 0) s += 1 + varintSize(r.length);
  if (r.zero === true) s += 2;
  return s;
}

/**
 * Serializes a frame as protobuf (proto3: zero values omitted) into one buffer, the
 * payload chunks copied once into place after the header fields.
 */
export function encodeBlockFrame(f: OutgoingBlockFrame): Buffer {
  const session = Buffer.from(f.sessionId, 'utf8');
  const chunks: readonly Buffer[] = Buffer.isBuffer(f.payload) ? [f.payload] : (f.payload as readonly Buffer[]);
  let payloadBytes = 0;
  for (const c of chunks) payloadBytes += c.length;
  const group = f.group ?? 0;
  let size = 0;
  if (session.length > 0) size += 1 + varintSize(session.length) + session.length;
  if (f.sequence !== 0) size += 1 + varintSize(f.sequence);
  const runSizes = f.runs.map(runSize);
  for (const s of runSizes) size += 1 + varintSize(s) + s;
  if (payloadBytes > 0) size += 1 + varintSize(payloadBytes) + payloadBytes;
  if (f.crc32c !== 0) size += 5;
  if (f.durable) size += 2;
  if (group !== 0) size += 1 + varintSize(group);
  const buf = Buffer.allocUnsafe(size);
  let at = 0;
  if (session.length > 0) {
    buf[at++] = TAG_SESSION;
    at = writeVarint(buf, at, session.length);
    at += session.copy(buf, at);
  }
  if (f.sequence !== 0) {
    buf[at++] = TAG_SEQUENCE;
    at = writeVarint(buf, at, f.sequence);
  }
  f.runs.forEach((r, i) => {
    buf[at++] = TAG_RUN;
    at = writeVarint(buf, at, runSizes[i]!);
    if (r.offset !== 0) {
      buf[at++] = TAG_RUN_OFFSET;
      at = writeVarint(buf, at, r.offset);
    }
    if (r.length !== 0) {
      buf[at++] = TAG_RUN_LENGTH;
      at = writeVarint(buf, at, r.length);
    }
    if (r.zero === true) {
      buf[at++] = TAG_RUN_ZERO;
      buf[at++] = 1;
    }
  });
  if (payloadBytes > 0) {
    buf[at++] = TAG_PAYLOAD;
    at = writeVarint(buf, at, payloadBytes);
    for (const c of chunks) at += c.copy(buf, at);
  }
  if (f.crc32c !== 0) {
    buf[at++] = TAG_CRC;
    at = buf.writeUInt32LE(f.crc32c >>> 0, at);
  }
  if (f.durable) {
    buf[at++] = TAG_DURABLE;
    buf[at++] = 1;
  }
  if (group !== 0) {
    buf[at++] = TAG_GROUP;
    at = writeVarint(buf, at, group);
  }
  return buf;
}

/** A cursor over a protobuf message; every read checks the bounds. */
class Reader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    pos: number,
    readonly end: number,
  ) {
    this.pos = pos;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /**
   * A varint as a number. Values past 2^53 come back inexact but still above
   * Number.MAX_SAFE_INTEGER, so the frame's own checks refuse them as they did before.
   */
  varint(): number {
    let n = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw malformed('truncated varint');
      const b = this.buf[this.pos++]!;
      n += (b & 127) * scale;
      if (b < 128) return n;
      scale *= 128;
    }
    throw malformed('varint longer than 10 bytes');
  }

  bytes(): Buffer {
    const len = this.varint();
    if (len > this.end - this.pos) throw malformed(`a field of ${len} bytes runs past the message's end`);
    // A view, not a copy: the message buffer is ours alone once grpc-js hands it over.
    const b = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return b;
  }

  fixed32(): number {
    if (this.end - this.pos < 4) throw malformed('truncated fixed32');
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  /** Skips a field of an unknown number, as protobuf requires of a reader. */
  skip(wireType: number): void {
    switch (wireType) {
      case WT_VARINT:
        this.varint();
        return;
      case WT_FIXED64:
        this.#advance(8);
        return;
      case WT_LEN:
        this.bytes();
        return;
      case WT_FIXED32:
        this.#advance(4);
        return;
      default:
        throw malformed(`unsupported wire type ${wireType}`);
    }
  }

  #advance(n: number): void {
    if (this.end - this.pos < n) throw malformed('truncated field');
    this.pos += n;
  }
}

function decodeRun(r: Reader): BlockRun__Output {
  const run: BlockRun__Output = { offset: 0, length: 0, zero: false };
  while (!r.done) {
    const tag = r.varint();
    switch (tag) {
      case TAG_RUN_OFFSET:
        run.offset = r.varint();
        break;
      case TAG_RUN_LENGTH:
        // uint32 on the wire: protobuf readers keep the low 32 bits.
        run.length = r.varint() % 2 ** 32;
        break;
      case TAG_RUN_ZERO:
        run.zero = r.varint() !== 0;
        break;
      default:
        r.skip(tag % 8);
    }
  }
  return run;
}

/**
 * Parses a BlockFrame as protobufjs would (defaults filled in, longs as numbers); the
 * payload is a view of `buf`, not a copy. Throws FrameCorruptError on a malformed
 * message, which grpc-js turns into an error on the stream.
 */
export function decodeBlockFrame(buf: Buffer): BlockFrame__Output {
  const frame: BlockFrame__Output = { sessionId: '', sequence: 0, runs: [], payload: EMPTY, crc32c: 0, durable: false, group: 0 };
  const r = new Reader(buf, 0, buf.length);
  while (!r.done) {
    const tag = r.varint();
    switch (tag) {
      case TAG_SESSION:
        frame.sessionId = r.bytes().toString('utf8');
        break;
      case TAG_SEQUENCE:
        frame.sequence = r.varint();
        break;
      case TAG_RUN: {
        const len = r.varint();
        if (len > r.end - r.pos) throw malformed(`a run of ${len} bytes runs past the message's end`);
        frame.runs.push(decodeRun(new Reader(buf, r.pos, r.pos + len)));
        r.pos += len;
        break;
      }
      case TAG_PAYLOAD:
        frame.payload = r.bytes();
        break;
      case TAG_CRC:
        frame.crc32c = r.fixed32();
        break;
      case TAG_DURABLE:
        frame.durable = r.varint() !== 0;
        break;
      case TAG_GROUP:
        frame.group = r.varint();
        break;
      default:
        if (tag < 8) throw malformed('field number 0');
        r.skip(tag % 8);
    }
  }
  return frame;
}

const EMPTY = Buffer.alloc(0);
