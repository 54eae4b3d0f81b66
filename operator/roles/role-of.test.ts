import { describe, expect, it } from '@jest/globals';
import type { Pair__Output } from '../../proto/gen/blockmirror/control/v1/Pair.js';
import { roleOf } from './role-of.js';

const held = (role: string): Pair__Output => ({ spec: { name: 'apps.db', role } }) as unknown as Pair__Output;

describe('roleOf', () => {
  it('is secondary only when the sidecar says so', () => {
    expect(roleOf(held('ROLE_SECONDARY'))).toBe('secondary');
    expect(roleOf(held('ROLE_PRIMARY'))).toBe('primary');
    expect(roleOf({} as Pair__Output)).toBe('primary');
  });
});
