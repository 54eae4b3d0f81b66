import { describe, expect, it } from '@jest/globals';
import { createLogger, transports } from 'winston';
import type { FencedVolume__Output } from '../../proto/gen/blockmirror/control/v1/FencedVolume.js';
import { FINALIZER, type ReplicationPair } from '../api/replication-pair.js';
import type { SidecarLookup } from '../discovery/sidecar-directory.js';
import type { ClaimUser, EventRecord, PodInfo, PodManifest } from '../kube/kube-client.js';
import { FencedSecondary, type FenceControl, type FencedVolume } from './fenced-secondary.js';
import { holderPodName } from './holder-pod.js';

const logger = createLogger({ silent: true, transports: [new transports.Console()] });

const pair: ReplicationPair = {
  apiVersion: 'blockmirror.io/v1alpha1',
  kind: 'ReplicationPair',
  metadata: { name: 'db', namespace: 'apps', uid: 'uid-1', generation: 1, finalizers: [FINALIZER] },
  spec: { pvcName: 'db-data', role: 'secondary', mode: 'sync' },
};
const vol: FencedVolume = { pvName: 'pvc-123', claim: 'db-data', splicePv: 'vol-123', driver: 'lab.csi.blockmirror.io', volumeMode: 'Filesystem' };
const HOLDER = holderPodName(pair);

/** One node's sidecar: its fences as the CSI proxy left them. */
class FakeFences implements FenceControl {
  readonly fences = new Map<string, FencedVolume__Output>();
  unreachable = false;
  constructor(readonly node: string, readonly calls: string[]) {}

  fenceVolume(pv: string, pairRef: string, volume: string): Promise<FencedVolume__Output> {
    this.calls.push(`fence ${this.node} ${pv} ${pairRef} ${volume}`);
    if (this.unreachable) return Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { grpcCode: 14 }));
    const had = this.fences.get(pv);
    if (had !== undefined && had.pair !== pairRef) return Promise.reject(Object.assign(new Error(`volume ${volume} is already fenced as the secondary of replication pair ${had.pair}`), { grpcCode: 6 }));
    const r = had ?? { pv, pair: pairRef, hold: '', device: '', volume };
    this.fences.set(pv, r);
    return Promise.resolve(r);
  }

  unfenceVolume(pv: string): Promise<void> {
    this.calls.push(`unfence ${this.node} ${pv}`);
    this.fences.delete(pv);
    return Promise.resolve();
  }

  /** What the node's CSI proxy reports. */
  hold(hold: string, device = ''): void {
    const r = this.fences.get(vol.splicePv)!;
    this.fences.set(vol.splicePv, { ...r, hold, device });
  }
}

function rig(nodes: string[] = ['node-a', 'node-b'], dead: string[] = []) {
  const calls: string[] = [];
  const sidecars = new Map(nodes.map((n) => [n, new FakeFences(n, calls)]));
  const pods = new Map<string, PodInfo>();
  const created: PodManifest[] = [];
  const users: ClaimUser[] = [];
  const events: EventRecord[] = [];
  let current = pair;
  const fenced = new FencedSecondary({
    sidecars: () =>
      Promise.resolve(
        new Map<string, SidecarLookup>([
          ...nodes.map((n): [string, SidecarLookup] => [n, { found: { node: n, control: `${n}:7400`, peer: `${n}:7401`, splice: { capable: false, reason: 'no device-mapper' } } }]),
          ...dead.map((n): [string, SidecarLookup] => [n, { missing: `the sidecar on node ${n} has not renewed its registration` }]),
        ]),
      ),
    control: (endpoint) => sidecars.get(endpoint.replace(/:7400$/, ''))!,
    pods: {
      getPod: (_ns, name) => Promise.resolve(pods.get(name)),
      createPod: (pod) => {
        calls.push(`create pod ${pod.metadata!.name!}`);
        created.push(pod);
        pods.set(pod.metadata!.name!, { namespace: 'apps', name: pod.metadata!.name!, deleting: false, labels: pod.metadata!.labels ?? {}, phase: 'Pending' });
        return Promise.resolve();
      },
      deletePod: (_ns, name) => {
        calls.push(`delete pod ${name}`);
        const p = pods.get(name);
        if (p !== undefined) pods.set(name, { ...p, deleting: true });
        return Promise.resolve();
      },
      podsUsingClaim: () => Promise.resolve([...users, ...[...pods.values()].filter((p) => !p.deleting)]),
    },
    holder: { image: 'localhost/blockmirror/sidecar:t1', pullPolicy: 'Never' },
    event: (_p, e) => {
      events.push(e);
      return Promise.resolve();
    },
    logger,
    pollMs: 1000,
  });
  /** The kubelet schedules the holder pod on `node` (and starts it). */
  const schedule = (node: string, phase = 'Running'): void => {
    pods.set(HOLDER, { ...pods.get(HOLDER)!, node, phase });
  };
  return {
    fenced,
    calls,
    sidecars,
    pods,
    created,
    users,
    events,
    schedule,
    get pair() {
      return current;
    },
    set pair(p: ReplicationPair) {
      current = p;
    },
  };
}

