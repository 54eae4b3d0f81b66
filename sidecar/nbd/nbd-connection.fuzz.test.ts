// Property-based fuzzing of the NBD server's parser: NbdConnection driven directly with
// a socket stand-in, fed from slab memory as adoptSocket feeds it, and an export that
// records every call and completes it when fast-check's scheduler says (so replies come
// back in every order). Replay a failure with the command the report prints
// (test/helpers/fuzz.ts).
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import winston from 'winston';
import { fuzz } from '../../test/helpers/fuzz.js';
import {
  CMD,
  chunked,
  chunkSizesArb,
  expectedHandshake,
  expectedTransmission,
  exportShapeArb,
  matchHandshake,
  mutate,
  mutationArb,
  parseReplies,
  requestBytes,
  resolveRequests,
  sessionArb,
  sessionBytes,
  writeIsInStream,
  type ExportOp,
  type ExportShape,
} from '../../test/helpers/nbd-sessions.js';
import { NbdConnection } from './nbd-connection.js';
import type { NbdExport } from './nbd-export.js';
import { SlabPool, type Slab } from './slab-pool.js';

const logger = winston.createLogger({ silent: true });
const PREFERRED_BLOCK = 4096;

/** What NbdConnection uses of a net.Socket, recording what the server sends. */
class FakeSocket extends EventEmitter {
  readonly sent: Buffer[] = [];
  /** Writes after our side was ended or destroyed: a real socket would raise an error. */
  writesAfterClose = 0;
  destroyed = false;
  ended = false;
  paused = false;
  #closeEmitted = false;

  setNoDelay(): this {
    return this;
  }
  cork(): void {}
  uncork(): void {}
  pause(): this {
    this.paused = true;
    return this;
  }
  resume(): this {
    this.paused = false;
    return this;
  }
  write(b: Buffer): boolean {
    if (this.destroyed || this.ended) {
      this.writesAfterClose++;
      return false;
    }
    this.sent.push(Buffer.from(b));
    return true;
  }
  end(): this {
    if (!this.ended && !this.destroyed) {
      this.ended = true;
      process.nextTick(() => this.#close());
    }
    return this;
  }
  destroy(): this {
    if (!this.destroyed) {
      this.destroyed = true;
      process.nextTick(() => this.#close());
    }
    return this;
  }
  get output(): Buffer {
    return Buffer.concat(this.sent);
  }
  get closed(): boolean {
    return this.#closeEmitted;
  }
  #close(): void {
    if (this.#closeEmitted) return;
    this.#closeEmitted = true;
    this.emit('close', false);
  }
}

/**
 * An export of `shape.size` bytes of memory. Calls are recorded and applied when made
 * (NbdConnection makes them in stream order); each completes when the scheduler runs it.
 */
class RecordingExport implements NbdExport {
  readonly name: string;
  readonly description: string;
  readonly size: number;
  readonly readOnly: boolean;
  readonly ops: ExportOp[] = [];
  readonly problems: string[] = [];
  readonly memory: Buffer;
  readonly #s: fc.Scheduler;

  constructor(shape: ExportShape, s: fc.Scheduler) {
    this.name = shape.name;
    this.description = shape.description;
    this.size = shape.size;
    this.readOnly = shape.readOnly;
    this.memory = Buffer.alloc(shape.size);
    this.#s = s;
  }

  #inRange(what: string, offset: number, length: number): boolean {
    const ok = Number.isSafeInteger(offset) && offset >= 0 && Number.isSafeInteger(length) && length >= 0 && offset + length <= this.size;
    if (!ok) this.problems.push(`${what} outside the export: offset ${offset}, length ${length}, size ${this.size}`);
    return ok;
  }

  read(offset: number, length: number): Promise<Buffer> {
    this.ops.push({ op: 'read', offset, length, fua: false });
    const data = this.#inRange('read', offset, length) ? Buffer.from(this.memory.subarray(offset, offset + length)) : Buffer.alloc(0);
    return this.#s.schedule(Promise.resolve(data), `read ${offset}+${length}`);
  }

  write(offset: number, chunks: Buffer[], length: number, fua: boolean): Promise<void> {
    const data = Buffer.concat(chunks);
    this.ops.push({ op: 'write', offset, length, fua, data });
    if (data.length !== length) this.problems.push(`write of ${length} bytes carried ${data.length}`);
    if (this.readOnly) this.problems.push('write to a read-only export');
    if (this.#inRange('write', offset, length)) data.copy(this.memory, offset);
    return this.#s.schedule(Promise.resolve(), `write ${offset}+${length}`).then(() => {
      // The payload is received memory lent to the export: it must stay intact until the
      // write completes (a recycled receive slab would corrupt it).
      if (!Buffer.concat(chunks).equals(data)) this.problems.push(`payload of the write at ${offset} changed before the write completed`);
    });
  }

