import { describe, expect, it } from '@jest/globals';
import type { PairJson } from '../../sidecar/control/pair-json.js';
import { buildStatus } from '../status/pair-status.js';
import { UNRELATED_DATA, unrelatedDataEvent, unrelatedDataMessage } from './unrelated-data.js';

const pair = (over: Partial<PairJson>): PairJson =>
  ({ role: 'secondary', state: 'Retrying', outOfSyncBytes: 0, resyncProgressPercent: 0, lastInSyncTime: null, lastConsistencyPointTime: null, nbdAddress: '', lastError: 'unrelated data: …', rpoSeconds: 0, generation: 'g1', peerGeneration: 'x9', peerVerdict: 'unrelated', discardMyData: false, ...over }) as PairJson;

describe('unrelated data', () => {
  it('names the field to set on which side, on both sides', () => {
    expect(unrelatedDataMessage(pair({}))).toContain('set spec.discardMyData: true on this ReplicationPair');
    expect(unrelatedDataMessage(pair({ role: 'primary' }))).toContain("set spec.discardMyData: true on the secondary's ReplicationPair (spec.remote of this one");
    expect(unrelatedDataMessage(pair({ peerVerdict: 'split-brain' }))).toBeUndefined();
    // Chosen already: the overwrite is under way.
    expect(unrelatedDataMessage(pair({ discardMyData: true }))).toBeUndefined();
  });

  it('shows as Synchronized=False and Degraded=True with reason UnrelatedData, and one Warning event when it starts', () => {
    const now = new Date('2026-12-02T16:00:00Z');
    const first = buildStatus(undefined, { generation: 3, mode: 'sync', pair: pair({}) }, now);
    const byType = Object.fromEntries((first.conditions ?? []).map((c) => [c.type, c]));
    expect(byType.Synchronized).toMatchObject({ status: 'False', reason: UNRELATED_DATA, observedGeneration: 3 });
    expect(byType.Degraded).toMatchObject({ status: 'True', reason: UNRELATED_DATA });
    // The sidecar pair exists and is served: only the data is in question.
    expect(byType.Ready).toMatchObject({ status: 'True' });
    expect(unrelatedDataEvent(undefined, first)).toMatchObject({ type: 'Warning', reason: UNRELATED_DATA, message: expect.stringContaining('spec.discardMyData: true') as unknown });
    const again = buildStatus(first, { generation: 3, mode: 'sync', pair: pair({}) }, new Date(now.getTime() + 5000));
    expect(unrelatedDataEvent(first, again)).toBeUndefined();
    expect(again.conditions?.find((c) => c.type === 'Synchronized')?.lastTransitionTime).toBe(now.toISOString());
    const healed = buildStatus(again, { generation: 3, mode: 'sync', pair: pair({ peerVerdict: '', state: 'InSync', lastError: '' }) }, now);
    expect(healed.conditions?.find((c) => c.type === 'Synchronized')).toMatchObject({ status: 'True' });
  });
});