describe('FencedSecondary', () => {
  it("fences the volume on every node's sidecar before it makes the holder pod, then waits for it", async () => {
    const r = rig();
    const p = await r.fenced.place(pair, vol);
    expect(r.calls).toEqual(['fence node-a vol-123 apps/db pvc-123', 'fence node-b vol-123 apps/db pvc-123', `create pod ${HOLDER}`]);
    expect(p.fence).toEqual({ volume: 'pvc-123', pv: 'vol-123', fencedNodes: ['node-a', 'node-b'], holderPod: HOLDER });
    expect(p.problem).toMatchObject({ reason: 'Staging', message: `waiting for holder pod ${HOLDER} to stage volume pvc-123 on its node`, permanent: false, recheckAfterMs: 1000, notReplicating: true });
    expect(r.events).toEqual([expect.objectContaining({ type: 'Normal', reason: 'HolderCreated' })]);

    // The holder: the claim read-only, nothing of the cluster's, owned by the pair.
    const pod = r.created[0]!;
    expect(HOLDER).toMatch(/^blockmirror-secondary-[0-9a-f]{10}$/);
    expect(pod.metadata).toMatchObject({
      namespace: 'apps',
      labels: { 'app.kubernetes.io/component': 'secondary-holder', 'blockmirror.io/secondary-of': 'db' },
      ownerReferences: [{ apiVersion: 'blockmirror.io/v1alpha1', kind: 'ReplicationPair', name: 'db', uid: 'uid-1', controller: true }],
    });
    expect(pod.spec!.volumes).toEqual([{ name: 'secondary', persistentVolumeClaim: { claimName: 'db-data', readOnly: true } }]);
    const c = pod.spec!.containers[0]!;
    expect(c).toMatchObject({ image: 'localhost/blockmirror/sidecar:t1', imagePullPolicy: 'Never', volumeMounts: [{ name: 'secondary', mountPath: '/secondary', readOnly: true }] });
    expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(pod.spec).toMatchObject({ automountServiceAccountToken: false, securityContext: { runAsNonRoot: true } });

    // Scheduled, not yet staged: still waiting, and the fences are ensured again.
    r.schedule('node-b', 'Pending');
    expect((await r.fenced.place(pair, vol)).problem).toMatchObject({ reason: 'Staging', message: expect.stringContaining('on node node-b (Pending)') as unknown as string });
    expect(r.calls.filter((x) => x.startsWith('create'))).toHaveLength(1);
  });

  it('fences a demoting primary\'s volume on every node and says who still uses the claim, making no holder pod', async () => {
    const r = rig(['node-a', 'node-b'], ['node-c']);
    r.users.push({ namespace: 'apps', name: 'db-0', node: 'node-a', phase: 'Running' });
    const d = await r.fenced.fenceForDemotion(r.pair, vol);
    expect(d).toEqual({ fence: { volume: 'pvc-123', pv: 'vol-123', fencedNodes: ['node-a', 'node-b'] }, users: [{ namespace: 'apps', name: 'db-0', node: 'node-a', phase: 'Running' }] });
    expect(r.calls).toEqual(['fence node-a vol-123 apps/db pvc-123', 'fence node-b vol-123 apps/db pvc-123']);
    // A node not told yet: said, not ignored.
    r.sidecars.get('node-b')!.unreachable = true;
    expect((await r.fenced.fenceForDemotion(r.pair, vol)).problem).toMatchObject({ reason: 'FenceIncomplete' });
  });

  it("places the pair where the holder's node holds the raw device", async () => {
    const r = rig();
    await r.fenced.place(pair, vol);
    r.schedule('node-b');
    r.sidecars.get('node-b')!.hold('held', '/dev/loop7');
    const p = await r.fenced.place(pair, vol);
    expect(p.problem).toBeUndefined();
    expect(p.held).toEqual({ node: 'node-b', device: '/dev/loop7' });
    expect(p.fence).toMatchObject({ node: 'node-b', device: '/dev/loop7', holderPod: HOLDER });
  });

  it('a Block volume gets its holder a device, not a mount', async () => {
    const r = rig();
    await r.fenced.place(pair, { ...vol, volumeMode: 'Block' });
    const c = r.created[0]!.spec!.containers[0]!;
    expect(c.volumeDevices).toEqual([{ name: 'secondary', devicePath: '/dev/secondary' }]);
    expect(c.volumeMounts).toBeUndefined();
  });

  it('a pod running with the volume from before the fence holds the pair back (SecondaryInUse), once warned; one on a node that holds it fenced does not', async () => {
    const r = rig();
    r.users.push({ namespace: 'apps', name: 'old-writer', node: 'node-a', phase: 'Running' }, { namespace: 'apps', name: 'refused', node: 'node-a', phase: 'Pending' });
    const p = await r.fenced.place(pair, vol);
    expect(p.problem).toMatchObject({ reason: 'SecondaryInUse', notReplicating: true, recheckAfterMs: 1000 });
    expect(p.problem!.message).toContain('pod(s) apps/old-writer on node node-a use it mounted since before its fence: volume pvc-123 of claim db-data is this pair');
    expect(r.calls.filter((x) => x.startsWith('create'))).toEqual([]);
    expect(r.events).toEqual([expect.objectContaining({ type: 'Warning', reason: 'SecondaryInUse' })]);
    // Known from the condition: not warned again.
    const known = { ...pair, status: { conditions: [{ type: 'Ready', status: 'False' as const, reason: 'SecondaryInUse', message: '', lastTransitionTime: '' }] } };
    await r.fenced.place(known, vol);
    expect(r.events).toHaveLength(1);

    // A pod on a node whose proxy holds the volume fenced was given a placeholder: not a writer.
    r.users.splice(0);
    await r.fenced.place(pair, vol);
    r.schedule('node-a');
    r.sidecars.get('node-a')!.hold('held', '/dev/loop3');
    r.users.push({ namespace: 'apps', name: 'reader', node: 'node-a', phase: 'Running' });
    expect((await r.fenced.place(pair, vol)).held).toEqual({ node: 'node-a', device: '/dev/loop3' });
  });

  it('a holder given a staging made before the fence is deleted so that the volume is staged again, fenced — unless pods there keep that staging', async () => {
    const r = rig();
    await r.fenced.place(pair, vol);
    r.schedule('node-a');
    r.sidecars.get('node-a')!.hold('staged-unfenced');
    r.users.push({ namespace: 'apps', name: 'waiting', node: 'node-a', phase: 'Pending' });
    const held = await r.fenced.place(pair, vol);
    expect(held.problem).toMatchObject({ reason: 'SecondaryInUse', message: expect.stringContaining('pod(s) apps/waiting on node node-a keep it staged for writing on node node-a since before its fence') as unknown as string });
    expect(r.calls.filter((x) => x.startsWith('delete'))).toEqual([]);

    r.users.splice(0);
    const restage = await r.fenced.place(pair, vol);
    expect(restage.problem).toMatchObject({ reason: 'Staging' });
    expect(r.calls.filter((x) => x.startsWith('delete'))).toEqual([`delete pod ${HOLDER}`]);
    expect(r.events.map((e) => e.reason)).toEqual(['HolderCreated', 'SecondaryInUse', 'Restaging']);
    // While it goes, nothing else happens; once gone, a new one is made.
    expect((await r.fenced.place(pair, vol)).problem?.message).toContain('is being deleted');
    r.pods.delete(HOLDER);
    r.sidecars.get('node-a')!.hold('');
    await r.fenced.place(pair, vol);
    expect(r.calls.filter((x) => x.startsWith('create'))).toHaveLength(2);
  });

  it('a live sidecar that cannot be told stops the pair from going on (FenceIncomplete); a dead one is passed over', async () => {
    const r = rig(['node-a', 'node-b'], ['node-c']);
    r.sidecars.get('node-b')!.unreachable = true;
    const p = await r.fenced.place(pair, vol);
    expect(p.problem).toMatchObject({ reason: 'FenceIncomplete', message: expect.stringContaining('node(s) node-b (connect ECONNREFUSED)') as unknown as string });
    expect(r.calls.filter((x) => x.startsWith('create'))).toEqual([]);
    r.sidecars.get('node-b')!.unreachable = false;
    const q = await r.fenced.place(pair, vol);
    expect(q.fence.fencedNodes).toEqual(['node-a', 'node-b']);
    expect(r.calls.filter((x) => x.startsWith('create'))).toHaveLength(1);
  });

  it('a volume fenced for another pair is refused, and nothing is made', async () => {
    const r = rig(['node-a']);
    await r.sidecars.get('node-a')!.fenceVolume('vol-123', 'apps/other', 'pvc-123');
    const p = await r.fenced.place(pair, vol);
    expect(p.problem).toMatchObject({ reason: 'VolumeFencedByOther', permanent: true, message: 'volume pvc-123 is already fenced as the secondary of replication pair apps/other: a volume is the secondary of one pair only' });
    expect(r.calls.filter((x) => x.startsWith('create'))).toEqual([]);
  });

  it("says so when the holder runs but no CSI proxy on its node holds the volume (the driver is not wrapped)", async () => {
    const r = rig();
    await r.fenced.place(pair, vol);
    r.schedule('node-b');
    const p = await r.fenced.place(pair, vol);
    expect(p.problem).toMatchObject({
      reason: 'NotFenced',
      message: `holder pod ${HOLDER} runs on node node-b but no blockmirror CSI proxy there holds volume pvc-123: check that the chart's csiProxy.drivers names driver lab.csi.blockmirror.io and that the node's blockmirror sidecar pod runs`,
    });
    expect(r.events.filter((e) => e.type === 'Warning').map((e) => e.reason)).toEqual(['NotFenced']);
  });

  it('release: the holder pod first, the fences on every node only once it is gone', async () => {
    const r = rig(['node-a', 'node-b'], ['node-c']);
    await r.fenced.place(pair, vol);
    r.schedule('node-a');
    r.calls.length = 0;
    expect(await r.fenced.release(pair, { pv: 'vol-123', volume: 'pvc-123' })).toBe('waiting');
    expect(r.calls).toEqual([`delete pod ${HOLDER}`]);
    // Still terminating: not deleted again, fences kept.
    expect(await r.fenced.release(pair, { pv: 'vol-123', volume: 'pvc-123' })).toBe('waiting');
    expect(r.calls).toEqual([`delete pod ${HOLDER}`]);
    r.pods.delete(HOLDER);
    expect(await r.fenced.release(pair, { pv: 'vol-123', volume: 'pvc-123' })).toBe('done');
    expect(r.calls).toEqual([`delete pod ${HOLDER}`, 'unfence node-a vol-123', 'unfence node-b vol-123']);
    expect(r.events.map((e) => e.reason)).toEqual(['HolderCreated', 'HolderDeleted', 'Unfenced']);
    expect(r.events.at(-1)!.message).toBe('volume pvc-123 is no longer fenced on node(s) node-a, node-b: pods may mount it for writing');
    // Nothing known to release: done.
    expect(await r.fenced.release(pair, undefined)).toBe('done');
  });
});
