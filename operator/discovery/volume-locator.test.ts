import { describe, expect, it } from '@jest/globals';
import type { Attachment, ClaimInfo, ClaimUser, VolumeInfo } from '../kube/kube-client.js';
import { VolumeLocator } from './volume-locator.js';

function locator(claim: ClaimInfo | undefined, pv: VolumeInfo | undefined, attachments: Attachment[] = [], classes: Record<string, Record<string, string>> = {}, pods: ClaimUser[] = []): VolumeLocator {
  return new VolumeLocator({
    getClaim: () => Promise.resolve(claim),
    getVolume: () => Promise.resolve(pv),
    attachmentsOf: () => Promise.resolve(attachments),
    storageClassParameters: (name) => Promise.resolve(classes[name]),
    podsUsingClaim: () => Promise.resolve(pods),
  });
}

const claim: ClaimInfo = { name: 'db', namespace: 'apps', volumeName: 'pv-1', phase: 'Bound' };

describe('VolumeLocator', () => {
  it('a local PV: its one node and its path', async () => {
    const r = await locator(claim, { name: 'pv-1', localPath: '/data/db.img', volumeMode: 'Block', affinityNodes: ['node-a'] }).locate('apps', 'db');
    expect(r).toEqual({ location: { pvName: 'pv-1', node: 'node-a', path: '/data/db.img', usedBy: [] } });
    const used = await locator(claim, { name: 'pv-1', localPath: '/data/db.img', volumeMode: 'Block', affinityNodes: ['node-a'] }, [], {}, [{ namespace: 'apps', name: 'db-0', node: 'node-a' }]).locate('apps', 'db');
    expect(used).toMatchObject({ location: { usedBy: ['apps/db-0'] } });
  });

  it('a CSI PV: the attached node, and the splice name of its volume id, never a kubelet path', async () => {
    const csi = { driver: 'ebs.csi.aws.com', volumeHandle: 'vol-123', volumeAttributes: {} };
    const attachments = [
      { node: 'node-x', attached: false },
      { node: 'node-b', attached: true },
    ];
    const fs = await locator(claim, { name: 'pv-1', csi, volumeMode: 'Filesystem', affinityNodes: [] }, attachments).locate('apps', 'db');
    expect(fs).toEqual({ location: { pvName: 'pv-1', node: 'node-b', csi: { driver: 'ebs.csi.aws.com', volumeHandle: 'vol-123', splicePv: 'vol-123', volumeMode: 'Filesystem' }, usedBy: [] } });
    // An id that is no device-mapper name: the CSI proxy's hashed name.
    const odd = await locator(claim, { name: 'pv-1', csi: { ...csi, volumeHandle: 'Vol/123' }, volumeMode: 'Block', affinityNodes: [] }, attachments).locate('apps', 'db');
    expect(odd).toMatchObject({ location: { csi: { splicePv: expect.stringMatching(/^v-[0-9a-f]{20}$/), volumeMode: 'Block' } } });
  });

  it('a CSI PV of a driver without attach: the node of a pod scheduled with the claim', async () => {
    const csi = { driver: 'lvm.csi', volumeHandle: 'lv-1', volumeAttributes: {} };
    const pods = [
      { namespace: 'apps', name: 'db-0' },
      { namespace: 'apps', name: 'db-1', node: 'node-c' },
    ];
    const r = await locator(claim, { name: 'pv-1', csi, volumeMode: 'Filesystem', affinityNodes: [] }, [], {}, pods).locate('apps', 'db');
    expect(r).toMatchObject({ location: { node: 'node-c', usedBy: ['apps/db-0', 'apps/db-1'] } });
    const unscheduled = await locator(claim, { name: 'pv-1', csi, volumeMode: 'Filesystem', affinityNodes: [] }, [], {}, [pods[0]!]).locate('apps', 'db');
    expect(unscheduled).toMatchObject({ failure: { reason: 'VolumeNotAttached', permanent: false } });
  });

  it('says what is missing, and which failures are permanent', async () => {
    expect(await locator(undefined, undefined).locate('apps', 'db')).toMatchObject({ failure: { reason: 'ClaimNotFound', permanent: false } });
    expect(await locator({ ...claim, volumeName: undefined, phase: 'Pending' }, undefined).locate('apps', 'db')).toMatchObject({ failure: { reason: 'ClaimPending', permanent: false } });
    expect(await locator(claim, undefined).locate('apps', 'db')).toMatchObject({ failure: { reason: 'VolumeNotFound' } });
    const csi = { name: 'pv-1', csi: { driver: 'd', volumeHandle: 'h', volumeAttributes: {} }, volumeMode: 'Block' as const, affinityNodes: [] };
    // Not on a node yet, but what it is travels along: a fenced secondary places it itself.
    expect(await locator(claim, csi, [{ node: 'n', attached: false }]).locate('apps', 'db')).toEqual({
      failure: { reason: 'VolumeNotAttached', message: expect.any(String) as unknown as string, permanent: false },
      unplaced: { pvName: 'pv-1', csi: { driver: 'd', volumeHandle: 'h', splicePv: 'h', volumeMode: 'Block' } },
    });
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
