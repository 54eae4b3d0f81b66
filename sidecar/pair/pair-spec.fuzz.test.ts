// Property-based fuzzing of pair-spec validation, the one gate for the control API's
// CreatePair/UpdatePair and for pairs.json read back at start: any input gives a spec
// that keeps every invariant the rest of the sidecar relies on, or InvalidArgumentError.
// Replay a failure with the command the report prints (test/helpers/fuzz.ts).
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { fuzz } from '../../test/helpers/fuzz.js';
import { InvalidArgumentError } from '../errors.js';
import { validatePairSpec, type PairSpec, type PairSpecInput } from './pair-spec.js';

const NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;
/** Longest delay a Node timer honours; a longer one fires after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const KEYS = new Set(['name', 'volumePath', 'role', 'mode', 'peer', 'nbdListen', 'nbdSocket', 'blockSize', 'paused', 'peerPair', 'writeTimeoutMs', 'resyncBytesPerSecond', 'groupIntervalMs', 'maxCoordinationMs', 'maxDrainMs', 'consistencyGroup']);

// Values of the wrong type: pairs.json is read back through the same validation.
const wrongType = fc.oneof(fc.constant(null), fc.boolean(), fc.integer(), fc.constant([]), fc.constant({}), fc.constant(['127.0.0.1:1']));

const nameLike = fc.oneof(
  { arbitrary: fc.constantFrom('db', 'db-data', 'a', 'a.b', 'x'.repeat(63), 'x'.repeat(64), 'Db', '-db', 'db-', 'db_1', '', ' db', 'db\n', 'ü'), weight: 4 },
  { arbitrary: fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,10}[a-z0-9]$/), weight: 3 },
  { arbitrary: fc.string({ maxLength: 70 }), weight: 2 },
  { arbitrary: wrongType, weight: 1 },
);

const hostPortLike = fc.oneof(
  { arbitrary: fc.constantFrom('127.0.0.1:0', '127.0.0.1:10809', 'localhost:65535', '[::1]:1', '::1:80', '10.0.0.1:7000', 'peer.example:7000', '127.0.0.1:65536', '127.0.0.1:99999', '127.0.0.1:', ':80', 'host', '0.0.0.0:10809', '127.0.0.1:-1', '127.0.0.1:1e3', ''), weight: 4 },
  { arbitrary: fc.tuple(fc.constantFrom('127.0.0.1', 'localhost', '[::1]', 'example.org', '192.168.1.2'), fc.integer({ min: -1, max: 70000 })).map(([h, p]) => `${h}:${p}`), weight: 3 },
  { arbitrary: fc.string({ maxLength: 30 }), weight: 1 },
  { arbitrary: wrongType, weight: 1 },
);

const numberLike = (interesting: number[]): fc.Arbitrary<unknown> =>
  fc.oneof(
    { arbitrary: fc.constantFrom(...interesting, 0, 1, -1, 0.5, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, MAX_TIMER_MS, MAX_TIMER_MS + 1, 2 ** 32 - 1, 2 ** 53, 2 ** 64), weight: 4 },
    { arbitrary: fc.integer({ min: -10, max: 2 ** 32 }), weight: 3 },
    { arbitrary: fc.double(), weight: 1 },
    { arbitrary: fc.oneof(fc.constant('100'), fc.constant(null), fc.boolean()), weight: 1 },
  );

const fuzzed = fc.record(
  {
    name: nameLike,
    volumePath: fc.oneof(fc.constantFrom('/dev/vdb', '/v.img', 'relative.img', '', 'a\0b'), fc.string({ maxLength: 20 }), wrongType),
    role: fc.oneof(fc.constantFrom('primary', 'secondary', 'Primary', '', 'leader'), wrongType),
    mode: fc.oneof(fc.constantFrom('sync', 'async', 'semi', ''), wrongType),
    peer: hostPortLike,
    nbdListen: hostPortLike,
    nbdSocket: fc.oneof(fc.constantFrom('/run/bm/db.sock', '', 'relative.sock'), fc.string({ maxLength: 20 }), wrongType),
    blockSize: numberLike([4096, 65536, 1 << 20, 2 << 20, 2048, 1000, 12288]),
    paused: fc.oneof(fc.boolean(), wrongType, fc.constant('true')),
    peerPair: nameLike,
    writeTimeoutMs: numberLike([2000, 100]),
    resyncBytesPerSecond: numberLike([1 << 20, 100e6]),
    groupIntervalMs: numberLike([1000, 60_000]),
    maxCoordinationMs: numberLike([50, 1]),
    maxDrainMs: numberLike([30_000, 100, 99]),
    consistencyGroup: nameLike,
  },
);

const validName = fc.stringMatching(/^[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?$/);

/** A spec a user could well send: every field valid. */
const plausible = fc.record(
  {
    name: validName,
    volumePath: fc.constantFrom('/dev/vdb', '/v.img'),
    role: fc.constantFrom('primary', 'secondary'),
    mode: fc.constantFrom('sync', 'async'),
    peer: fc.constantFrom('127.0.0.1:7000', 'peer.example:7000'),
    blockSize: fc.constantFrom(4096, 65536, 1 << 20),
    paused: fc.boolean(),
    peerPair: validName,
    writeTimeoutMs: fc.integer({ min: 1, max: 60_000 }),
    resyncBytesPerSecond: fc.integer({ min: 1, max: 1e9 }),
    groupIntervalMs: fc.integer({ min: 0, max: 60_000 }),
    maxCoordinationMs: fc.integer({ min: 1, max: 1000 }),
    maxDrainMs: fc.integer({ min: 100, max: 60_000 }),
  },
  { requiredKeys: ['name', 'volumePath', 'role'] },
);

