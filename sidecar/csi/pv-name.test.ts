import { describe, expect, it } from '@jest/globals';
import { PV_NAME, pvNameForVolume } from './pv-name.js';

describe('pvNameForVolume', () => {
  it('keeps a volume id that is already a valid name', () => {
    expect(pvNameForVolume('pvc-0b3e6c4e-7f0a-4a57-9d0e-2f1c3b4a5d6e')).toBe('pvc-0b3e6c4e-7f0a-4a57-9d0e-2f1c3b4a5d6e');
    expect(pvNameForVolume('a')).toBe('a');
    expect(pvNameForVolume('vol.1')).toBe('vol.1');
  });

  it('hashes ids the splice cannot take, stably and validly', () => {
    const ids = ['Sanity-Vol-0A1B2C3D', 'ns/vol', 'a'.repeat(101), '-lead', 'trail-', '', 'vol_1', 'x'.repeat(128)];
    const names = ids.map(pvNameForVolume);
    for (const n of names) expect(n).toMatch(PV_NAME);
    for (const n of names) expect(n).toMatch(/^v-[0-9a-f]{20}$/);
    expect(new Set(names).size).toBe(ids.length);
    expect(pvNameForVolume('Sanity-Vol-0A1B2C3D')).toBe(names[0]);
  });

  it('accepts the longest valid name (100 characters) as is', () => {
    expect(pvNameForVolume('a'.repeat(100))).toBe('a'.repeat(100));
  });
});
