// The hand-written BlockFrame codec against protobufjs (what proto-loader would use): the
// same bytes decode alike, what one encodes the other reads back, and garbage is either
// read alike or refused with a typed error — never a crash. Replay a failure with the
// command the report prints (test/helpers/fuzz.ts).
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { BlockmirrorError } from '../../errors.js';
import { loadReplicationProto } from '../../grpc/load-proto.js';
import { fuzz } from '../../../test/helpers/fuzz.js';
import { decodeBlockFrame, encodeBlockFrame, type OutgoingBlockFrame } from './block-frame-codec.js';

const mirror = loadReplicationProto().blockmirror.replication.v1.ReplicationService.service.Mirror;
const pbEncode = (f: object): Buffer => mirror.requestSerialize(f as never);
const pbDecode = (b: Buffer): unknown => mirror.requestDeserialize(b);

const run = fc.record({ offset: fc.maxSafeNat(), length: fc.nat({ max: 0xffffffff }), zero: fc.boolean() });
const frame: fc.Arbitrary<OutgoingBlockFrame> = fc.record({
  sessionId: fc.string({ maxLength: 40 }),
  sequence: fc.maxSafeNat(),
  runs: fc.array(run, { maxLength: 6 }),
  payload: fc.oneof(
    fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
    fc.array(fc.uint8Array({ maxLength: 100 }).map((u) => Buffer.from(u)), { maxLength: 4 }),
  ),
  crc32c: fc.nat({ max: 0xffffffff }),
  durable: fc.boolean(),
  group: fc.maxSafeNat(),
});

const flat = (f: OutgoingBlockFrame): object => ({ ...f, runs: f.runs.map((r) => ({ ...r })), payload: Buffer.isBuffer(f.payload) ? f.payload : Buffer.concat(f.payload as Buffer[]) });

/** Plain values, so toEqual compares Buffers by content. */
const plain = (x: unknown): unknown => JSON.parse(JSON.stringify(x, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v)));

describe('BlockFrame codec', () => {
  it('writes what protobufjs reads back unchanged, and reads what protobufjs writes as protobufjs does', async () => {
    await fuzz(
      fc.property(frame, (f) => {
        const want = plain({ group: 0, ...flat(f) });
        expect(plain(pbDecode(encodeBlockFrame(f)))).toEqual(want);
        const theirs = pbEncode(flat(f));
        expect(plain(decodeBlockFrame(theirs))).toEqual(want);
        expect(plain(decodeBlockFrame(encodeBlockFrame(f)))).toEqual(want);
      }),
      300,
    );
  });

  it('gives the payload as a view of the message, not a copy', () => {
    const msg = encodeBlockFrame({ sessionId: 's', sequence: 1, runs: [{ offset: 4096, length: 3 }], payload: [Buffer.from([1, 2]), Buffer.from([3])], crc32c: 7, durable: false });
    const f = decodeBlockFrame(msg);
    expect([...f.payload]).toEqual([1, 2, 3]);
    expect(f.payload.buffer).toBe(msg.buffer);
  });

  it('reads any bytes as a well-typed frame, or refuses them with FRAME_CORRUPT', async () => {
    await fuzz(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          // A valid message with one byte changed or cut short: the edges a corrupt peer hits.
          frame.chain((f) =>
            fc.tuple(fc.constant(encodeBlockFrame(f)), fc.nat(), fc.nat({ max: 255 })).map(([b, at, v]) => {
              const c = Buffer.from(b);
              if (c.length > 0) c[at % c.length] = v;
              return new Uint8Array(at % 2 === 0 ? c : c.subarray(0, at % (c.length + 1)));
            }),
          ),
        ),
        (bytes) => {
          const buf = Buffer.from(bytes);
          let f;
          try {
            f = decodeBlockFrame(buf);
          } catch (err) {
            if (!(err instanceof BlockmirrorError)) throw err;
            expect(err.code).toBe('FRAME_CORRUPT');
            return;
          }
          // What the endpoint's own checks (verifyFrame) then judge: numbers, not garbage.
          expect(typeof f.sessionId).toBe('string');
          for (const n of [f.sequence, f.crc32c, f.group, ...f.runs.flatMap((r) => [r.offset, r.length])]) expect(Number.isFinite(n) && n >= 0).toBe(true);
          for (const r of f.runs) expect(typeof r.zero).toBe('boolean');
          expect(f.payload.length).toBeLessThanOrEqual(buf.length);
        },
      ),
      1000,
    );
  });
});
