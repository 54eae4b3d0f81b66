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
    [{ role: 'secondary' as const, nbdListen: '127.0.0.1:0' }, /never exposed/],
  ])('refuses %j', (patch, message) => {
    expect(() => validatePairSpec({ ...base, ...patch })).toThrow(InvalidArgumentError);
    expect(() => validatePairSpec({ ...base, ...patch })).toThrow(message);
  });
});
