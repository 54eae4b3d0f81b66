import { describe, expect, it } from '@jest/globals';
import { lineageRecordOf, lineageToProto, parseLineageRecord } from './lineage-record.js';

describe('lineage records', () => {
  it("are what a pair's status says, and nothing for a side with no complete image", () => {
    expect(lineageRecordOf({ role: 'secondary', generation: 'g2', historyGenerations: ['g1'], consistent: false })).toEqual({ role: 'secondary', generation: 'g2', history: ['g1'], consistent: false });
    // A primary's volume is always its data (its status does not say consistent for it).
    expect(lineageRecordOf({ role: 'primary', generation: 'g2', historyGenerations: [], consistent: false })).toEqual({ role: 'primary', generation: 'g2', history: [], consistent: true });
    expect(lineageRecordOf({ role: 'secondary', generation: '', historyGenerations: [], consistent: false })).toBeNull();
  });

  it('round-trip through JSON and the control proto, and refuse anything else with a message naming the field', () => {
    const r = { role: 'secondary' as const, generation: 'g2', history: ['g1'], consistent: true };
    expect(parseLineageRecord(JSON.stringify(r))).toEqual(r);
    expect(lineageToProto(r)).toEqual({ role: 'ROLE_SECONDARY', generation: 'g2', history: ['g1'], consistent: true });
    for (const [text, field] of [
      ['not json', 'not JSON'],
      ['[]', 'object'],
      ['{"role":"leader","generation":"g","history":[],"consistent":true}', 'role'],
      ['{"role":"primary","generation":"","history":[],"consistent":true}', 'generation'],
      ['{"role":"primary","generation":"g","history":[1],"consistent":true}', 'history'],
      ['{"role":"primary","generation":"g","history":[]}', 'consistent'],
    ]) {
      expect(() => parseLineageRecord(text!)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining(field!) as unknown }));
    }
  });
});