  writeZeroes(offset: number, length: number, fua: boolean): Promise<void> {
    this.ops.push({ op: 'zeroes', offset, length, fua });
    if (this.readOnly) this.problems.push('write-zeroes to a read-only export');
    if (this.#inRange('write-zeroes', offset, length)) this.memory.fill(0, offset, offset + length);
    return this.#s.schedule(Promise.resolve(), `zeroes ${offset}+${length}`);
  }

  trim(offset: number, length: number, fua: boolean): Promise<void> {
    this.ops.push({ op: 'trim', offset, length, fua });
    if (this.readOnly) this.problems.push('trim on a read-only export');
    this.#inRange('trim', offset, length);
    return this.#s.schedule(Promise.resolve(), `trim ${offset}+${length}`);
  }

  flush(): Promise<void> {
    this.ops.push({ op: 'flush' });
    return this.#s.schedule(Promise.resolve(), 'flush');
  }
}

/**
 * Feeds bytes as adoptSocket does: each read lands in the free tail of the current slab
 * (small slabs here, so payloads straddle slabs and slabs get recycled), and the
 * connection gets views of slab memory.
 */
class SlabFeeder {
  readonly pool = new SlabPool({ slabBytes: 8192, minTail: 1024, keep: 2 });
  readonly slabs = new Set<Slab>();
  #slab: Slab | null = null;

  feed(conn: NbdConnection, chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      const next = this.pool.nextSlab(this.#slab);
      if (next !== this.#slab) {
        next.retain();
        this.#slab?.release();
        this.#slab = next;
        this.slabs.add(next);
      }
      const s = this.#slab;
      const n = Math.min(chunk.length - at, s.buf.length - s.used);
      chunk.copy(s.buf, s.used, at, at + n);
      const view = s.buf.subarray(s.used, s.used + n);
      s.used += n;
      at += n;
      conn.feed(view, s);
    }
  }

  /** The socket closed: the reader lets go of its slab. */
  close(): void {
    this.#slab?.release();
    this.#slab = null;
  }

