import { describe, expect, it } from '@jest/globals';
import type { Pair__Output } from '../../proto/gen/blockmirror/control/v1/Pair.js';
import { FINALIZER, type ReplicationPair } from '../api/replication-pair.js';
import { roleFacts } from './role-facts.js';

const pair: ReplicationPair = {
  apiVersion: 'blockmirror.io/v1alpha1',
  kind: 'ReplicationPair',
  metadata: { name: 'db', namespace: 'apps', finalizers: [FINALIZER] },
  spec: { pvcName: 'db-data', role: 'secondary', mode: 'sync', discardMyData: true },
  status: { appliedRole: 'primary' },
};

const held = (role: string, status: Record<string, unknown> = {}): Pair__Output => ({ spec: { name: 'apps.db', role }, status: { state: 'PAIR_STATE_RETRYING', ...status } }) as unknown as Pair__Output;

describe('roleFacts', () => {
  it('reads the spec, the role last carried out and what the sidecar holds', () => {
    expect(roleFacts(pair, held('ROLE_PRIMARY'))).toEqual({
      wanted: 'secondary',
      applied: 'primary',
      held: 'primary',
      state: 'Retrying',
      sidecarDiscarding: false,
      unrelated: false,
      forcePromote: false,
      discardMyData: true,
    });
  });

  it("takes the sidecar's unrelated-data refusal and its pending discard", () => {
    const f = roleFacts(pair, held('ROLE_SECONDARY', { lastError: 'unrelated data: no common generation', peerVerdict: 'unrelated', discardMyData: true }));
    expect(f).toMatchObject({ held: 'secondary', unrelated: true, sidecarDiscarding: true });
    // The verdict decides, not the wording of the message.
    expect(roleFacts(pair, held('ROLE_SECONDARY', { lastError: 'unrelated data: no common generation' })).unrelated).toBe(false);
  });
});
