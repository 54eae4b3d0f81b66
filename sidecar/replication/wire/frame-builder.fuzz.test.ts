// Property-based fuzzing of the peer frame codec: whatever a peer sends, frameRuns gives
// runs inside the volume whose data adds up to the payload, or a typed error; and what
// the builder makes, the decoder gives back unchanged. Replay a failure with the
// command the report prints (test/helpers/fuzz.ts).
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { BlockmirrorError } from '../../errors.js';
import { fuzz } from '../../../test/helpers/fuzz.js';
import { FrameBuilder, frameChecksum, frameRuns, MAX_FRAME_PAYLOAD_LIMIT, type DecodedRun, type Frame, type RunInput, type WireFrame, type WireRun } from './frame-builder.js';

const UINT32_MAX = 0xffffffff;

// Distinct bytes to cut data from, so misplaced data shows (a view, not a copy: cheap).
// Fixed, not random: a replayed seed must see the same bytes.
const NOISE = noise(1 << 20);

function noise(length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  let x = 0x9e3779b9;
  for (let i = 0; i < length; i++) {
    // xorshift32
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

function pattern(seed: number, length: number): Buffer {
  const at = (seed * 4099) % (NOISE.length - length);
  return NOISE.subarray(at, at + length);
}

/** frameRuns, with any failure turned into its error code; anything but a BlockmirrorError escapes. */
function decode(frame: WireFrame, volumeBytes: number): { runs: DecodedRun[] } | { code: string } {
  try {
    return { runs: frameRuns(frame, volumeBytes) };
  } catch (err) {
    if (!(err instanceof BlockmirrorError)) throw err;
    return { code: err.code };
  }
}

/**
 * What an accepted frame must be: runs as sent, inside the volume, data adding up to the
 * payload. Plain checks (a property checks thousands of runs): the first problem, or null.
 */
function acceptedProblem(frame: WireFrame, volumeBytes: number, runs: DecodedRun[]): string | null {
  if (runs.length !== frame.runs.length) return `${frame.runs.length} runs sent, ${runs.length} decoded`;
  let pos = 0;
  for (const [i, r] of runs.entries()) {
    const sent = frame.runs[i]!;
    if (r.offset !== sent.offset || r.length !== sent.length || r.zero !== (sent.zero === true)) return `run ${i} decoded as ${JSON.stringify(r)}, sent as ${JSON.stringify(sent)}`;
    if (!Number.isSafeInteger(r.offset) || r.offset < 0) return `run ${i} has offset ${r.offset}`;
    if (!Number.isInteger(r.length) || r.length < 1 || r.length > UINT32_MAX) return `run ${i} has length ${r.length}`;
    if (r.offset + r.length > volumeBytes) return `run ${i} (${r.offset}+${r.length}) ends past the volume's ${volumeBytes} bytes`;
    if (r.zero) {
      if (r.data !== undefined) return `zero run ${i} carries data`;
      continue;
    }
    if (r.data.length !== r.length) return `run ${i} of ${r.length} bytes carries ${r.data.length}`;
    if (!r.data.equals(frame.payload.subarray(pos, pos + r.length))) return `run ${i} carries bytes other than its part of the payload`;
    pos += r.length;
  }
  return pos === frame.payload.length ? null : `runs carry ${pos} bytes of a ${frame.payload.length}-byte payload`;
}

/** The crc a sender would compute, when the runs can be encoded at all. */
function honestCrc(runs: readonly WireRun[], payload: Buffer): number | null {
  try {
    return frameChecksum(runs, payload);
  } catch {
    return null;
  }
}

// Numbers a corrupt or hostile frame may carry (proto uint64/uint32 arrive as JS numbers,
// and a buggy sender may hand anything to the decoder).
const hostileNumber = fc.oneof(
  fc.constantFrom(0, 1, -1, 0.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 32, 2 ** 32 - 1, 2 ** 53, 2 ** 53 - 1, 2 ** 64, Number.MAX_VALUE),
  fc.integer({ min: 0, max: UINT32_MAX }),
  fc.double(),
);

describe('peer frame decoder under fuzzing', () => {
  it('round-trips random runs through the builder and the decoder unchanged', async () => {
    const volumeBytes = 256 << 10;
    const runInput = fc.oneof(
      fc.record({ zero: fc.constant(false), offset: fc.nat(volumeBytes), length: fc.nat(20000), pieces: fc.integer({ min: 1, max: 3 }), seed: fc.nat(255) }),
      fc.record({ zero: fc.constant(true), offset: fc.nat(volumeBytes), length: fc.nat(100000), pieces: fc.constant(1), seed: fc.constant(0) }),
    );
    await fuzz(
      fc.property(
        fc.array(runInput, { maxLength: 30 }),
        // Limits small enough to split runs often, not so small that a run becomes thousands of frames.
        fc.record({
          maxPayloadBytes: fc.oneof(fc.constantFrom(512, 4096, 65536, MAX_FRAME_PAYLOAD_LIMIT), fc.integer({ min: 300, max: 100000 })),
          maxRuns: fc.integer({ min: 1, max: 40 }),
          maxZeroRunBytes: fc.oneof(fc.constantFrom(4096, 65536, UINT32_MAX), fc.integer({ min: 2048, max: 100000 })),
        }),
        (inputs, options) => {
          const builder = new FrameBuilder(options);
          const expected = Buffer.alloc(volumeBytes, 0xee);
          const frames: Frame[] = [];
          for (const raw of inputs) {
            // Runs may overlap, touch, repeat and be empty; they stay inside the volume.
            const length = Math.min(raw.length, volumeBytes - raw.offset);
            let run: RunInput;
            if (raw.zero) {
              run = { offset: raw.offset, length, zero: true };
              expected.fill(0, raw.offset, raw.offset + length);
            } else {
              const data = pattern(raw.seed, length);
              const cut = Math.floor(length / raw.pieces);
              run = { offset: raw.offset, data: raw.pieces === 1 ? data : [data.subarray(0, cut), data.subarray(cut, 2 * cut), data.subarray(2 * cut)] };
              data.copy(expected, raw.offset);
            }
            builder.add(run);
            for (let f = builder.takeFull(); f !== null; f = builder.takeFull()) frames.push(f);
          }
          for (let f = builder.take(); f !== null; f = builder.take()) frames.push(f);
          expect(builder.isEmpty).toBe(true);
          expect(builder.pendingBytes).toBe(0);

          const actual = Buffer.alloc(volumeBytes, 0xee);
          for (const f of frames) {
            if (f.payload.length > options.maxPayloadBytes) throw new Error(`a frame of ${f.payload.length} payload bytes`);
            if (f.runs.length === 0 || f.runs.length > options.maxRuns) throw new Error(`a frame of ${f.runs.length} runs`);
            for (const r of f.runs) if (r.zero && r.length > options.maxZeroRunBytes) throw new Error(`a zero run of ${r.length} bytes`);
            // Through the wire types: what the decoder gives back is the frame as built.
            const d = decode({ runs: f.runs.map((r) => ({ ...r })), payload: Buffer.from(f.payload), crc32c: f.crc32c }, volumeBytes);
            if ('code' in d) throw new Error(`a frame the builder made was refused: ${d.code}`);
            expect(acceptedProblem(f, volumeBytes, d.runs)).toBeNull();
            for (const r of d.runs) {
              if (r.zero) actual.fill(0, r.offset, r.offset + r.length);
              else r.data.copy(actual, r.offset);
            }
          }
          // Applied in order, the frames leave the volume exactly as the runs did.
          expect(actual.equals(expected)).toBe(true);
        },
      ),
      300,
    );
  });

  it('gives runs inside the volume that add up to the payload, or FRAME_CORRUPT, for any frame', async () => {
    // Offsets anywhere, or relative to the volume's end (the run ends a byte or two either
    // side of it); a payload of any size, or of about the size the data runs describe.
    type PayloadSpec = { kind: 'fit'; delta: number } | { kind: 'random'; bytes: Uint8Array };
    const run = fc.record({
      offset: fc.oneof(
        { arbitrary: fc.record({ kind: fc.constant('absolute' as const), value: fc.nat(1 << 17) }), weight: 2 },
        { arbitrary: fc.record({ kind: fc.constant('tail' as const), delta: fc.integer({ min: -2, max: 2 }) }), weight: 2 },
        { arbitrary: fc.record({ kind: fc.constant('absolute' as const), value: hostileNumber }), weight: 1 },
      ),
      length: fc.oneof({ arbitrary: fc.integer({ min: 0, max: 1 << 16 }), weight: 3 }, { arbitrary: hostileNumber, weight: 1 }),
      zero: fc.constantFrom(true, false, undefined),
    });
    const payloadSpec: fc.Arbitrary<PayloadSpec> = fc.oneof(
      fc.record({ kind: fc.constant('fit' as const), delta: fc.constantFrom(0, 0, 0, -1, 1) }),
      fc.record({ kind: fc.constant('random' as const), bytes: fc.uint8Array({ maxLength: 4096 }) }),
    );
    await fuzz(
      fc.property(
        fc.array(run, { maxLength: 8 }),
        payloadSpec,
        fc.oneof({ arbitrary: fc.constant(null), weight: 3 }, { arbitrary: fc.integer({ min: 0, max: UINT32_MAX }), weight: 1 }),
        fc.oneof({ arbitrary: fc.integer({ min: 0, max: 1 << 18 }), weight: 4 }, { arbitrary: hostileNumber, weight: 1 }),
        (specs, payloadOf, crc, volumeBytes) => {
          const runs: WireRun[] = specs.map((r) => ({
            offset: r.offset.kind === 'absolute' ? r.offset.value : volumeBytes - r.length + r.offset.delta,
            length: r.length,
            ...(r.zero === undefined ? {} : { zero: r.zero }),
          }));
          let payload: Buffer;
          if (payloadOf.kind === 'random') {
            payload = Buffer.from(payloadOf.bytes);
          } else {
            const described = runs.reduce((n, r) => (r.zero === true ? n : n + r.length), 0) + payloadOf.delta;
            payload = Number.isSafeInteger(described) && described >= 0 && described <= 1 << 19 ? pattern(described & 0xff, described) : Buffer.alloc(0);
          }
          // Mostly an honest crc, so the checks behind it are reached.
          const frame: WireFrame = { runs, payload, crc32c: crc ?? honestCrc(runs, payload) ?? 0 };
          const d = decode(frame, volumeBytes);
          if ('code' in d) {
            const badVolume = !Number.isSafeInteger(volumeBytes) || volumeBytes < 0;
            expect(d.code).toBe(badVolume ? 'INVALID_ARGUMENT' : 'FRAME_CORRUPT');
          } else {
            expect(acceptedProblem(frame, volumeBytes, d.runs)).toBeNull();
          }
        },
      ),
      3000,
    );
  });

  it('refuses any corruption of a valid frame unless its crc is recomputed, and then still gives only runs inside the volume', async () => {
    const volumeBytes = 1 << 20;
    type Corruption =
      | { kind: 'payloadBit'; at: number; bit: number }
      | { kind: 'payloadLength'; delta: number }
      | { kind: 'offset'; run: number; value: number }
      | { kind: 'tail'; run: number; delta: number }
      | { kind: 'length'; run: number; value: number }
      | { kind: 'zeroFlag'; run: number }
      | { kind: 'dropRun'; run: number }
      | { kind: 'duplicateRun'; run: number }
      | { kind: 'crc'; value: number };
    const nearEdge = fc.oneof(fc.constantFrom(0, volumeBytes - 1, volumeBytes, volumeBytes + 1), fc.nat(volumeBytes), hostileNumber);
    const corruption: fc.Arbitrary<Corruption> = fc.oneof(
      fc.record({ kind: fc.constant('payloadBit' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant('payloadLength' as const), delta: fc.integer({ min: -100, max: 100 }).filter((d) => d !== 0) }),
      fc.record({ kind: fc.constant('offset' as const), run: fc.nat(), value: nearEdge }),
      // The run moved to end right at the volume's end, or a byte or two either side.
      fc.record({ kind: fc.constant('tail' as const), run: fc.nat(), delta: fc.integer({ min: -2, max: 2 }) }),
      fc.record({ kind: fc.constant('length' as const), run: fc.nat(), value: fc.oneof(fc.constantFrom(0, 1, UINT32_MAX, 2 ** 32), fc.nat(70000), hostileNumber) }),
      fc.record({ kind: fc.constant('zeroFlag' as const), run: fc.nat() }),
      fc.record({ kind: fc.constant('dropRun' as const), run: fc.nat() }),
      fc.record({ kind: fc.constant('duplicateRun' as const), run: fc.nat() }),
      fc.record({ kind: fc.constant('crc' as const), value: fc.integer({ min: 0, max: UINT32_MAX }) }),
    );
    const source = fc.array(
      fc.oneof(
        fc.record({ zero: fc.constant(false as const), offset: fc.nat(volumeBytes - 70000), length: fc.integer({ min: 1, max: 70000 }), seed: fc.nat(255) }),
        fc.record({ zero: fc.constant(true as const), offset: fc.nat(volumeBytes - 70000), length: fc.integer({ min: 1, max: 70000 }), seed: fc.constant(0) }),
      ),
      { minLength: 1, maxLength: 6 },
    );
    await fuzz(
      fc.property(source, fc.array(corruption, { minLength: 1, maxLength: 3 }), fc.boolean(), (inputs, corruptions, recomputeCrc) => {
        const builder = new FrameBuilder({ maxPayloadBytes: MAX_FRAME_PAYLOAD_LIMIT });
        for (const r of inputs) builder.add(r.zero ? { offset: r.offset, length: r.length, zero: true } : { offset: r.offset, data: pattern(r.seed, r.length) });
        const f = builder.take()!;
        const runs: WireRun[] = f.runs.map((r) => ({ ...r }));
        let payload = Buffer.from(f.payload);
        let crc32c = f.crc32c;
        for (const c of corruptions) {
          const i = runs.length === 0 ? 0 : ('run' in c ? c.run : 0) % runs.length;
          switch (c.kind) {
            case 'payloadBit':
              if (payload.length > 0) payload[c.at % payload.length] ^= 1 << c.bit;
              break;
            case 'payloadLength':
              payload = c.delta > 0 ? Buffer.concat([payload, Buffer.alloc(c.delta, 0x5a)]) : payload.subarray(0, Math.max(0, payload.length + c.delta));
              break;
            case 'offset':
              if (runs[i]) runs[i] = { ...runs[i], offset: c.value };
              break;
            case 'tail':
              if (runs[i]) runs[i] = { ...runs[i], offset: volumeBytes - runs[i].length + c.delta };
              break;
            case 'length':
              if (runs[i]) runs[i] = { ...runs[i], length: c.value };
              break;
            case 'zeroFlag':
              if (runs[i]) runs[i] = { ...runs[i], zero: runs[i].zero !== true };
              break;
            case 'dropRun':
              runs.splice(i, 1);
              break;
            case 'duplicateRun':
              if (runs[i]) runs.splice(i, 0, { ...runs[i] });
              break;
            case 'crc':
              crc32c = c.value;
              break;
          }
        }
        if (recomputeCrc) crc32c = honestCrc(runs, payload) ?? crc32c;
        const frame: WireFrame = { runs, payload, crc32c };
        const changed = frameChecksum(f.runs, f.payload) !== (honestCrc(runs, payload) ?? -1) || crc32c !== f.crc32c;
        const d = decode(frame, volumeBytes);
        if ('code' in d) {
          expect(d.code).toBe('FRAME_CORRUPT');
          return;
        }
        expect(acceptedProblem(frame, volumeBytes, d.runs)).toBeNull();
        // A frame with its old crc is accepted only if nothing that crc covers changed.
        if (!recomputeCrc) expect(changed).toBe(false);
      }),
      1500,
    );
  });
});

