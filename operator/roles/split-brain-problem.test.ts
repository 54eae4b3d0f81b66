import { describe, expect, it } from '@jest/globals';
import type { Pair__Output } from '../../proto/gen/blockmirror/control/v1/Pair.js';
import { pairToJson } from '../../sidecar/control/pair-json.js';
import { FINALIZER, type ReplicationPair } from '../api/replication-pair.js';
import { splitBrainProblem } from './split-brain-problem.js';

const pair: ReplicationPair = {
  apiVersion: 'blockmirror.io/v1alpha1',
  kind: 'ReplicationPair',
  metadata: { name: 'db', namespace: 'apps', finalizers: [FINALIZER] },
  spec: { pvcName: 'db-data', role: 'primary', mode: 'sync' },
};

const json = pairToJson({ spec: { name: 'apps.db', role: 'ROLE_SECONDARY' }, status: { generation: 'g1', peerGeneration: 'g9', lastError: 'split brain' } } as unknown as Pair__Output);

describe('splitBrainProblem', () => {
  it('names both generations and the patch that resolves it, and is looked at again', () => {
    const p = splitBrainProblem(pair, json, 1000);
    expect(p).toMatchObject({ reason: 'SplitBrain', permanent: false, recheckAfterMs: 1000 });
    expect(p.message).toMatch(/^split brain: this side \(secondary\) holds generation g1, its peer g9;/);
    expect(p.message).toContain(`kubectl patch rp db -n apps --type=merge -p '{"spec":{"role":"secondary","discardMyData":true,"forcePromote":null}}'`);
  });
});
