// Property-based fuzzing of a real NbdServer on loopback TCP, serving a primary's
// export (VolumeExport over a volume file, with its dirty tracker): generated sessions,
// intact or mutated, sent in random pieces. The server must answer intact sessions as
// the protocol says, close every connection whose client is done, write nothing a
// WRITE request did not carry, record every written block as dirty, and still serve a
// valid client afterwards. The unit-level properties (sidecar/nbd/nbd-connection.fuzz.test.ts)
// go deeper; this run checks the same parser behind real sockets and slab reads.
// Replay a failure with the command the report prints (test/helpers/fuzz.ts).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import winston from 'winston';
import { DirtyTracker } from '../sidecar/bitmap/dirty-tracker.js';
import type { NbdExport } from '../sidecar/nbd/nbd-export.js';
import { NbdServer } from '../sidecar/nbd/nbd-server.js';
import { VolumeExport } from '../sidecar/pair/volume-export.js';
import { Volume } from '../sidecar/volume/volume.js';
import { fuzz } from './helpers/fuzz.js';
import { NbdTestClient } from './helpers/nbd-test-client.js';
import {
  chunked,
  chunkSizesArb,
  expectedHandshake,
  expectedTransmission,
  matchHandshake,
  mutate,
  mutationArb,
  parseReplies,
  pattern,
  resolveRequests,
  sessionArb,
  sessionBytes,
  writeIsInStream,
  type ExportShape,
  type Mutation,
} from './helpers/nbd-sessions.js';
import { waitFor } from './helpers/wait-for.js';

const KiB = 1024;
const VOLUME_BYTES = 1024 * KiB;
const BLOCK_SIZE = 4096;
const MAX_PAYLOAD = 64 * KiB;
const NAME = 'fuzz';
const CLOSE_DEADLINE_MS = 10_000;
const logger = winston.createLogger({ silent: true });

type Recorded = { op: 'write'; offset: number; data: Buffer } | { op: 'zeroes' | 'trim'; offset: number; length: number };

/** The primary's export, with every change it is asked for recorded as it is asked. */
class RecordingExport implements NbdExport {
  readonly name: string;
  readonly description: string;
  readonly size: number;
  readonly readOnly: boolean;
  recorded: Recorded[] = [];
  readonly #inner: VolumeExport;

  constructor(inner: VolumeExport) {
    this.#inner = inner;
    this.name = inner.name;
    this.description = inner.description;
    this.size = inner.size;
    this.readOnly = inner.readOnly;
  }

  read(offset: number, length: number): Promise<Buffer> {
    return this.#inner.read(offset, length);
  }
  write(offset: number, chunks: Buffer[], length: number, fua: boolean): Promise<void> {
    this.recorded.push({ op: 'write', offset, data: Buffer.concat(chunks, length) });
    return this.#inner.write(offset, chunks, length, fua);
  }
  writeZeroes(offset: number, length: number, fua: boolean): Promise<void> {
    this.recorded.push({ op: 'zeroes', offset, length });
    return this.#inner.writeZeroes(offset, length, fua);
  }
  trim(offset: number, length: number, fua: boolean): Promise<void> {
    this.recorded.push({ op: 'trim', offset, length });
    return this.#inner.trim(offset, length, fua);
  }
  flush(): Promise<void> {
    return this.#inner.flush();
  }
}

/** Sends `chunks` on a fresh connection, half-closes, and collects all the server sends until it closes. */
async function session(address: string, chunks: Buffer[]): Promise<{ output: Buffer; closed: boolean }> {
  const [host, port] = [address.replace(/:\d+$/, ''), Number(address.split(':').pop())];
  const sock = connect({ host, port });
  const received: Buffer[] = [];
  sock.on('data', (c: Buffer) => received.push(c));
  sock.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', () => resolve());
    sock.once('error', reject);
  });
  for (const [i, c] of chunks.entries()) {
    if (sock.destroyed) break;
    // Every few pieces, wait until the kernel took them: the server sees separate reads.
    if (i % 4 === 3) await new Promise<void>((resolve) => sock.write(c, () => resolve()));
    else sock.write(c);
  }
  sock.end();
  let timer: NodeJS.Timeout | undefined;
  const inTime = await Promise.race([closed.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), CLOSE_DEADLINE_MS)))]);
  clearTimeout(timer);
  if (!inTime) {
    sock.destroy();
    await closed;
  }
  return { output: Buffer.concat(received), closed: inTime };
}

