import { describe, expect, it } from '@jest/globals';
import { InvalidArgumentError } from '../errors.js';
import { validatePairSpec } from './pair-spec.js';

describe('validatePairSpec', () => {
  const base = { name: 'db-data', volumePath: '/v.img', role: 'primary' as const };

  it('fills defaults', () => {
    expect(validatePairSpec(base)).toEqual({ ...base, mode: 'sync', blockSize: 65536, paused: false });
  });

  it.each([
    [{ name: 'Bad_Name' }, /pair name/],
    [{ name: '' }, /pair name/],
    [{ volumePath: '' }, /volume path/],
    [{ role: 'leader' as never }, /role/],
    [{ mode: 'semi' as never }, /mode/],
    [{ blockSize: 1000 }, /power of two/],
    [{ blockSize: 2 << 20 }, /power of two/],
    [{ nbdListen: '0.0.0.0:10809' }, /loopback/],
    [{ nbdListen: 'nope' }, /HOST:PORT/],
    [{ peer: 'x' }, /HOST:PORT/],
    // Found by pair-spec.fuzz.test.ts. Durations past 2^31 - 1 ms would become 1 ms timers
    // (every write timing out, every drain abandoned, groups back to back).
    [{ groupIntervalMs: 2 ** 31 }, /group interval/],
    [{ writeTimeoutMs: 2 ** 32 - 1 }, /write timeout/],
    [{ maxDrainMs: 2 ** 31 }, /drain/],
    [{ maxCoordinationMs: 2 ** 31 }, /coordination/],
    // A rate that is no whole number of bytes per second.
    [{ resyncBytesPerSecond: -5e-324 }, /resync rate/],
    [{ resyncBytesPerSecond: 0.5 }, /resync rate/],
    // Wrong types, as a damaged pairs.json could hold them: refused, not coerced.
    [{ nbdSocket: {} as never }, /nbdSocket must be a string/],
    [{ name: 5 as never }, /name must be a string/],
    [{ peer: ['127.0.0.1:1'] as never }, /peer must be a string/],
    [{ paused: 'yes' as never }, /paused/],
    // A secondary pinned to something that is no peer identity would admit nobody, or an operator.
    [{ remoteIdentity: 'spiffe://blockmirror/site-a/operator' }, /not a peer identity/],
    [{ remoteIdentity: 'site-a' }, /spiffe:\/\/blockmirror\/<site>/],
  ])('refuses %j', (patch, message) => {
    expect(() => validatePairSpec({ ...base, ...patch })).toThrow(InvalidArgumentError);
    expect(() => validatePairSpec({ ...base, ...patch })).toThrow(message);
  });

  it('keeps the remote peer identity a pair is pinned to', () => {
    expect(validatePairSpec({ ...base, remoteIdentity: 'spiffe://blockmirror/site-b/peer' }).remoteIdentity).toBe('spiffe://blockmirror/site-b/peer');
  });

  it("keeps a demoted primary's export settings and peer (its export is fenced until it is promoted again)", () => {
    const spec = validatePairSpec({ ...base, role: 'secondary', nbdListen: '127.0.0.1:10809', nbdSocket: '/run/db.sock', peer: 'site-a:7401' });
    expect(spec).toMatchObject({ role: 'secondary', nbdListen: '127.0.0.1:10809', nbdSocket: '/run/db.sock', peer: 'site-a:7401' });
  });

  it('accepts durations up to the longest a timer honours', () => {
    const max = 2 ** 31 - 1;
    const spec = validatePairSpec({ ...base, mode: 'async', writeTimeoutMs: max, groupIntervalMs: max, maxCoordinationMs: max, maxDrainMs: max, resyncBytesPerSecond: 2 ** 53 - 1 });
    expect(spec).toMatchObject({ writeTimeoutMs: max, groupIntervalMs: max, maxCoordinationMs: max, maxDrainMs: max, resyncBytesPerSecond: 2 ** 53 - 1 });
  });
});
