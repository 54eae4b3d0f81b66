import { describe, expect, it } from '@jest/globals';
import { REPLICATE_KEY, replicationOptIn } from './replication-opt-in.js';

describe('replicationOptIn', () => {
  it('is on only for the value "true"', () => {
    expect(replicationOptIn({ [REPLICATE_KEY]: 'true' })).toBe(true);
    expect(replicationOptIn({ [REPLICATE_KEY]: ' True ' })).toBe(true);
    expect(replicationOptIn({ [REPLICATE_KEY]: 'false' })).toBe(false);
    expect(replicationOptIn({ [REPLICATE_KEY]: 'yes' })).toBe(false);
    expect(replicationOptIn({ [REPLICATE_KEY]: '' })).toBe(false);
  });

  it('is off without the key or a context', () => {
    expect(replicationOptIn({})).toBe(false);
    expect(replicationOptIn({ 'blockmirror.io/other': 'true' })).toBe(false);
    expect(replicationOptIn(undefined)).toBe(false);
    expect(replicationOptIn(null)).toBe(false);
  });
});
