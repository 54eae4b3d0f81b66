import { describe, expect, it } from '@jest/globals';
import type { LeaseRecord } from '../kube/kube-client.js';
import { SidecarDirectory } from './sidecar-directory.js';
import { CONTROL_ANNOTATION, PEER_ANNOTATION } from './sidecar-lease.js';

const now = Date.parse('2026-01-01T00:00:00Z');

function lease(renewedAgoMs: number, annotations: Record<string, string> = { [CONTROL_ANNOTATION]: '10.0.0.5:7400', [PEER_ANNOTATION]: '10.0.0.5:7401' }): LeaseRecord {
  return { name: 'blockmirror-sidecar-node-a', namespace: 'ns', labels: {}, annotations, leaseDurationSeconds: 40, renewTime: new Date(now - renewedAgoMs) };
}

function directory(leases: LeaseRecord[], selectors: string[] = []): SidecarDirectory {
  return new SidecarDirectory(
    {
      listLeases: (_ns, selector) => {
        selectors.push(selector);
        return Promise.resolve(leases);
      },
    },
    'ns',
    () => now,
  );
}

describe('SidecarDirectory', () => {
  it("finds a node's live sidecar by its lease labels", async () => {
    const selectors: string[] = [];
    expect(await directory([lease(5_000)], selectors).forNode('node-a')).toEqual({ found: { node: 'node-a', control: '10.0.0.5:7400', peer: '10.0.0.5:7401' } });
    expect(selectors).toEqual(['app.kubernetes.io/component=sidecar,blockmirror.io/node=node-a']);
  });

  it('treats an expired or incomplete registration as missing, saying why', async () => {
    expect(await directory([]).forNode('node-a')).toEqual({ missing: 'no blockmirror sidecar is registered on node node-a' });
    expect(await directory([lease(41_000)]).forNode('node-a')).toMatchObject({ missing: expect.stringContaining('has not renewed its registration') as unknown as string });
    expect(await directory([lease(1_000, {})]).forNode('node-a')).toMatchObject({ missing: expect.stringContaining(CONTROL_ANNOTATION) as unknown as string });
  });
});
