import { describe, expect, it } from '@jest/globals';
import type { Lineage__Output } from '../../proto/gen/blockmirror/control/v1/Lineage.js';
import { lineageFromProto, lineageRecordOf, lineageToProto, parseLineageRecord } from './lineage-record.js';

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
    // A promotion's record keeps its marker both ways; an unset one off the wire is ''.
    const p = { ...r, promotion: '2026-12-03T06:00:00Z' };
    expect(parseLineageRecord(JSON.stringify(p))).toEqual(p);
    expect(lineageFromProto({ ...lineageToProto(p), promotion: p.promotion } as Lineage__Output)).toEqual(p);
    expect(lineageFromProto({ ...lineageToProto(r), promotion: '' } as Lineage__Output)).toEqual(r);
    for (const [text, field] of [
      ['not json', 'not JSON'],
      ['[]', 'object'],
      ['{"role":"leader","generation":"g","history":[],"consistent":true}', 'role'],
      ['{"role":"primary","generation":"","history":[],"consistent":true}', 'generation'],
      ['{"role":"primary","generation":"g","history":[1],"consistent":true}', 'history'],
      ['{"role":"primary","generation":"g","history":[]}', 'consistent'],
      ['{"role":"secondary","generation":"g","history":[],"consistent":true,"promotion":""}', 'promotion'],
    ]) {
      expect(() => parseLineageRecord(text!)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining(field!) as unknown }));
    }
  });
});
