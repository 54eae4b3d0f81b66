import { describe, expect, it } from '@jest/globals';
import type { Lineage__Output } from '../../proto/gen/blockmirror/control/v1/Lineage.js';
import { continueLineage } from '../replication/lineage/continue-lineage.js';
import { handshakeVerdict } from '../replication/lineage/handshake-verdict.js';
import { lineageFromProto, lineageRecordOf, lineageToProto, parseLineageRecord } from './lineage-record.js';

describe('lineage records', () => {
  it("are what a pair's status says, and nothing for a side with no complete image", () => {
    expect(lineageRecordOf({ role: 'secondary', generation: 'g2', historyGenerations: ['g1'], consistent: false, dirtyBlocks: 0 })).toEqual({ role: 'secondary', generation: 'g2', history: ['g1'], consistent: false });
    // A primary's volume is always its data (its status does not say consistent for it).
    expect(lineageRecordOf({ role: 'primary', generation: 'g2', historyGenerations: [], consistent: false, dirtyBlocks: 3 })).toEqual({ role: 'primary', generation: 'g2', history: [], consistent: true });
    expect(lineageRecordOf({ role: 'secondary', generation: '', historyGenerations: [], consistent: false, dirtyBlocks: 0 })).toBeNull();
  });

  it("record a secondary holding divergent blocks as a primary's: a pair recreated from it never takes a delta that leaves them behind", () => {
    // A demoted stale primary, still holding writes its peer never confirmed.
    const r = lineageRecordOf({ role: 'secondary', generation: 'g2', historyGenerations: ['g1'], consistent: true, dirtyBlocks: 7 });
    expect(r).toEqual({ role: 'primary', generation: 'g2', history: ['g1'], consistent: true });
    // Recreated as a secondary from it: a new generation with no bitmap, so the promoted
    // peer (which went on from g2) sees a split brain, and a discard of this side is a full copy.
    const next = continueLineage('secondary', r!, 'g3');
    expect(next.generations).toEqual({ current: 'g3', bitmap: '', history: ['g2', 'g1'] });
    const peer = { current: 'g4', bitmap: 'g2', history: ['g2', 'g1'] };
    expect(handshakeVerdict({ role: 'secondary', generations: next.generations, discardMyData: false }, peer)).toMatchObject({ kind: 'refuse', verdict: 'split-brain' });
    expect(handshakeVerdict({ role: 'secondary', generations: next.generations, discardMyData: true }, peer)).toEqual({ kind: 'session', full: true });
    // Without divergent blocks it stays a secondary's, continued by a delta.
    const plain = lineageRecordOf({ role: 'secondary', generation: 'g2', historyGenerations: ['g1'], consistent: true, dirtyBlocks: 0 });
    expect(handshakeVerdict({ role: 'secondary', generations: continueLineage('secondary', plain!).generations, discardMyData: false }, peer)).toEqual({ kind: 'session', full: false });
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
