import { describe, expect, it } from '@jest/globals';
import type { PairJson } from '../../sidecar/control/pair-json.js';
import { continueLineage } from '../../sidecar/replication/lineage/continue-lineage.js';
import type { GenerationIds } from '../../sidecar/replication/lineage/generation-ids.js';
import { handshakeVerdict } from '../../sidecar/replication/lineage/handshake-verdict.js';
import { liveLineage } from './live-lineage.js';

const pair = (over: Partial<PairJson>): PairJson => ({ role: 'secondary', generation: 'g1', historyGenerations: [], dirtyBlocks: 0, consistent: true, ...over }) as PairJson;

/** What a pair recreated as `role` from `record` gets from a primary holding `primary` (the next handshake). */
function recreatedAsSecondary(record: ReturnType<typeof liveLineage>, primary: GenerationIds): string {
  const c = continueLineage('secondary', record!, 'g-new');
  const v = handshakeVerdict({ role: 'secondary', generations: c.generations, discardMyData: false }, primary);
  return v.kind === 'session' ? (v.full ? 'full copy' : 'delta') : v.kind === 'refuse' ? v.verdict : v.kind;
}

describe('liveLineage', () => {
  it('records nothing before a complete image, a primary as a complete image of its generation', () => {
    expect(liveLineage(pair({ generation: '' }))).toBeNull();
    expect(liveLineage(pair({ role: 'primary', generation: 'g2', historyGenerations: ['g1'], consistent: false }))).toEqual({ role: 'primary', generation: 'g2', history: ['g1'], consistent: true });
  });

  it('never records a secondary as a complete image: a resync may start right after its status was read', () => {
    const l = liveLineage(pair({ consistent: true }));
    expect(l).toEqual({ role: 'secondary', generation: 'g1', history: [], consistent: false });
    // Recreated from it after its state dir is lost: a delta from a primary covering g1,
    // and not promotable until that completes.
    expect(recreatedAsSecondary(l, { current: 'g2', bitmap: 'g1', history: ['g1'] })).toBe('delta');
    expect(continueLineage('secondary', l!).inconsistent).toBe(true);
    expect(() => continueLineage('primary', l!, 'g-new')).toThrow(/middle of a resync/);
  });

  it('records a secondary holding divergent blocks (a demoted primary) as a primary: recreated, it never takes a delta that would leave them behind', () => {
    // A was the primary of g1 and wrote blocks B never confirmed; B was promoted (g2, bitmap g1).
    const l = liveLineage(pair({ dirtyBlocks: 64 }));
    expect(l).toEqual({ role: 'primary', generation: 'g1', history: [], consistent: true });
    const asSecondary = recreatedAsSecondary(l, { current: 'g2', bitmap: 'g1', history: ['g1'] });
    expect(asSecondary).not.toBe('delta');
    expect(asSecondary).toBe('split-brain');
    // Recorded as a plain secondary it would have taken B's delta, A's blocks left behind:
    expect(recreatedAsSecondary({ role: 'secondary', generation: 'g1', history: [], consistent: false }, { current: 'g2', bitmap: 'g1', history: ['g1'] })).toBe('delta');
  });

  it('before a promotion, records the side as a primary, keeping whether its image is complete', () => {
    expect(liveLineage(pair({}), { promoting: true })).toEqual({ role: 'primary', generation: 'g1', history: [], consistent: true });
    // Mid-resync: no image, so no pair may continue it as a primary's data.
    expect(liveLineage(pair({ consistent: false }), { promoting: true })).toEqual({ role: 'primary', generation: 'g1', history: [], consistent: false });
  });
});