/**
 * A plausible spec with a few fields replaced by anything at all or left out (proto3
 * leaves unset fields at their default; the control service passes only those set),
 * or everything replaced.
 */
const input = fc
  .tuple(plausible, fuzzed, fc.subarray([...KEYS], { maxLength: 3 }), fc.subarray([...KEYS], { maxLength: 2 }), fc.integer({ min: 0, max: 9 }))
  .map(([base, anything, replaced, dropped, all]) => {
    if (all === 0) return anything as Record<string, unknown>;
    const out: Record<string, unknown> = { ...base };
    for (const k of replaced) out[k] = anything[k as keyof typeof anything];
    for (const k of dropped) delete out[k];
    return out;
  });

/** The first invariant a validated spec breaks, or null. */
function specProblem(s: PairSpec): string | null {
  for (const k of Object.keys(s)) if (!KEYS.has(k)) return `unknown field ${k}`;
  if (typeof s.name !== 'string' || !NAME.test(s.name)) return `name ${JSON.stringify(s.name)}`;
  if (typeof s.volumePath !== 'string' || s.volumePath === '') return `volume path ${JSON.stringify(s.volumePath)}`;
  if (s.role !== 'primary' && s.role !== 'secondary') return `role ${JSON.stringify(s.role)}`;
  if (s.mode !== 'sync' && s.mode !== 'async') return `mode ${JSON.stringify(s.mode)}`;
  if (!Number.isInteger(s.blockSize) || s.blockSize < 4096 || s.blockSize > 1 << 20 || (s.blockSize & (s.blockSize - 1)) !== 0) return `block size ${s.blockSize}`;
  if (typeof s.paused !== 'boolean') return `paused ${JSON.stringify(s.paused)}`;
  const hostPort = (v: unknown, loopback: boolean): boolean => {
    if (typeof v !== 'string') return false;
    const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(v);
    if (!m || Number(m[2]) > 65535) return false;
    return !loopback || /^(127\.\d+\.\d+\.\d+|\[::1\]|localhost)$/.test(m[1]!);
  };
  if (s.peer !== undefined && !hostPort(s.peer, false)) return `peer ${JSON.stringify(s.peer)}`;
  if (s.nbdListen !== undefined && !hostPort(s.nbdListen, true)) return `NBD listen address ${JSON.stringify(s.nbdListen)}`;
  if (s.nbdSocket !== undefined && (typeof s.nbdSocket !== 'string' || s.nbdSocket === '')) return `NBD socket ${JSON.stringify(s.nbdSocket)}`;
  if (s.peerPair !== undefined && (typeof s.peerPair !== 'string' || !NAME.test(s.peerPair))) return `peer pair ${JSON.stringify(s.peerPair)}`;
  if (s.consistencyGroup !== undefined && (typeof s.consistencyGroup !== 'string' || !NAME.test(s.consistencyGroup))) return `consistency group ${JSON.stringify(s.consistencyGroup)}`;
  if (s.consistencyGroup !== undefined && s.mode !== 'async') return 'a consistency group in sync mode';
  // Durations become Node timers: a positive whole number a timer honours.
  const ms = (v: number | undefined, min: number): boolean => v === undefined || (Number.isInteger(v) && v >= min && v <= MAX_TIMER_MS);
  if (!ms(s.writeTimeoutMs, 1)) return `write timeout ${s.writeTimeoutMs}`;
  if (!ms(s.groupIntervalMs, 1)) return `group interval ${s.groupIntervalMs}`;
  if (!ms(s.maxCoordinationMs, 1)) return `maximum coordination time ${s.maxCoordinationMs}`;
  if (!ms(s.maxDrainMs, 100)) return `maximum drain time ${s.maxDrainMs}`;
  if (s.resyncBytesPerSecond !== undefined && (!Number.isSafeInteger(s.resyncBytesPerSecond) || s.resyncBytesPerSecond < 1)) return `resync rate ${s.resyncBytesPerSecond}`;
  return null;
}

describe('validatePairSpec under fuzzing', () => {
  it('gives a spec that keeps every invariant, and reloads unchanged from pairs.json, or throws InvalidArgumentError', async () => {
    const outcomes = { accepted: 0, refused: 0 };
    await fuzz(
      fc.property(input, (raw) => {
        let spec: PairSpec;
        try {
          spec = validatePairSpec(raw as PairSpecInput);
          outcomes.accepted++;
        } catch (err) {
          outcomes.refused++;
          // Refused: with the typed error the control API maps to INVALID_ARGUMENT, and a message.
          expect(err).toBeInstanceOf(InvalidArgumentError);
          expect((err as Error).message).not.toBe('');
          return;
        }
        expect(specProblem(spec)).toBeNull();
        // pairs.json holds the validated spec as JSON and is validated again at start:
        // what was accepted once must come back the same.
        expect(validatePairSpec(JSON.parse(JSON.stringify(spec)) as PairSpecInput)).toEqual(spec);
      }),
      3000,
    );
    // Both sides of the gate were exercised (a replayed single case is exempt).
    if (outcomes.accepted + outcomes.refused >= 100) expect(Math.min(outcomes.accepted, outcomes.refused)).toBeGreaterThan((outcomes.accepted + outcomes.refused) / 20);
  });
});