  leaked(): number {
    let n = 0;
    for (const s of this.slabs) if (s.refs !== 0) n++;
    return n;
  }
}

interface Run {
  socket: FakeSocket;
  exp: RecordingExport;
  feeder: SlabFeeder;
  protocolErrors: string[];
  /** Chunks fed before the connection stopped reading (closed). */
  fedAll: boolean;
}

interface DriveOptions {
  shape: ExportShape;
  maxInFlight: number;
  chunks: Buffer[];
  /** Per chunk: let one pending export call complete after feeding it. */
  settle: boolean[];
  /** Half-close the client side once everything is sent. */
  fin: boolean;
  s: fc.Scheduler;
}

/** Runs one session to quiescence; every exception escapes and fails the property. */
async function drive(o: DriveOptions): Promise<Run> {
  const socket = new FakeSocket();
  const exp = new RecordingExport(o.shape, o.s);
  const feeder = new SlabFeeder();
  const protocolErrors: string[] = [];
  const conn = new NbdConnection(socket as unknown as Socket, {
    resolve: (name) => (name === '' || name === exp.name ? exp : undefined),
    list: () => [exp.name],
    logger,
    maxPayload: o.shape.maxPayload,
    maxInFlight: o.maxInFlight,
    // Small byte bounds too, so pausing on payload bytes (not only on requests) is exercised.
    maxInFlightBytes: o.maxInFlight * 4096,
    onProtocolError: (reason) => protocolErrors.push(reason),
  });
  socket.once('close', () => feeder.close());
  const settleWhilePaused = async (): Promise<void> => {
    // A paused socket delivers nothing (not even its FIN) until the connection resumes it.
    while (socket.paused) {
      if (o.s.count() > 0) {
        await o.s.waitNext(1);
      } else {
        // A completed call reaches the connection a few promise hops later.
        await new Promise((r) => setImmediate(r));
        if (o.s.count() === 0) return;
      }
    }
  };
  let fedAll = true;
  for (const [i, chunk] of o.chunks.entries()) {
    await settleWhilePaused();
    if (socket.paused) throw new Error('connection paused with nothing in flight: it would never read again');
    if (socket.destroyed || socket.ended) {
      fedAll = false;
      break;
    }
    feeder.feed(conn, chunk);
    if (o.settle[i % Math.max(1, o.settle.length)] && o.s.count() > 0) await o.s.waitNext(1);
  }
  await settleWhilePaused();
  if (o.fin && !socket.destroyed && !socket.ended) socket.emit('end');
  await o.s.waitIdle();
  // Let 'close' (next tick) arrive.
  await new Promise((r) => setImmediate(r));
  return { socket, exp, feeder, protocolErrors, fedAll };
}

/** The client goes away (socket destroyed from our side); everything must be released. */
async function vanish(run: Run, s: fc.Scheduler): Promise<void> {
  run.socket.destroy();
  await s.waitIdle();
  await new Promise((r) => setImmediate(r));
}

const shapeArb: fc.Arbitrary<ExportShape> = exportShapeArb.map((s) => ({ ...s, preferredBlock: PREFERRED_BLOCK }));

describe('NbdConnection under fuzzing', () => {
  it('answers every well-formed session exactly as the protocol says, split into any chunks, completing in any order', async () => {
    await fuzz(
      fc.asyncProperty(
        sessionArb,
        shapeArb,
        fc.integer({ min: 1, max: 8 }),
        chunkSizesArb,
        fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
        fc.nat(0xffff),
        fc.scheduler(),
        async (spec, shape, maxInFlight, sizes, settle, cookieBase, s) => {
          const requests = resolveRequests(spec, shape, BigInt(cookieBase));
          const bytes = sessionBytes(spec, shape, requests);
          const run = await drive({ shape, maxInFlight, chunks: chunked(bytes, sizes), settle, fin: spec.fin, s });
          expect(run.exp.problems).toEqual([]);
          expect(run.socket.writesAfterClose).toBe(0);

          const hs = matchHandshake(run.socket.output, expectedHandshake(spec, shape));
          if ('problem' in hs) throw new Error(hs.problem);
          if (spec.enter.kind === 'abort') {
            // NBD_OPT_ABORT: acknowledged, then an orderly close.
            expect(hs.at).toBe(run.socket.output.length);
            expect(run.socket.ended).toBe(true);
            expect(run.socket.destroyed).toBe(false);
            expect(run.exp.ops).toEqual([]);
            expect(run.protocolErrors).toEqual([]);
            expect(run.feeder.leaked()).toBe(0);
            return;
          }
          const byCookie = new Map(requests.map((r) => [r.cookie, r]));
          const parsed = parseReplies(run.socket.output.subarray(hs.at), (c) => byCookie.get(c));
          if ('problem' in parsed) throw new Error(parsed.problem);
          expect(parsed.rest).toBe(0);

          const want = expectedTransmission(requests, shape, Buffer.alloc(shape.size));
          expect(run.exp.ops).toEqual(want.ops);
          expect([...parsed.replies.keys()].sort()).toEqual([...want.replies.keys()].sort());
          for (const [cookie, reply] of want.replies) {
            const got = parsed.replies.get(cookie)!;
            const r = byCookie.get(cookie)!;
            expect({ cookie, type: r.type, error: got.error }).toEqual({ cookie, type: r.type, error: reply.error });
            if (reply.data !== null && !got.data!.equals(reply.data)) throw new Error(`READ ${r.offset}+${r.length} returned the wrong bytes`);
          }
          // Every refused request is counted, nothing else is.
          expect(run.protocolErrors).toHaveLength(want.refused);
          // An orderly end (DISC or the client's FIN) closes our side; otherwise the session stays open.
          expect(run.socket.destroyed).toBe(false);
          expect(run.socket.ended).toBe(spec.disconnect || spec.fin);
          if (!run.socket.ended) await vanish(run, s);
          expect(run.feeder.leaked()).toBe(0);
        },
      ),
      300,
    );
  });

  it('survives mutated sessions: no throw, no made-up or out-of-range write, every disconnect counted, nothing left open or held', async () => {
    await fuzz(
      fc.asyncProperty(
        sessionArb,
        shapeArb,
        fc.array(mutationArb, { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 1, max: 8 }),
        chunkSizesArb,
        fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
        fc.scheduler(),
        async (spec, shape, mutations, maxInFlight, sizes, settle, s) => {
          const requests = resolveRequests(spec, shape, 7n);
          const bytes = mutate(sessionBytes(spec, shape, requests), mutations);
          // The client always half-closes at the end: the server must then finish and close.
          const run = await drive({ shape, maxInFlight, chunks: chunked(bytes, sizes), settle, fin: true, s });
          checkInvariants(run, shape, bytes, true);
        },
      ),
      500,
    );
  });

  it('survives garbage, before and after a valid handshake', async () => {
    await fuzz(
      fc.asyncProperty(
        shapeArb,
        fc.boolean(),
        fc.uint8Array({ maxLength: 600 }),
        fc.integer({ min: 1, max: 8 }),
        chunkSizesArb,
        fc.boolean(),
        fc.scheduler(),
        async (shape, afterHandshake, garbage, maxInFlight, sizes, fin, s) => {
          const spec = { clientFlags: 3, options: [], enter: { kind: 'go' as const, byDefaultName: true, requests: [] }, requests: [], disconnect: false, fin };
          const prefix = afterHandshake ? sessionBytes(spec, shape, []) : Buffer.alloc(0);
          const bytes = Buffer.concat([prefix, Buffer.from(garbage)]);
          const run = await drive({ shape, maxInFlight, chunks: chunked(bytes, sizes), settle: [true], fin, s });
          checkInvariants(run, shape, bytes, fin);
          if (!run.socket.destroyed && !run.socket.ended) await vanish(run, s);
          expect(run.feeder.leaked()).toBe(0);
        },
      ),
      300,
    );
  });
});

/** What must hold whatever the client sent (`fin`: it half-closed at the end). */
function checkInvariants(run: Run, shape: ExportShape, stream: Buffer, fin: boolean): void {
  expect(run.exp.problems).toEqual([]);
  expect(run.socket.writesAfterClose).toBe(0);
  for (const op of run.exp.ops) {
    if (op.op === 'write') {
      expect(op.length).toBeLessThanOrEqual(shape.maxPayload);
      // Only the bytes of a WRITE request the client actually sent reach the export.
      if (!writeIsInStream(stream, op.offset, op.data)) throw new Error(`a write at ${op.offset} of ${op.length} bytes that no WRITE request in the stream carries`);
    }
    if (op.op === 'read') expect(op.length).toBeLessThanOrEqual(shape.maxPayload);
  }
  // The server cut the client off: always for a reason it counted.
  if (run.socket.destroyed) expect(run.protocolErrors.length).toBeGreaterThan(0);
  // A client that said it is done is never left hanging.
  if (fin) expect(run.socket.destroyed || run.socket.ended).toBe(true);
  // Nothing in flight is left behind, and receive memory all went back.
  if (run.socket.destroyed || run.socket.ended) {
    expect(run.socket.closed).toBe(true);
    expect(run.feeder.leaked()).toBe(0);
  }
}

describe('NbdConnection fuzz oracle', () => {
  // The properties are only as good as their oracle: it must tell a sent WRITE from a made-up one.
  it('finds a WRITE in a stream only with its header, offset, length and bytes', () => {
    const data = Buffer.from('payload!');
    const stream = Buffer.concat([Buffer.from('junk'), requestBytes({ type: CMD.WRITE, flags: 0, cookie: 5n, offset: 4096n, length: data.length, data }), Buffer.from('more')]);
    expect(writeIsInStream(stream, 4096, data)).toBe(true);
    expect(writeIsInStream(stream, 4097, data)).toBe(false);
    expect(writeIsInStream(stream, 4096, Buffer.from('payload?'))).toBe(false);
    expect(writeIsInStream(stream, 4096, data.subarray(0, 4))).toBe(false);
    const read = Buffer.concat([requestBytes({ type: CMD.READ, flags: 0, cookie: 5n, offset: 4096n, length: data.length, data: null }), data]);
    expect(writeIsInStream(read, 4096, data)).toBe(false);
  });
});
