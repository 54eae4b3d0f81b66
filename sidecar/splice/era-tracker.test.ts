import { describe, expect, it } from '@jest/globals';
import { parseEraInvalidate } from './era-tracker.js';

describe('parseEraInvalidate', () => {
  it('reads single blocks and ranges (end exclusive) from era_invalidate --written-since', () => {
    const xml = `<blocks>
  <block block="3"/>
  <range begin="10" end="14"/>
  <block block = "20" />
</blocks>`;
    expect(parseEraInvalidate(xml)).toEqual([
      [3, 4],
      [10, 14],
      [20, 21],
    ]);
  });

  it('gives nothing for a volume nothing was written to', () => {
    expect(parseEraInvalidate('<blocks>\n</blocks>\n')).toEqual([]);
  });
});