describe('NbdServer on loopback under fuzzing', () => {
  let dir: string;
  let path: string;
  let volume: Volume;
  let tracker: DirtyTracker;
  let exp: RecordingExport;
  let server: NbdServer;
  const protocolErrors: string[] = [];
  const original = pattern(0x5a, VOLUME_BYTES);
  const shape: ExportShape = { name: NAME, description: `blockmirror pair ${NAME}`, size: VOLUME_BYTES, readOnly: false, maxPayload: MAX_PAYLOAD, preferredBlock: 4096 };
  /** Every change each run asked for, in the order asked. */
  const history: Recorded[][] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bm-nbd-fuzz-'));
    path = join(dir, 'v.img');
    writeFileSync(path, original);
    volume = await Volume.open(path);
    tracker = await DirtyTracker.open({ path: join(dir, 'dirty.log'), volumeBytes: VOLUME_BYTES, blockSize: BLOCK_SIZE, sweepIntervalMs: 0 });
    exp = new RecordingExport(new VolumeExport(NAME, volume, tracker));
    server = new NbdServer(exp, { logger, maxPayload: MAX_PAYLOAD, maxInFlightPerConnection: 4, onProtocolError: (r) => protocolErrors.push(r) });
    await server.listen({ tcp: '127.0.0.1:0' });
  });

  afterAll(async () => {
    await server?.close(1000);
    await tracker?.close();
    await volume?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers intact sessions as the protocol says, and from mutated ones writes nothing a WRITE did not carry, always closing', async () => {
    await fuzz(
      fc.asyncProperty(sessionArb, fc.oneof(fc.constant<Mutation[]>([]), fc.array(mutationArb, { minLength: 1, maxLength: 5 })), chunkSizesArb, fc.nat(0xffff), async (spec, mutations, sizes, cookieBase) => {
        const requests = resolveRequests(spec, shape, BigInt(cookieBase));
        const intact = sessionBytes(spec, shape, requests);
        const bytes = mutate(intact, mutations);
        exp.recorded = [];
        const { output, closed } = await session(server.tcpAddress, chunked(bytes, sizes));
        history.push(exp.recorded);
        // The client half-closed: the server finishes what it has and closes too.
        expect(closed).toBe(true);
        await waitFor('the server to drop the connection', () => server.connectionCount === 0, { timeoutMs: CLOSE_DEADLINE_MS, intervalMs: 10 });
        for (const r of exp.recorded) {
          const length = r.op === 'write' ? r.data.length : r.length;
          expect(r.offset + length).toBeLessThanOrEqual(VOLUME_BYTES);
          if (r.op === 'write') {
            expect(length).toBeLessThanOrEqual(MAX_PAYLOAD);
            if (!writeIsInStream(bytes, r.offset, r.data)) throw new Error(`a write at ${r.offset} of ${length} bytes that no WRITE request in the stream carries`);
            // No byte reaches the volume unrecorded: every block written is dirty.
            for (let b = Math.floor(r.offset / BLOCK_SIZE); length > 0 && b <= Math.floor((r.offset + length - 1) / BLOCK_SIZE); b++) {
              if (!tracker.isDirty(b)) throw new Error(`block ${b} was written (at ${r.offset}, ${length} bytes) but is not dirty`);
            }
          }
        }
        if (mutations.length > 0) return;
        // Intact: the handshake byte for byte, and one reply per request with the protocol's error.
        const hs = matchHandshake(output, expectedHandshake(spec, shape));
        if ('problem' in hs) throw new Error(hs.problem);
        if (spec.enter.kind === 'abort') return;
        const byCookie = new Map(requests.map((r) => [r.cookie, r]));
        const parsed = parseReplies(output.subarray(hs.at), (c) => byCookie.get(c));
        if ('problem' in parsed) throw new Error(parsed.problem);
        expect(parsed.rest).toBe(0);
        const want = expectedTransmission(requests, shape, Buffer.alloc(VOLUME_BYTES));
        const errors = (m: Map<bigint, { error: number }>): [string, number][] => [...m.entries()].map(([c, r]): [string, number] => [c.toString(), r.error]).sort();
        expect(errors(parsed.replies)).toEqual(errors(want.replies));
      }),
      100,
    );

    // The volume holds the original bytes wherever nothing was written, and the data
    // of the writes asked for elsewhere (a byte two overlapping writes of one session
    // raced for may hold either; one trimmed last may hold anything: TRIM may deallocate).
    const model = Buffer.from(original);
    const raced = new Uint8Array(VOLUME_BYTES);
    const trimmed = new Uint8Array(VOLUME_BYTES);
    for (const ops of history) {
      const touched = new Uint8Array(VOLUME_BYTES);
      for (const r of ops) {
        const end = r.offset + (r.op === 'write' ? r.data.length : r.length);
        if (r.op === 'write') r.data.copy(model, r.offset);
        else if (r.op === 'zeroes') model.fill(0, r.offset, end);
        trimmed.fill(r.op === 'trim' ? 1 : 0, r.offset, end);
        for (let i = r.offset; i < end; i++) touched[i] = Math.min(2, touched[i]! + 1);
      }
      for (let i = 0; i < VOLUME_BYTES; i++) if (touched[i]! > 0) raced[i] = touched[i]! > 1 ? 1 : 0;
    }
    const onDisk = readFileSync(path);
    for (let i = 0; i < VOLUME_BYTES; i++) {
      if (onDisk[i] !== model[i] && raced[i] === 0 && trimmed[i] === 0) throw new Error(`byte ${i} of the volume is ${onDisk[i]}, expected ${model[i]}`);
    }

    // And a well-behaved client is served as ever.
    const c = await NbdTestClient.connectExport({ tcp: server.tcpAddress }, NAME);
    const data = pattern(7, 12 * KiB + 5);
    expect((await c.write(300 * KiB + 3, data, true)).error).toBe(0);
    const back = await c.read(300 * KiB + 3, data.length);
    expect(back.error).toBe(0);
    expect(back.data.equals(data)).toBe(true);
    await c.disconnect();
    expect(protocolErrors.length).toBeGreaterThan(0);
  });
});
