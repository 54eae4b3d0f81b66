import { describe, expect, it } from '@jest/globals';
import { continueLineage, type VolumeLineage } from './continue-lineage.js';
import { rotated, type GenerationIds } from './generation-ids.js';
import { handshakeVerdict } from './handshake-verdict.js';

const rec = (role: VolumeLineage['role'], generation: string, history: string[] = [], consistent = true): VolumeLineage => ({ role, generation, history, consistent });
const asSecondary = (g: GenerationIds) => ({ role: 'secondary' as const, generations: g, discardMyData: false });

describe('continueLineage', () => {
  it('a secondary recreated as one holds its generation again, and an image that was mid-resync stays inconsistent', () => {
    expect(continueLineage('secondary', rec('secondary', 'g2', ['g1']))).toEqual({ generations: { current: 'g2', bitmap: '', history: ['g1'] }, inconsistent: false });
    expect(continueLineage('secondary', rec('secondary', 'g2', ['g1'], false))).toEqual({ generations: { current: 'g2', bitmap: '', history: ['g1'] }, inconsistent: true });
  });

  it('a volume that served writes takes a new generation descending from its own, with no bitmap: no dirty log covers what was written while no pair existed', () => {
    expect(continueLineage('primary', rec('primary', 'g2', ['g1']), 'n')).toEqual({ generations: { current: 'n', bitmap: '', history: ['g2', 'g1'] }, inconsistent: false });
    expect(continueLineage('secondary', rec('primary', 'g2', ['g1']), 'n')).toEqual({ generations: { current: 'n', bitmap: '', history: ['g2', 'g1'] }, inconsistent: false });
    expect(continueLineage('primary', rec('secondary', 'g2'), 'n')).toEqual({ generations: { current: 'n', bitmap: '', history: ['g2'] }, inconsistent: false });
  });

  it('refuses a primary over a volume that was mid-resync, and records it cannot read', () => {
    expect(() => continueLineage('primary', rec('secondary', 'g2', [], false))).toThrow(expect.objectContaining({ code: 'FAILED_PRECONDITION', message: expect.stringContaining('middle of a resync') as unknown }));
    expect(() => continueLineage('primary', rec('primary', ''))).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => continueLineage('primary', rec('primary', 'g2', ['g1', 'g2']))).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => continueLineage('primary', { ...rec('primary', 'g2'), role: 'other' as 'primary' })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('a secondary recorded at a promotion, created as a primary: a new generation whose bitmap is the recorded one; as a secondary, a new one with none', () => {
    const promoted = { ...rec('secondary', 'g2', ['g1']), promotion: '2026-12-03T06:00:00Z' };
    expect(continueLineage('primary', promoted, 'n')).toEqual({ generations: { current: 'n', bitmap: 'g2', history: ['g2', 'g1'] }, inconsistent: false });
    // Given up: the volume may have been written as a primary's meanwhile.
    expect(continueLineage('secondary', promoted, 'n')).toEqual({ generations: { current: 'n', bitmap: '', history: ['g2', 'g1'] }, inconsistent: false });
    expect(() => continueLineage('primary', { ...promoted, consistent: false })).toThrow(expect.objectContaining({ code: 'FAILED_PRECONDITION' }));
    expect(() => continueLineage('primary', { ...rec('primary', 'g2'), promotion: 'x' })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('keeps at most the history a rotation keeps', () => {
    const long = Array.from({ length: 40 }, (_, i) => `h${i}`);
    expect(continueLineage('primary', rec('primary', 'g', long), 'n').generations.history).toHaveLength(32);
  });

  // What the peer does with a recreated side, through the handshake rules.
  describe('at the next handshake', () => {
    const g: GenerationIds = { current: 'g2', bitmap: '', history: ['g1'] };

    it('both sides recreated with their lineage: a full copy, not a refusal', () => {
      const a = continueLineage('primary', rec('primary', 'g2', ['g1'])).generations;
      const b = continueLineage('secondary', rec('secondary', 'g2', ['g1'])).generations;
      expect(handshakeVerdict(asSecondary(b), a)).toEqual({ kind: 'session', full: true });
    });

    it('the secondary recreated with its lineage under a primary that went on: a delta', () => {
      const b = continueLineage('secondary', rec('secondary', 'g2', ['g1'])).generations;
      expect(handshakeVerdict(asSecondary(b), g)).toEqual({ kind: 'session', full: false });
      // The primary wrote alone meanwhile: its dirty log covers g2.
      expect(handshakeVerdict(asSecondary(b), rotated(g, 'g3'))).toEqual({ kind: 'session', full: false });
    });

    it('a primary recreated without its lineage: refused as unrelated, saying both ways out', () => {
      const b = continueLineage('secondary', rec('secondary', 'g2', ['g1'])).generations;
      const v = handshakeVerdict(asSecondary(b), { current: 'fresh', bitmap: '', history: [] });
      expect(v).toMatchObject({ kind: 'refuse', verdict: 'unrelated' });
      expect(v.kind === 'refuse' && v.reason).toEqual(expect.stringContaining('--lineage'));
      expect(v.kind === 'refuse' && v.reason).toEqual(expect.stringContaining('spec.discardMyData: true'));
      expect(handshakeVerdict({ ...asSecondary(b), discardMyData: true }, { current: 'fresh', bitmap: '', history: [] })).toEqual({ kind: 'session', full: true });
    });

    it('promoted by deleting its pair (a CSI secondary): the old primary, demoted at that generation, takes a delta; one that went on alone is a split brain', () => {
      const a = continueLineage('primary', { ...rec('secondary', 'g2', ['g1']), promotion: '2026-12-03T06:00:00Z' }, 'a3').generations;
      expect(handshakeVerdict(asSecondary(g), a)).toEqual({ kind: 'session', full: false });
      expect(handshakeVerdict(asSecondary(rotated(g, 'b3')), a)).toMatchObject({ kind: 'refuse', verdict: 'split-brain' });
      // Without the marker (an ordinary record): a full copy.
      expect(handshakeVerdict(asSecondary(g), continueLineage('primary', rec('secondary', 'g2', ['g1']), 'a3').generations)).toEqual({ kind: 'session', full: true });
    });

    it('an old primary recreated as a secondary under the promoted one: a split brain, never a delta over writes nobody tracked', () => {
      const a = continueLineage('secondary', rec('primary', 'g2', ['g1'])).generations;
      const promotedB = rotated(g, 'b1');
      expect(handshakeVerdict(asSecondary(a), promotedB)).toMatchObject({ kind: 'refuse', verdict: 'split-brain' });
    });
  });
});
