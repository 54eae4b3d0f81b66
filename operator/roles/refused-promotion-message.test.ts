import { describe, expect, it } from '@jest/globals';
import type { Pair__Output } from '../../proto/gen/blockmirror/control/v1/Pair.js';
import { pairToJson } from '../../sidecar/control/pair-json.js';
import { FINALIZER, type ReplicationPair } from '../api/replication-pair.js';
import { refusedPromotionMessage } from './refused-promotion-message.js';

const pair = (mode: 'sync' | 'async'): ReplicationPair => ({
  apiVersion: 'blockmirror.io/v1alpha1',
  kind: 'ReplicationPair',
  metadata: { name: 'db', namespace: 'apps', finalizers: [FINALIZER] },
  spec: { pvcName: 'db-data', role: 'primary', mode },
});

const json = (status: Record<string, unknown>) => pairToJson({ spec: { name: 'apps.db', role: 'ROLE_SECONDARY' }, status: { generation: 'g1', ...status } } as unknown as Pair__Output);
const PATCH = 'kubectl patch rp db -n apps --type=merge -p \'{"spec":{"forcePromote":true}}\'';

describe('refusedPromotionMessage', () => {
  it('a refusal force cannot overcome, or one already forced, only says it is tried again', () => {
    expect(refusedPromotionMessage(pair('sync'), json({ primaryDemoted: true }), 'a resync is under way', false, PATCH)).toBe('not promoted: a resync is under way. The operator tries again.');
    expect(refusedPromotionMessage(pair('sync'), json({}), 'no consistent image', true, PATCH)).toBe('not promoted: no consistent image. The operator tries again.');
  });

  it('a primary that did not demote: how to force it, and what is lost in each mode', () => {
    const sync = refusedPromotionMessage(pair('sync'), json({}), 'the primary has not demoted', false, PATCH);
    expect(sync).toContain(`force it: ${PATCH}.`);
    expect(sync).toContain('Lost then: the writes the old primary acknowledged after it lost the link to this side');
    const async = refusedPromotionMessage(pair('async'), json({ lastConsistencyPointTimeMs: 1_700_000_000_000 }), 'the primary has not demoted', false, PATCH);
    expect(async).toContain('after the consistency point this side holds (2023-11-14T22:13:20.000Z)');
  });
});
