import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import type { Attachment, ClaimInfo, VolumeInfo } from '../kube/kube-client.js';
import { VolumeLocator } from './volume-locator.js';

function locator(claim: ClaimInfo | undefined, pv: VolumeInfo | undefined, attachments: Attachment[] = [], classes: Record<string, Record<string, string>> = {}): VolumeLocator {
  return new VolumeLocator({
    getClaim: () => Promise.resolve(claim),
    getVolume: () => Promise.resolve(pv),
    attachmentsOf: () => Promise.resolve(attachments),
    storageClassParameters: (name) => Promise.resolve(classes[name]),
  });
}

const claim: ClaimInfo = { name: 'db', namespace: 'apps', volumeName: 'pv-1', phase: 'Bound' };

describe('VolumeLocator', () => {
  it('a local PV: its one node and its path', async () => {
    const r = await locator(claim, { name: 'pv-1', localPath: '/data/db.img', volumeMode: 'Block', affinityNodes: ['node-a'] }).locate('apps', 'db');
    expect(r).toEqual({ location: { pvName: 'pv-1', node: 'node-a', path: '/data/db.img' } });
  });

  it('a CSI PV: the attached node and where the kubelet stages it', async () => {
    const csi = { driver: 'ebs.csi.aws.com', volumeHandle: 'vol-123', volumeAttributes: {} };
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
    const csi = { name: 'pv-1', csi: { driver: 'd', volumeHandle: 'h', volumeAttributes: {} }, volumeMode: 'Block' as const, affinityNodes: [] };
    expect(await locator(claim, csi, [{ node: 'n', attached: false }]).locate('apps', 'db')).toMatchObject({ failure: { reason: 'VolumeNotAttached', permanent: false } });
    expect(await locator(claim, { name: 'pv-1', volumeMode: 'Filesystem', affinityNodes: [] }).locate('apps', 'db')).toMatchObject({ failure: { reason: 'UnsupportedVolume', permanent: true } });
    expect(await locator(claim, { name: 'pv-1', localPath: '/d', volumeMode: 'Block', affinityNodes: ['a', 'b'] }).locate('apps', 'db')).toMatchObject({ failure: { reason: 'UnsupportedVolume', permanent: true } });
  });

  it('finds the splice opt-in in the volume_context the CSI proxy reads, else in the StorageClass', async () => {
    const attachments = [{ node: 'node-b', attached: true }];
    const csi = (volumeAttributes: Record<string, string>): VolumeInfo => ({ name: 'pv-1', csi: { driver: 'd', volumeHandle: 'h', volumeAttributes }, volumeMode: 'Filesystem', affinityNodes: [], storageClassName: 'plain' });
    expect(await locator(claim, csi({ 'blockmirror.io/replicate': 'True ' }), attachments).locate('apps', 'db')).toMatchObject({
      location: { spliceOptIn: "PersistentVolume pv-1's volume attribute blockmirror.io/replicate" },
    });
    const local = (storageClassName?: string): VolumeInfo => ({ name: 'pv-1', localPath: '/dev/loop3', volumeMode: 'Block', affinityNodes: ['node-a'], ...(storageClassName ? { storageClassName } : {}) });
    const classes = { spliced: { 'blockmirror.io/replicate': 'true' }, plain: { 'blockmirror.io/replicate': 'false' } };
    expect(await locator(claim, local('spliced'), [], classes).locate('apps', 'db')).toMatchObject({ location: { spliceOptIn: "StorageClass spliced's parameter blockmirror.io/replicate" } });
    // Not opting in: "false", no parameter, no class, a class since deleted.
    for (const pv of [local('plain'), local(), local('deleted'), csi({ 'blockmirror.io/replicate': 'false' })]) {
      const r = await locator(claim, pv, attachments, classes).locate('apps', 'db');
      expect(r).toHaveProperty('location');
      expect(r).not.toHaveProperty('location.spliceOptIn');
    }
  });
});
