import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import type { Attachment, ClaimInfo, VolumeInfo } from '../kube/kube-client.js';
import { VolumeLocator } from './volume-locator.js';

function locator(claim: ClaimInfo | undefined, pv: VolumeInfo | undefined, attachments: Attachment[] = []): VolumeLocator {
  return new VolumeLocator({
    getClaim: () => Promise.resolve(claim),
    getVolume: () => Promise.resolve(pv),
    attachmentsOf: () => Promise.resolve(attachments),
  });
}

const claim: ClaimInfo = { name: 'db', namespace: 'apps', volumeName: 'pv-1', phase: 'Bound' };

describe('VolumeLocator', () => {
  it('a local PV: its one node and its path', async () => {
    const r = await locator(claim, { name: 'pv-1', localPath: '/data/db.img', volumeMode: 'Block', affinityNodes: ['node-a'] }).locate('apps', 'db');
    expect(r).toEqual({ location: { pvName: 'pv-1', node: 'node-a', path: '/data/db.img' } });
  });

  it('a CSI PV: the attached node and where the kubelet stages it', async () => {
    const csi = { driver: 'ebs.csi.aws.com', volumeHandle: 'vol-123' };
    const attachments = [
      { node: 'node-x', attached: false },
      { node: 'node-b', attached: true },
    ];
    const fs = await locator(claim, { name: 'pv-1', csi, volumeMode: 'Filesystem', affinityNodes: [] }, attachments).locate('apps', 'db');
    const sha = createHash('sha256').update('vol-123').digest('hex');
    expect(fs).toEqual({ location: { pvName: 'pv-1', node: 'node-b', path: `/var/lib/kubelet/plugins/kubernetes.io/csi/ebs.csi.aws.com/${sha}/globalmount` } });
    const block = await locator(claim, { name: 'pv-1', csi, volumeMode: 'Block', affinityNodes: [] }, attachments).locate('apps', 'db');
    expect(block).toMatchObject({ location: { path: '/var/lib/kubelet/plugins/kubernetes.io/csi/volumeDevices/staging/pv-1' } });
  });

  it('says what is missing, and which failures are permanent', async () => {
    expect(await locator(undefined, undefined).locate('apps', 'db')).toMatchObject({ failure: { reason: 'ClaimNotFound', permanent: false } });
    expect(await locator({ ...claim, volumeName: undefined, phase: 'Pending' }, undefined).locate('apps', 'db')).toMatchObject({ failure: { reason: 'ClaimPending', permanent: false } });
    expect(await locator(claim, undefined).locate('apps', 'db')).toMatchObject({ failure: { reason: 'VolumeNotFound' } });
    const csi = { name: 'pv-1', csi: { driver: 'd', volumeHandle: 'h' }, volumeMode: 'Block' as const, affinityNodes: [] };
    expect(await locator(claim, csi, [{ node: 'n', attached: false }]).locate('apps', 'db')).toMatchObject({ failure: { reason: 'VolumeNotAttached', permanent: false } });
    expect(await locator(claim, { name: 'pv-1', volumeMode: 'Filesystem', affinityNodes: [] }).locate('apps', 'db')).toMatchObject({ failure: { reason: 'UnsupportedVolume', permanent: true } });
    expect(await locator(claim, { name: 'pv-1', localPath: '/d', volumeMode: 'Block', affinityNodes: ['a', 'b'] }).locate('apps', 'db')).toMatchObject({ failure: { reason: 'UnsupportedVolume', permanent: true } });
  });
});
