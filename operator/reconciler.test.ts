import { describe, expect, it } from '@jest/globals';
import { createLogger, transports } from 'winston';
import type { Pair__Output } from '../proto/gen/blockmirror/control/v1/Pair.js';
import type { PairSpec } from '../proto/gen/blockmirror/control/v1/PairSpec.js';
import type { PairStatus } from '../proto/gen/blockmirror/control/v1/PairStatus.js';
import type { PromotePairRequest } from '../proto/gen/blockmirror/control/v1/PromotePairRequest.js';
import type { SplicedVolume__Output } from '../proto/gen/blockmirror/control/v1/SplicedVolume.js';
import { FINALIZER, type ReplicationPair, type ReplicationPairStatus, type SecondaryFence } from './api/replication-pair.js';
import { KubeApiError } from './kube/kube-api-error.js';
import type { ClaimUser, EventRecord } from './kube/kube-client.js';
import type { LocateResult } from './discovery/volume-locator.js';
import type { NodeSplice } from './discovery/sidecar-lease.js';
import { Reconciler, TemporaryError, desiredSpec, sidecarPairName, type SidecarControl } from './reconciler.js';
import { peerTlsFingerprint } from '../sidecar/pair/pair-spec.js';
import type { FencedVolume, Placement } from './secondary/fenced-secondary.js';
import type { VolumeLineage } from '../sidecar/replication/lineage/continue-lineage.js';
import { LINEAGE_ANNOTATION, VolumeLineageStore } from './lineage/volume-lineage.js';

/** A spec as a sidecar answers it: its peer TLS as a fingerprint, never the key. */
function echo(spec: PairSpec): PairSpec {
  const { peerTls, ...rest } = spec;
  const fp = peerTls ? peerTlsFingerprint({ cert: peerTls.certPem ?? '', key: peerTls.keyPem ?? '', ca: peerTls.caPem ?? '' }) : '';
  return { ...rest, peerTlsFingerprint: fp };
}

const pem = (what: string): Buffer => Buffer.from(`-----BEGIN ${what}-----\n${what}\n-----END ${what}-----\n`);

const logger = createLogger({ silent: true, transports: [new transports.Console()] });
const signal = new AbortController().signal;

/** A lineage store over one PV's annotations, kept in `annotations`. */
const pvStore = (annotations: Record<string, string>): VolumeLineageStore =>
  new VolumeLineageStore({
    getVolume: () => Promise.resolve({ annotations: { ...annotations } }),
    patchVolumeAnnotations: (_pv, a) => {
      for (const [k, v] of Object.entries(a)) {
        if (v === null) delete annotations[k];
        else annotations[k] = v;
      }
      return Promise.resolve();
    },
  });

function pairObject(spec: Partial<ReplicationPair['spec']> = {}, meta: Partial<ReplicationPair['metadata']> = {}): ReplicationPair {
  return {
    apiVersion: 'blockmirror.io/v1alpha1',
    kind: 'ReplicationPair',
    metadata: { name: 'db', namespace: 'apps', generation: 3, resourceVersion: '7', finalizers: [FINALIZER], ...meta },
    spec: { pvcName: 'db-data', role: 'primary', mode: 'sync', remote: { endpoint: 'site-b:7401' }, ...spec },
  };
}

/** A sidecar's control API in memory: pairs by name, with a state to report. */
class FakeSidecar implements SidecarControl {
  readonly pairs = new Map<string, Pair__Output>();
  readonly calls: string[] = [];
  /** Specs as sent by create and update. */
  readonly received: PairSpec[] = [];
  state = 'PAIR_STATE_IN_SYNC';
  failCreate: { grpcCode: number; message: string } | undefined;
  /** What DeletePair answers: the lineage the volume holds. */
  deleteAnswer: VolumeLineage | null = null;
  /** The node splice's records by pv; undefined: a sidecar without a splice. */
  volumes: Map<string, SplicedVolume__Output> | undefined = new Map();

  listVolumes(): Promise<SplicedVolume__Output[]> {
    this.calls.push('list volumes');
    if (this.volumes === undefined) return Promise.reject(Object.assign(new Error('this sidecar has no node splice'), { grpcCode: 9 }));
    return Promise.resolve([...this.volumes.values()]);
  }

  /** What the CSI node proxy does at NodeStage: the volume mapped directly (dm-era tracking). */
  stage(pv: string, device: string): void {
    this.volumes!.set(pv, { pv, device, state: 'direct', pair: '', dmDevice: `/dev/mapper/blockmirror-${pv}`, nbdDevice: '', openCount: 1, openCountKnown: true });
  }

  attachVolume(pv: string, pair: string): Promise<SplicedVolume__Output> {
    this.calls.push(`attach ${pv} ${pair}`);
    const v = this.volumes?.get(pv);
    if (v === undefined) return Promise.reject(Object.assign(new Error('not staged'), { grpcCode: 5 }));
    const next = { ...v, state: 'attached', pair, nbdDevice: '/dev/nbd0' };
    this.volumes!.set(pv, next);
    return Promise.resolve(next);
  }

  detachVolume(pv: string): Promise<SplicedVolume__Output> {
    this.calls.push(`detach ${pv}`);
    const v = this.volumes?.get(pv);
    if (v === undefined) return Promise.reject(Object.assign(new Error('not staged'), { grpcCode: 5 }));
    const next = { ...v, state: 'direct', nbdDevice: '' };
    this.volumes!.set(pv, next);
    return Promise.resolve(next);
  }

  getPair(name: string): Promise<Pair__Output> {
    this.calls.push(`get ${name}`);
    const p = this.pairs.get(name);
    if (p === undefined) return Promise.reject(Object.assign(new Error('no such pair'), { grpcCode: 5 }));
    return Promise.resolve(this.#withState(p));
  }

  createPair(spec: PairSpec): Promise<Pair__Output> {
    this.calls.push(`create ${spec.name}`);
    if (this.failCreate) return Promise.reject(Object.assign(new Error(this.failCreate.message), { grpcCode: this.failCreate.grpcCode }));
    this.received.push(spec);
    const p = { spec: echo(spec), status: {} } as unknown as Pair__Output;
    this.pairs.set(spec.name!, p);
    return Promise.resolve(this.#withState(p));
  }

  updatePair(spec: PairSpec): Promise<Pair__Output> {
    this.calls.push(`update ${spec.name}`);
    const p = this.pairs.get(spec.name!);
    if (p === undefined) return Promise.reject(Object.assign(new Error('no such pair'), { grpcCode: 5 }));
    this.received.push(spec);
    const next = { ...p, spec: echo(spec) } as unknown as Pair__Output;
    this.pairs.set(spec.name!, next);
    return Promise.resolve(this.#withState(next));
  }

  deletePair(name: string): Promise<VolumeLineage | null> {
    this.calls.push(`delete ${name}`);
    if ([...(this.volumes?.values() ?? [])].some((v) => v.pair === name && v.state !== 'direct')) {
      return Promise.reject(Object.assign(new Error(`pair ${name} carries a spliced volume's I/O: detach the volume first`), { grpcCode: 9 }));
    }
    if (!this.pairs.delete(name)) return Promise.reject(Object.assign(new Error('no such pair'), { grpcCode: 5 }));
    return Promise.resolve(this.deleteAnswer);
  }

  pausePair(name: string): Promise<Pair__Output> {
    this.calls.push(`pause ${name}`);
    this.state = 'PAIR_STATE_PAUSED';
    return this.getPair(name);
  }

  resumePair(name: string): Promise<Pair__Output> {
    this.calls.push(`resume ${name}`);
    this.state = 'PAIR_STATE_IN_SYNC';
    return this.getPair(name);
  }

  /** Role calls refused (FAILED_PRECONDITION) with this message; promote: unless forced when `unlessForced`. */
  refuseDemote: string | undefined;
  refusePromote: { message: string; unlessForced: boolean } | undefined;

  demotePair(name: string, opts: { force?: boolean; timeoutMs?: number }): Promise<Pair__Output> {
    this.calls.push(`demote ${name} force=${String(opts.force ?? false)} wait=${opts.timeoutMs ?? 0}`);
    if (this.refuseDemote !== undefined) return Promise.reject(Object.assign(new Error(this.refuseDemote), { grpcCode: 9 }));
    this.setRole(name, 'ROLE_SECONDARY', { fenced: true });
    return Promise.resolve(this.#withState(this.pairs.get(name)!));
  }

  promotePair(req: PromotePairRequest): Promise<Pair__Output> {
    this.calls.push(`promote ${req.name} force=${String(req.force)} peer=${req.peerAddress} peerPair=${req.peerPair} nbd=${req.nbdListen}`);
    const r = this.refusePromote;
    if (r !== undefined && !(r.unlessForced && req.force)) return Promise.reject(Object.assign(new Error(r.message), { grpcCode: 9 }));
    const p = this.pairs.get(req.name!)!;
    this.pairs.set(req.name!, { ...p, spec: { ...p.spec, peerAddress: req.peerAddress, peerPair: req.peerPair, ...(req.nbdListen ? { nbdListen: req.nbdListen } : {}) } } as unknown as Pair__Output);
    this.setRole(req.name!, 'ROLE_PRIMARY', { generation: 'g2', bitmapGeneration: 'g1', fenced: false, promotedTimeMs: 1_700_000_100_000, promotedPointTimeMs: 1_700_000_050_000 });
    return Promise.resolve(this.#withState(this.pairs.get(req.name!)!));
  }

  discardMyData(name: string): Promise<Pair__Output> {
    this.calls.push(`discard ${name}`);
    this.setRole(name, 'ROLE_SECONDARY', { discardMyData: true, fenced: true });
    return Promise.resolve(this.#withState(this.pairs.get(name)!));
  }

  /** What the sidecar holds now, as if it changed by itself (a self-demotion, say). */
  setRole(name: string, role: 'ROLE_PRIMARY' | 'ROLE_SECONDARY', status: Partial<PairStatus> = {}): void {
    const p = this.pairs.get(name)!;
    this.pairs.set(name, { ...p, spec: { ...p.spec, role }, status: { ...(p.status ?? {}), ...status } } as unknown as Pair__Output);
  }

  #withState(p: Pair__Output): Pair__Output {
    return { ...p, status: { generation: 'g1', ...(p.status ?? {}), state: this.state, outOfSyncBytes: 0, lastInSyncTimeMs: 1_700_000_000_000, nbdAddress: '127.0.0.1:10809' } } as unknown as Pair__Output;
  }
}

/** Stands in for FencedSecondary: answers what the test sets, records what it was asked. */
class FakeFenced {
  readonly calls: string[] = [];
  placement: Placement = { fence: { volume: 'pvc-1', pv: 'vol-1', fencedNodes: ['node-a', 'node-b'] }, problem: { reason: 'Staging', message: 'waiting for holder pod h to stage volume pvc-1 on its node', permanent: false, recheckAfterMs: 1000, notReplicating: true } };
  releases: ('done' | 'waiting')[] = [];

  place(_pair: ReplicationPair, vol: FencedVolume): Promise<Placement> {
    this.calls.push(`place ${vol.pvName} ${vol.splicePv} ${vol.claim} ${vol.volumeMode}`);
    return Promise.resolve(this.placement);
  }

  /** Who uses the claim while a CSI primary demotes. */
  users: ClaimUser[] = [];

  fenceForDemotion(_pair: ReplicationPair, vol: FencedVolume): Promise<{ fence: SecondaryFence; users: ClaimUser[] }> {
    this.calls.push(`fence ${vol.pvName} ${vol.splicePv}`);
    return Promise.resolve({ fence: { volume: vol.pvName, pv: vol.splicePv, fencedNodes: ['node-a', 'node-b'] }, users: this.users });
  }

  release(_pair: ReplicationPair, fence: { pv: string; volume: string } | undefined): Promise<'done' | 'waiting'> {
    this.calls.push(`release ${fence?.pv ?? '-'}`);
    return Promise.resolve(this.releases.shift() ?? 'done');
  }

  /** The holder's node holds the raw device. */
  held(node: string, device: string): void {
    this.placement = { fence: { volume: 'pvc-1', pv: 'vol-1', fencedNodes: ['node-a', 'node-b'], holderPod: 'h', node, device }, held: { node, device } };
  }
}

function rig(pair: ReplicationPair, opts: { locate?: LocateResult; sidecarMissing?: boolean; splice?: NodeSplice; secrets?: Record<string, Record<string, Buffer> | KubeApiError>; fenced?: FakeFenced; lineage?: VolumeLineageStore } = {}) {
  let splice: NodeSplice = opts.splice ?? { capable: true };
  const sidecars = new Map<string, FakeSidecar>([['node-a:7400', new FakeSidecar()]]);
  const patches: ReplicationPairStatus[] = [];
  const finalizerWrites: string[][] = [];
  const events: EventRecord[] = [];
  let current = pair;
  // Set: the server's resourceVersion, ahead of the cache's copy.
  let serverVersion: string | undefined;
  const reconciler = new Reconciler({
    cached: () => current,
    kube: {
      patchPairStatus: (_ns, _n, status) => {
        patches.push(status);
        current = { ...current, status };
        return Promise.resolve();
      },
      // The cache here is the server: every write shows at once (see cacheBehind).
      pairResourceVersion: () => Promise.resolve(serverVersion ?? current.metadata.resourceVersion),
      setFinalizers: (_ns, _n, f) => {
        finalizerWrites.push(f);
        current = { ...current, metadata: { ...current.metadata, finalizers: f } };
        return Promise.resolve();
      },
      recordEvent: (_p, e) => {
        events.push(e);
        return Promise.resolve();
      },
      readSecret: (_ns, name) => {
        const s = opts.secrets?.[name];
        return s instanceof KubeApiError ? Promise.reject(s) : Promise.resolve(s);
      },
    },
    locate: () => Promise.resolve(opts.locate ?? { location: { pvName: 'pv-1', node: 'node-a', path: '/data/pv-1.img', usedBy: [] } }),
    ...(opts.fenced !== undefined ? { fenced: opts.fenced } : {}),
    ...(opts.lineage !== undefined ? { lineage: opts.lineage } : {}),
    sidecarFor: (node) => Promise.resolve(opts.sidecarMissing ? { missing: `no sidecar on ${node}` } : { found: { node, control: `${node}:7400`, peer: `${node}:7401`, splice } }),
    control: (endpoint) => {
      let s = sidecars.get(endpoint);
      if (s === undefined) sidecars.set(endpoint, (s = new FakeSidecar()));
      return s;
    },
    logger,
    pollMs: 1000,
    now: () => new Date('2026-01-01T00:00:00Z'),
  });
  return {
    reconciler,
    sidecar: sidecars.get('node-a:7400')!,
    sidecars,
    patches,
    events,
    finalizerWrites,
    get current() {
      return current;
    },
    set current(p: ReplicationPair) {
      current = p;
    },
    /** The API server's resourceVersion when it is ahead of the cache's copy (undefined: the same). */
    set serverVersion(v: string | undefined) {
      serverVersion = v;
    },
    /** The node's capability as its sidecar registers it from now on (a restart). */
    set splice(v: NodeSplice) {
      splice = v;
    },
  };
}

describe('Reconciler', () => {
  it('creates the pair on the sidecar of the volume\'s node, patches status once and asks to be polled', async () => {
    const r = rig(pairObject());
    const result = await r.reconciler.reconcile('apps/db', signal);
    expect(result).toEqual({ requeueAfterMs: 1000 });
    expect(r.sidecar.calls).toEqual(['get apps.db', 'create apps.db']);
    const spec = r.sidecar.pairs.get('apps.db')!.spec!;
    expect(spec).toMatchObject({ volumePath: '/data/pv-1.img', role: 'ROLE_PRIMARY', mode: 'MODE_SYNC', peerAddress: 'site-b:7401', peerPair: 'apps.db', nbdListen: '127.0.0.1:0' });
    expect(r.patches).toHaveLength(1);
    expect(r.patches[0]).toMatchObject({ state: 'InSync', outOfSyncBytes: 0, outOfSync: '0B', rpo: '0.0s', observedGeneration: 3, sidecar: { node: 'node-a', endpoint: 'node-a:7400' } });
    const ready = r.patches[0]!.conditions!.find((c) => c.type === 'Ready')!;
    expect(ready).toMatchObject({ status: 'True', observedGeneration: 3 });
    expect(r.events.map((e) => e.reason)).toEqual(['Created', 'InSync']);
  });

  it('is idempotent: a second pass changes nothing and patches nothing', async () => {
    const r = rig(pairObject());
    await r.reconciler.reconcile('apps/db', signal);
    await r.reconciler.reconcile('apps/db', signal);
    expect(r.sidecar.calls).toEqual(['get apps.db', 'create apps.db', 'get apps.db']);
    expect(r.patches).toHaveLength(1);
    expect(r.events).toHaveLength(2);
  });

  it('adds its finalizer before touching a sidecar', async () => {
    const r = rig(pairObject({}, { finalizers: ['other/keep'] }));
    await r.reconciler.reconcile('apps/db', signal);
    expect(r.finalizerWrites).toEqual([['other/keep', FINALIZER]]);
  });

  it('updates tunables in place, keeping the pair', async () => {
    const r = rig(pairObject());
    await r.reconciler.reconcile('apps/db', signal);
    r.current = { ...r.current, spec: { ...r.current.spec, sync: { writeTimeoutMs: 750 }, remote: { endpoint: 'site-b2:7401' } } };
    await r.reconciler.reconcile('apps/db', signal);
    expect(r.sidecar.calls.slice(2)).toEqual(['get apps.db', 'update apps.db']);
    expect(r.sidecar.pairs.get('apps.db')!.spec).toMatchObject({ writeTimeoutMs: 750, peerAddress: 'site-b2:7401' });
    expect(r.events.map((e) => e.reason)).toContain('Updated');
  });

  it("gives the sidecar the pair's peer TLS from spec.remote.tlsSecretName, and new material in place", async () => {
    const secret = { 'tls.crt': pem('CERTIFICATE'), 'tls.key': pem('PRIVATE KEY'), 'ca.crt': pem('CERTIFICATE') };
    const secrets: Record<string, Record<string, Buffer> | KubeApiError> = { 'peer-tls': secret };
    const r = rig(pairObject({ remote: { endpoint: 'site-b:7401', tlsSecretName: 'peer-tls' } }), { secrets });
    await r.reconciler.reconcile('apps/db', signal);
    expect(r.sidecar.received[0]!.peerTls).toEqual({ certPem: secret['tls.crt'].toString(), keyPem: secret['tls.key'].toString(), caPem: secret['ca.crt'].toString() });
    // Unchanged: the fingerprint the sidecar answers matches; nothing is sent again.
    await r.reconciler.reconcile('apps/db', signal);
    expect(r.sidecar.calls).toEqual(['get apps.db', 'create apps.db', 'get apps.db']);
    // cert-manager renewed the certificate: the pair gets it in place.
    secrets['peer-tls'] = { ...secret, 'tls.crt': pem('RENEWED CERTIFICATE') };
    await r.reconciler.reconcile('apps/db', signal);
    expect(r.sidecar.calls.slice(3)).toEqual(['get apps.db', 'update apps.db']);
    expect(r.sidecar.received[1]!.peerTls?.certPem).toContain('RENEWED');
  });

  it('says which TLS Secret is missing or incomplete, and creates nothing', async () => {
    const missing = rig(pairObject({ remote: { endpoint: 'site-b:7401', tlsSecretName: 'nope' } }));
    await expect(missing.reconciler.reconcile('apps/db', signal)).rejects.toBeInstanceOf(TemporaryError);
    expect(missing.patches[0]!.conditions!.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'TLSSecretNotFound', message: 'Secret apps/nope not found' });
    const partial = rig(pairObject({ remote: { endpoint: 'site-b:7401', tlsSecretName: 'half' } }), { secrets: { half: { 'tls.crt': pem('CERTIFICATE') } } });
    await expect(partial.reconciler.reconcile('apps/db', signal)).rejects.toBeInstanceOf(TemporaryError);
    expect(partial.patches[0]!.conditions!.find((c) => c.type === 'Ready')).toMatchObject({ reason: 'TLSSecretInvalid', message: 'Secret apps/half lacks tls.key, ca.crt' });
    expect(partial.sidecar.calls).toEqual([]);
  });

  it('a TLS Secret the chart does not let it read is a condition naming the chart value, looked at again later, not an error retried with backoff', async () => {
    const forbidden = new KubeApiError('get Secret apps/peer-tls: secrets "peer-tls" is forbidden: User "system:serviceaccount:blockmirror-system:blockmirror-operator" cannot get resource "secrets"', 403);
    const r = rig(pairObject({ remote: { endpoint: 'site-b:7401', tlsSecretName: 'peer-tls' } }), { secrets: { 'peer-tls': forbidden } });
    expect(await r.reconciler.reconcile('apps/db', signal)).toEqual({ requeueAfterMs: 30_000 });
    const ready = r.patches[0]!.conditions!.find((c) => c.type === 'Ready');
    expect(ready).toMatchObject({ status: 'False', reason: 'TLSSecretForbidden' });
    expect(ready!.message).toContain('may not read Secret apps/peer-tls');
    expect(ready!.message).toContain('operator.peerTlsSecrets');
    expect(ready!.message).toContain('{namespace: apps, names: [peer-tls]}');
    expect(r.sidecar.calls).toEqual([]);
    // Any other API failure stays a temporary error, retried with backoff.
    const down = rig(pairObject({ remote: { endpoint: 'site-b:7401', tlsSecretName: 'peer-tls' } }), { secrets: { 'peer-tls': new KubeApiError('get Secret apps/peer-tls: connection refused', 0) } });
    await expect(down.reconciler.reconcile('apps/db', signal)).rejects.toBeInstanceOf(TemporaryError);
  });

  it('recreates the pair when its wiring changed, and pauses and resumes it', async () => {
    const r = rig(pairObject());
    await r.reconciler.reconcile('apps/db', signal);
    r.current = { ...r.current, spec: { ...r.current.spec, mode: 'async', async: { groupIntervalMs: 500 } } };
    await r.reconciler.reconcile('apps/db', signal);
    // A pair carrying a spliced volume cannot be deleted: its volumes are detached first.
    expect(r.sidecar.calls.slice(2)).toEqual(['get apps.db', 'list volumes', 'delete apps.db', 'create apps.db']);
    expect(r.sidecar.pairs.get('apps.db')!.spec).toMatchObject({ mode: 'MODE_ASYNC', groupIntervalMs: 500 });
    expect(r.events.map((e) => e.reason)).toContain('Reconfigured');

    r.current = { ...r.current, spec: { ...r.current.spec, paused: true } };
    await r.reconciler.reconcile('apps/db', signal);
    expect(r.sidecar.calls).toContain('pause apps.db');
    expect(r.current.status?.state).toBe('Paused');
    r.current = { ...r.current, spec: { ...r.current.spec, paused: false } };
    await r.reconciler.reconcile('apps/db', signal);
    expect(r.sidecar.calls).toContain('resume apps.db');
  });

  it('a temporary problem sets Ready=False and throws so the queue retries with backoff', async () => {
    const r = rig(pairObject(), { sidecarMissing: true });
    await expect(r.reconciler.reconcile('apps/db', signal)).rejects.toBeInstanceOf(TemporaryError);
    expect(r.patches[0]).toMatchObject({ state: 'Pending', lastError: 'no sidecar on node-a' });
    expect(r.patches[0]!.conditions!.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'SidecarNotFound' });
  });

  it('a permanent problem sets a condition and stops (no requeue)', async () => {
    const r = rig(pairObject(), { locate: { failure: { reason: 'UnsupportedVolume', message: 'PersistentVolume pv-1 is neither a local nor a CSI volume', permanent: true } } });
    expect(await r.reconciler.reconcile('apps/db', signal)).toBeUndefined();
    expect(r.patches[0]).toMatchObject({ state: 'Error' });
    expect(r.patches[0]!.conditions!.find((c) => c.type === 'Degraded')).toMatchObject({ status: 'True', reason: 'UnsupportedVolume' });
  });

  it('a spec the sidecar refuses is permanent', async () => {
    const r = rig(pairObject());
    r.sidecar.failCreate = { grpcCode: 3, message: 'volume /data/pv-1.img is smaller than the peer' };
    expect(await r.reconciler.reconcile('apps/db', signal)).toBeUndefined();
    expect(r.patches[0]!.conditions!.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'SidecarRejected' });
    // A device in use may be freed outside the pair: looked at again, and created then.
    const busy = rig(pairObject());
    busy.sidecar.failCreate = { grpcCode: 9, message: 'device /dev/loop3 is mounted at /mnt/x' };
    expect(await busy.reconciler.reconcile('apps/db', signal)).toEqual({ requeueAfterMs: 30_000 });
    busy.sidecar.failCreate = undefined;
    await busy.reconciler.reconcile('apps/db', signal);
    expect(busy.current.status?.state).toBe('InSync');
    // A path the sidecar's flags do not allow: shown, and looked at again (it may be restarted with them).
    const confined = rig(pairObject());
    confined.sidecar.failCreate = { grpcCode: 7, message: "volume /dev/sdb is not allowed: it is outside this sidecar's allowed volume paths" };
    expect(await confined.reconciler.reconcile('apps/db', signal)).toEqual({ requeueAfterMs: 30_000 });
    expect(confined.patches[0]!.conditions!.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'SidecarRejected', message: expect.stringContaining('/dev/sdb is not allowed') });
  });

  it('on deletion removes the pair from its sidecar, then the finalizer', async () => {
    const r = rig(pairObject());
    await r.reconciler.reconcile('apps/db', signal);
    r.current = { ...r.current, metadata: { ...r.current.metadata, deletionTimestamp: '2026-01-01T00:00:00Z' } };
    await r.reconciler.reconcile('apps/db', signal);
    expect(r.sidecar.pairs.size).toBe(0);
    expect(r.current.metadata.finalizers).toEqual([]);
    // Already gone from the sidecar: the finalizer still goes.
    r.current = { ...r.current, metadata: { ...r.current.metadata, finalizers: [FINALIZER] } };
    await r.reconciler.reconcile('apps/db', signal);
    expect(r.current.metadata.finalizers).toEqual([]);
  });

  it("keeps the volume's lineage on its PV when the pair is deleted, and a pair created over it continues it", async () => {
    const annotations: Record<string, string> = {};
    const lineage = pvStore(annotations);
    const r = rig(pairObject(), { lineage });
    await r.reconciler.reconcile('apps/db', signal);
    expect(r.sidecar.received[0]!.lineage).toBeUndefined();
    // Recorded while the pair runs, not only when it goes (see the next test).
    expect(JSON.parse(annotations[LINEAGE_ANNOTATION]!)).toEqual({ role: 'primary', generation: 'g1', history: [], consistent: true });
    r.sidecar.deleteAnswer = { role: 'primary', generation: 'g1', history: [], consistent: true };
    r.current = { ...r.current, metadata: { ...r.current.metadata, deletionTimestamp: '2026-01-01T00:00:00Z' } };
    await r.reconciler.reconcile('apps/db', signal);
    expect(JSON.parse(annotations[LINEAGE_ANNOTATION]!)).toEqual({ role: 'primary', generation: 'g1', history: [], consistent: true });
    expect(r.current.metadata.finalizers).toEqual([]);
    // The resource is made again over the same volume: its sidecar pair continues the lineage.
    r.current = pairObject();
    await r.reconciler.reconcile('apps/db', signal);
    expect(r.sidecar.received[1]!.lineage).toEqual({ role: 'ROLE_PRIMARY', generation: 'g1', history: [], consistent: true });
    // Continued: the record stays until the new pair's own replaces it (a primary continuing
    // g1 holds a generation descending from it).
    r.sidecar.setRole('apps.db', 'ROLE_PRIMARY', { generation: 'g2', historyGenerations: ['g1'] });
    await r.reconciler.reconcile('apps/db', signal);
    expect(JSON.parse(annotations[LINEAGE_ANNOTATION]!)).toEqual({ role: 'primary', generation: 'g2', history: ['g1'], consistent: true });
    // The node lost the pair's state: the next pair continues what the PV carries now.
    r.sidecar.pairs.clear();
    await r.reconciler.reconcile('apps/db', signal);
    expect(r.sidecar.received[2]!.lineage).toEqual({ role: 'ROLE_PRIMARY', generation: 'g2', history: ['g1'], consistent: true });
    // An annotation that is not a lineage stops the pair, saying so, instead of being ignored.
    annotations[LINEAGE_ANNOTATION] = 'garbage';
    r.sidecar.pairs.clear();
    await r.reconciler.reconcile('apps/db', signal);
    expect(r.current.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'LineageUnreadable' });
  });

  it("records the volume's lineage on its PV whenever the generation changes, with no write while it does not, and as a primary's before a promotion", async () => {
    const annotations: Record<string, string> = {};
    const writes: string[] = [];
    let reads = 0;
    const lineage = new VolumeLineageStore({
      getVolume: () => {
        reads++;
        return Promise.resolve({ annotations: { ...annotations } });
      },
      patchVolumeAnnotations: (_pv, a) => {
        const v = a[LINEAGE_ANNOTATION];
        writes.push(v ?? 'removed');
        if (v === null || v === undefined) delete annotations[LINEAGE_ANNOTATION];
        else annotations[LINEAGE_ANNOTATION] = v;
        return Promise.resolve();
      },
    });
    const recorded = (): unknown => (annotations[LINEAGE_ANNOTATION] === undefined ? undefined : JSON.parse(annotations[LINEAGE_ANNOTATION]));
    const r = rig(pairObject({ role: 'secondary', remote: undefined }), { lineage });
    // Created, and holding generation g1 (first sync reached): a secondary's record, never
    // claimed complete (a resync may start the moment after the status was read).
    await r.reconciler.reconcile('apps/db', signal);
    r.sidecar.setRole('apps.db', 'ROLE_SECONDARY', { consistent: true });
    await r.reconciler.reconcile('apps/db', signal);
    expect(recorded()).toEqual({ role: 'secondary', generation: 'g1', history: [], consistent: false });
    // Steady: no write, and no read either once the store knows what the PV carries.
    const [w, rd] = [writes.length, reads];
    for (let i = 0; i < 3; i++) await r.reconciler.reconcile('apps/db', signal);
    expect({ writes: writes.length - w, reads: reads - rd }).toEqual({ writes: 0, reads: 0 });
    // Promoted: recorded as a primary's before the sidecar is asked (the fake answers g2).
    r.sidecar.refusePromote = { message: 'refused for the test', unlessForced: false };
    r.current = { ...r.current, metadata: { ...r.current.metadata, generation: 4 }, spec: { ...r.current.spec, role: 'primary', remote: { endpoint: 'site-a:7401' } } };
    await r.reconciler.reconcile('apps/db', signal);
    expect(r.sidecar.calls.some((c) => c.startsWith('promote'))).toBe(true);
    expect(recorded()).toEqual({ role: 'primary', generation: 'g1', history: [], consistent: true });
    r.sidecar.refusePromote = undefined;
    await r.reconciler.reconcile('apps/db', signal);
    expect(recorded()).toEqual({ role: 'primary', generation: 'g2', history: [], consistent: true });
    expect(writes).toHaveLength(3);
  });

  it('forgets the pair on the old node when the volume moved', async () => {
    const r = rig(pairObject());
    await r.reconciler.reconcile('apps/db', signal);
    r.current = { ...r.current, status: { ...r.current.status, sidecar: { node: 'node-z', endpoint: 'node-z:7400' } } };
    const old = new FakeSidecar();
    await old.createPair({ name: 'apps.db' });
    r.sidecars.set('node-z:7400', old);
    await r.reconciler.reconcile('apps/db', signal);
    expect(old.pairs.size).toBe(0);
  });

  it('keeps sidecar pair names within 63 characters, distinct and stable', () => {
    const long = 'x'.repeat(60);
    const a = sidecarPairName('apps', `${long}-a`);
    const b = sidecarPairName('apps', `${long}-b`);
    expect(a.length).toBeLessThanOrEqual(63);
    expect(a).not.toBe(b);
    expect(sidecarPairName('apps', `${long}-a`)).toBe(a);
    expect(a).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
  });

  it('derives the remote pair name from the remote resource', () => {
    const spec = desiredSpec(pairObject({ remote: { endpoint: 'b:1', namespace: 'dr', name: 'db-copy' } }), '/x');
    expect(spec.peerPair).toBe('dr.db-copy');
    expect(desiredSpec(pairObject({ role: 'secondary', remote: undefined }), '/x')).toMatchObject({ peerAddress: '', nbdListen: '', role: 'ROLE_SECONDARY' });
  });

  it("hands the sidecar the remote site's peer identity, for either role", () => {
    const remote = { endpoint: 'b:1', identity: 'spiffe://blockmirror/site-b/peer' };
    expect(desiredSpec(pairObject({ remote }), '/x').remoteIdentity).toBe('spiffe://blockmirror/site-b/peer');
    expect(desiredSpec(pairObject({ role: 'secondary', remote }), '/x').remoteIdentity).toBe('spiffe://blockmirror/site-b/peer');
    expect(desiredSpec(pairObject({ remote: { endpoint: 'b:1' } }), '/x').remoteIdentity).toBe('');
  });

  describe('a volume that opts in to the splice, on a node that cannot splice', () => {
    const NO_DM = 'no device-mapper: /dev/mapper/control missing (load dm_mod on the node)';
    const optedIn: LocateResult = { location: { pvName: 'pv-1', node: 'node-a', path: '/dev/loop7', usedBy: [], spliceOptIn: "StorageClass spliced's parameter blockmirror.io/replicate" } };
    const condition = (r: ReturnType<typeof rig>, type: string) => r.current.status?.conditions?.find((c) => c.type === type);

    it('the primary gets Ready=False NodeCannotSplice saying what is missing and what to do, a Warning event, and nothing on the sidecar', async () => {
      const r = rig(pairObject(), { locate: optedIn, splice: { capable: false, reason: NO_DM } });
      // Refused for good, but the node is looked at again: loading a module fires no event of the pair.
      expect(await r.reconciler.reconcile('apps/db', signal)).toEqual({ requeueAfterMs: 30_000 });
      expect(r.sidecar.pairs.size).toBe(0);
      expect(r.sidecar.calls).toEqual(['delete apps.db']);
      expect(r.current.status).toMatchObject({ state: 'Error', sidecar: { node: 'node-a' } });
      const ready = condition(r, 'Ready')!;
      expect(ready).toMatchObject({ status: 'False', reason: 'NodeCannotSplice', observedGeneration: 3 });
      expect(ready.message).toContain(`node node-a cannot splice: ${NO_DM}.`);
      expect(ready.message).toContain("StorageClass spliced's parameter blockmirror.io/replicate");
      expect(ready.message).toContain('blockmirror.io/splice-capable=true');
      expect(condition(r, 'Synchronized')).toMatchObject({ status: 'False', reason: 'NodeCannotSplice' });
      expect(condition(r, 'Degraded')).toMatchObject({ status: 'True', reason: 'NodeCannotSplice' });
      expect(r.events.filter((e) => e.reason === 'NodeCannotSplice')).toEqual([{ type: 'Warning', reason: 'NodeCannotSplice', message: ready.message }]);

      // Rechecked: no new event, no status write, still nothing on the sidecar.
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.patches).toHaveLength(1);
      expect(r.events.filter((e) => e.reason === 'NodeCannotSplice')).toHaveLength(1);
      expect(r.sidecar.pairs.size).toBe(0);

      // The node fixed and its sidecar restarted: the pair is created and replicates.
      r.splice = { capable: true };
      expect(await r.reconciler.reconcile('apps/db', signal)).toEqual({ requeueAfterMs: 1000 });
      expect(r.sidecar.pairs.has('apps.db')).toBe(true);
      expect(r.current.status?.state).toBe('InSync');
      expect(condition(r, 'Ready')).toMatchObject({ status: 'True' });
    });

    it('a pair already replicating there (its sidecar restarted without device-mapper) is removed from the sidecar, never left InSync', async () => {
      const r = rig(pairObject(), { locate: optedIn });
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.current.status?.state).toBe('InSync');
      r.splice = { capable: false, reason: NO_DM };
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.sidecar.pairs.size).toBe(0);
      expect(r.current.status?.state).toBe('Error');
      expect(condition(r, 'Synchronized')?.status).toBe('False');
      expect(r.events.find((e) => e.reason === 'NodeCannotSplice')?.message).toMatch(/Its pair on that sidecar was removed\.$/);
    });

    it('a sidecar that registers no capability is not trusted to splice', async () => {
      const r = rig(pairObject(), { locate: optedIn, splice: { capable: false, reason: 'the sidecar registers no blockmirror.io/splice-capable label (a blockmirror older than the operator?)' } });
      await r.reconciler.reconcile('apps/db', signal);
      expect(condition(r, 'Ready')?.message).toContain('registers no blockmirror.io/splice-capable label');
      expect(r.sidecar.pairs.size).toBe(0);
    });

    it('a volume that does not opt in, and a secondary (written by its sidecar, not through a tap), replicate there as before', async () => {
      const plain = rig(pairObject(), { splice: { capable: false, reason: NO_DM } });
      await plain.reconciler.reconcile('apps/db', signal);
      expect(plain.current.status?.state).toBe('InSync');
      const secondary = rig(pairObject({ role: 'secondary', remote: undefined }), { locate: optedIn, splice: { capable: false, reason: NO_DM } });
      await secondary.reconciler.reconcile('apps/db', signal);
      expect(secondary.sidecar.pairs.get('apps.db')?.spec?.role).toBe('ROLE_SECONDARY');
      expect(secondary.current.status?.state).toBe('InSync');
    });
  });
  describe('a primary on a CSI volume: replicated only through the node splice', () => {
    const csiAt = (usedBy: string[] = ['apps/db-0'], spliceOptIn: string | null = "StorageClass fast's parameter blockmirror.io/replicate"): LocateResult => ({
      location: { pvName: 'pvc-1', node: 'node-a', csi: { driver: 'lab.csi', volumeHandle: 'vol-1', splicePv: 'vol-1', volumeMode: 'Filesystem' }, usedBy, ...(spliceOptIn ? { spliceOptIn } : {}) },
    });
    const condition = (r: ReturnType<typeof rig>, type: string) => r.current.status?.conditions?.find((c) => c.type === type);

    it('creates the pair on the raw device the splice maps, with a socket export, attaches it live, and only then reports the sidecar state', async () => {
      const r = rig(pairObject(), { locate: csiAt() });
      r.sidecar.stage('vol-1', '/dev/loop4');
      expect(await r.reconciler.reconcile('apps/db', signal)).toEqual({ requeueAfterMs: 1000 });
      expect(r.sidecar.pairs.get('apps.db')!.spec).toMatchObject({ volumePath: '/dev/loop4', nbdSocket: 'apps.db.sock', nbdListen: '', role: 'ROLE_PRIMARY' });
      expect(r.sidecar.calls).toEqual(['list volumes', 'get apps.db', 'create apps.db', 'attach vol-1 apps.db', 'get apps.db']);
      expect(r.sidecar.volumes!.get('vol-1')).toMatchObject({ state: 'attached', pair: 'apps.db' });
      expect(r.current.status?.state).toBe('InSync');
      expect(condition(r, 'Synchronized')?.status).toBe('True');
      expect(r.events.find((e) => e.reason === 'Attached')?.message).toContain('/dev/mapper/blockmirror-vol-1');
      // Idempotent: attached already, nothing more.
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.sidecar.calls.slice(5)).toEqual(['list volumes', 'get apps.db']);
    });

    it('a volume not behind the tap is never InSync: Ready=False NotSpliced saying what to do, and a sidecar pair left from before goes', async () => {
      const r = rig(pairObject(), { locate: csiAt() });
      // An old-style pair (on the kubelet's mount) reporting InSync.
      await r.sidecar.createPair({ name: 'apps.db', volumePath: '/var/lib/kubelet/plugins/kubernetes.io/csi/lab.csi/x/globalmount', role: 'ROLE_PRIMARY' });
      expect(await r.reconciler.reconcile('apps/db', signal)).toEqual({ requeueAfterMs: 1000 });
      expect(r.sidecar.pairs.size).toBe(0);
      expect(r.current.status?.state).toBe('Pending');
      const ready = condition(r, 'Ready')!;
      expect(ready).toMatchObject({ status: 'False', reason: 'NotSpliced' });
      expect(ready.message).toContain('restart the pod once (apps/db-0)');
      expect(ready.message).toContain('csiProxy.drivers names lab.csi');
      expect(condition(r, 'Synchronized')).toMatchObject({ status: 'False', reason: 'NotSpliced' });

      // Not opted in: the message says so; no pod yet: it says the kubelet will stage it.
      const plain = rig(pairObject(), { locate: csiAt(['apps/db-0'], null) });
      await plain.reconciler.reconcile('apps/db', signal);
      expect(condition(plain, 'Ready')?.message).toContain('it does not opt in');
      const idle = rig(pairObject(), { locate: csiAt([]) });
      await idle.reconciler.reconcile('apps/db', signal);
      expect(condition(idle, 'Ready')?.message).toContain('no pod uses it');
      for (const x of [plain, idle]) expect(x.current.status?.state).not.toBe('InSync');
    });

    it('a sidecar without a splice has staged nothing: NotSpliced, nothing created, one Warning event', async () => {
      const r = rig(pairObject(), { locate: csiAt(['apps/db-0'], null) });
      r.sidecar.volumes = undefined;
      await r.reconciler.reconcile('apps/db', signal);
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.sidecar.pairs.size).toBe(0);
      expect(condition(r, 'Ready')).toMatchObject({ status: 'False', reason: 'NotSpliced' });
      expect(condition(r, 'Synchronized')?.status).toBe('False');
      expect(r.events.filter((e) => e.reason === 'NotSpliced')).toHaveLength(1);
    });

    it('pause detaches live and pauses; resume resumes and attaches again', async () => {
      const r = rig(pairObject(), { locate: csiAt() });
      r.sidecar.stage('vol-1', '/dev/loop4');
      await r.reconciler.reconcile('apps/db', signal);
      r.current = { ...r.current, spec: { ...r.current.spec, paused: true } };
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.sidecar.volumes!.get('vol-1')?.state).toBe('direct');
      expect(r.current.status?.state).toBe('Paused');
      const n = r.sidecar.calls.length;
      r.current = { ...r.current, spec: { ...r.current.spec, paused: false } };
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.sidecar.calls.slice(n)).toEqual(['list volumes', 'get apps.db', 'resume apps.db', 'get apps.db', 'attach vol-1 apps.db', 'get apps.db']);
      expect(r.current.status?.state).toBe('InSync');
    });

    it('deletion detaches live, then removes the pair and the finalizer', async () => {
      const r = rig(pairObject(), { locate: csiAt() });
      r.sidecar.stage('vol-1', '/dev/loop4');
      await r.reconciler.reconcile('apps/db', signal);
      r.current = { ...r.current, metadata: { ...r.current.metadata, deletionTimestamp: '2026-01-01T00:00:00Z' } };
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.sidecar.calls.slice(-3)).toEqual(['list volumes', 'detach vol-1', 'delete apps.db']);
      expect(r.sidecar.pairs.size).toBe(0);
      expect(r.sidecar.volumes!.get('vol-1')?.state).toBe('direct');
      expect(r.finalizerWrites.at(-1)).toEqual([]);
    });

    it('a volume spliced for another pair is refused; a secondary on a CSI volume says it is not supported', async () => {
      const r = rig(pairObject(), { locate: csiAt() });
      r.sidecar.stage('vol-1', '/dev/loop4');
      await r.sidecar.attachVolume('vol-1', 'other.pair');
      await r.reconciler.reconcile('apps/db', signal);
      expect(condition(r, 'Ready')).toMatchObject({ status: 'False', reason: 'SpliceInUse' });
      expect(r.sidecar.pairs.has('apps.db')).toBe(false);
      const s = rig(pairObject({ role: 'secondary', remote: undefined }), { locate: csiAt() });
      await s.reconciler.reconcile('apps/db', signal);
      expect(condition(s, 'Ready')).toMatchObject({ status: 'False', reason: 'UnsupportedVolume' });
      expect(s.sidecar.pairs.size).toBe(0);
    });
  });

  describe('a secondary on a CSI volume: fenced, staged by a holder pod, replicated into the raw device', () => {
    const secondary = (): ReplicationPair => pairObject({ role: 'secondary', remote: undefined });
    const csi = { driver: 'lab.csi', volumeHandle: 'vol-1', splicePv: 'vol-1', volumeMode: 'Filesystem' as const };
    // A secondary's claim has no pod yet, so no node: the fence places it.
    const unplaced: LocateResult = { failure: { reason: 'VolumeNotAttached', message: 'CSI volume pvc-1 is neither attached nor used', permanent: false }, unplaced: { pvName: 'pvc-1', csi } };
    const condition = (r: ReturnType<typeof rig>, type: string) => r.current.status?.conditions?.find((c) => c.type === type);

    it('waits for the fence and the holder pod, saying so, with nothing on any sidecar; then creates the pair on the raw device the holder\'s node holds', async () => {
      const fenced = new FakeFenced();
      const r = rig(secondary(), { locate: unplaced, fenced });
      expect(await r.reconciler.reconcile('apps/db', signal)).toEqual({ requeueAfterMs: 1000 });
      expect(fenced.calls).toEqual(['place pvc-1 vol-1 db-data Filesystem']);
      expect(r.current.status).toMatchObject({ state: 'Pending', fence: { volume: 'pvc-1', pv: 'vol-1', fencedNodes: ['node-a', 'node-b'] } });
      expect(condition(r, 'Ready')).toMatchObject({ status: 'False', reason: 'Staging', message: 'waiting for holder pod h to stage volume pvc-1 on its node' });
      expect(condition(r, 'Synchronized')).toMatchObject({ status: 'False' });
      expect([...r.sidecars.values()].every((s) => s.calls.length === 0)).toBe(true);

      fenced.held('node-b', '/dev/loop7');
      await r.reconciler.reconcile('apps/db', signal);
      const b = r.sidecars.get('node-b:7400')!;
      const spec = b.pairs.get('apps.db')!.spec!;
      // Written by its pair only: no NBD export of any kind.
      expect(spec).toMatchObject({ volumePath: '/dev/loop7', role: 'ROLE_SECONDARY', nbdListen: '' });
      expect(spec.nbdSocket ?? '').toBe('');
      expect(r.current.status).toMatchObject({ state: 'InSync', sidecar: { node: 'node-b', endpoint: 'node-b:7400' }, fence: { holderPod: 'h', node: 'node-b', device: '/dev/loop7' } });
      expect(r.events.map((e) => e.reason)).toEqual(['Pending', 'Created', 'InSync']);
      // Whatever the locator says: a claim now used by the holder is placed the same way.
      const used = rig(secondary(), { locate: { location: { pvName: 'pvc-1', node: 'node-b', csi, usedBy: ['apps/h'] } }, fenced });
      await used.reconciler.reconcile('apps/db', signal);
      expect(fenced.calls.at(-1)).toBe('place pvc-1 vol-1 db-data Filesystem');
    });

    it('pauses and resumes as any secondary; a placement problem later keeps the pair where it is and says why', async () => {
      const fenced = new FakeFenced();
      fenced.held('node-b', '/dev/loop7');
      const r = rig(secondary(), { locate: unplaced, fenced });
      await r.reconciler.reconcile('apps/db', signal);
      r.current = { ...r.current, spec: { ...r.current.spec, paused: true } };
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.current.status?.state).toBe('Paused');
      r.current = { ...r.current, spec: { ...r.current.spec, paused: false } };
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.current.status?.state).toBe('InSync');
      const b = r.sidecars.get('node-b:7400')!;
      expect(b.calls.filter((c) => /^(pause|resume)/.test(c))).toEqual(['pause apps.db', 'resume apps.db']);

      fenced.placement = { fence: { volume: 'pvc-1', pv: 'vol-1', fencedNodes: ['node-a', 'node-b'] }, problem: { reason: 'SecondaryInUse', message: 'pod(s) apps/x use it', permanent: false, recheckAfterMs: 1000, notReplicating: true } };
      await r.reconciler.reconcile('apps/db', signal);
      expect(condition(r, 'Ready')).toMatchObject({ status: 'False', reason: 'SecondaryInUse' });
      expect(r.current.status?.sidecar).toEqual({ node: 'node-b', endpoint: 'node-b:7400' });
      expect(b.pairs.has('apps.db')).toBe(true);
    });

    it('deletion: the sidecar pair first, then the holder and the fences (waited for), then the finalizer', async () => {
      const fenced = new FakeFenced();
      fenced.held('node-b', '/dev/loop7');
      const r = rig(secondary(), { locate: unplaced, fenced });
      await r.reconciler.reconcile('apps/db', signal);
      const b = r.sidecars.get('node-b:7400')!;
      r.current = { ...r.current, metadata: { ...r.current.metadata, deletionTimestamp: '2026-01-01T00:00:00Z' } };
      fenced.releases = ['waiting'];
      expect(await r.reconciler.reconcile('apps/db', signal)).toEqual({ requeueAfterMs: 1000 });
      expect(b.pairs.size).toBe(0);
      expect(fenced.calls.at(-1)).toBe('release vol-1');
      expect(r.current.metadata.finalizers).toEqual([FINALIZER]);
      expect(await r.reconciler.reconcile('apps/db', signal)).toBeUndefined();
      expect(fenced.calls.filter((c) => c.startsWith('release'))).toEqual(['release vol-1', 'release vol-1']);
      expect(r.current.metadata.finalizers).toEqual([]);
      // Without a status (the first pass never ran), the volume is looked up.
      const early = rig({ ...secondary(), metadata: { ...secondary().metadata, deletionTimestamp: '2026-01-01T00:00:00Z' } }, { locate: unplaced, fenced });
      await early.reconciler.reconcile('apps/db', signal);
      expect(fenced.calls.at(-1)).toBe('release vol-1');
    });

    const recorded = (annotations: Record<string, string>): unknown => JSON.parse(annotations[LINEAGE_ANNOTATION]!);

    /** A fenced secondary holding g1 on node-b (its lineage on the PV), whose spec now says primary. */
    async function toPromote(spec: Partial<ReplicationPair['spec']> = {}) {
      const fenced = new FakeFenced();
      fenced.held('node-b', '/dev/loop7');
      const annotations: Record<string, string> = {};
      const r = rig(secondary(), { locate: unplaced, fenced, lineage: pvStore(annotations) });
      await r.reconciler.reconcile('apps/db', signal);
      const b = r.sidecars.get('node-b:7400')!;
      b.setRole('apps.db', 'ROLE_SECONDARY', { generation: 'g1', historyGenerations: ['g0'], consistent: true });
      r.current = { ...r.current, metadata: { ...r.current.metadata, generation: 4 }, spec: { ...r.current.spec, role: 'primary', remote: { endpoint: 'site-a:7401' }, ...spec } };
      return { r, b, fenced, annotations };
    }

    it('promoted to primary: refused while its primary has not demoted; then the secondary pair goes with its lineage kept for the promotion, the holder and the fences after it', async () => {
      const { r, b, fenced, annotations } = await toPromote();
      // Its primary is still connected (InSync), then gone but not demoted: PromotePair's checks, made here.
      await r.reconciler.reconcile('apps/db', signal);
      expect(condition(r, 'Ready')).toMatchObject({ status: 'False', reason: 'PromotionRefused', message: expect.stringContaining('a primary is connected') as unknown });
      b.state = 'PAIR_STATE_RETRYING';
      await r.reconciler.reconcile('apps/db', signal);
      expect(condition(r, 'Ready')?.message).toContain('forcePromote');
      expect(b.pairs.has('apps.db')).toBe(true);
      expect(r.current.status?.fence?.pv).toBe('vol-1');
      expect(fenced.calls.filter((c) => c.startsWith('release'))).toEqual([]);

      b.setRole('apps.db', 'ROLE_SECONDARY', { primaryDemoted: true });
      b.deleteAnswer = { role: 'secondary', generation: 'g1', history: ['g0'], consistent: true };
      fenced.releases = ['waiting'];
      await r.reconciler.reconcile('apps/db', signal);
      expect(b.pairs.size).toBe(0);
      expect(recorded(annotations)).toEqual({ role: 'secondary', generation: 'g1', history: ['g0'], consistent: true, promotion: '2026-01-01T00:00:00.000Z' });
      expect(condition(r, 'Ready')).toMatchObject({ reason: 'Unfencing' });
      expect(r.current.status?.fence?.pv).toBe('vol-1');
      expect(r.events.find((e) => e.reason === 'Promoting')).toMatchObject({ type: 'Normal', message: expect.stringContaining('the old primary takes a delta') as unknown });
      // Unfenced: from here on a primary on a CSI volume (not placed by the fence), which
      // waits for its pod to stage it through the splice.
      await expect(r.reconciler.reconcile('apps/db', signal)).rejects.toBeInstanceOf(TemporaryError);
      expect(fenced.calls.filter((c) => c.startsWith('release'))).toEqual(['release vol-1', 'release vol-1']);
      expect(r.current.status?.fence).toBeUndefined();
      expect(condition(r, 'Ready')?.reason).toBe('VolumeNotAttached');
      // The record stays for the primary the splice gets.
      expect(recorded(annotations)).toMatchObject({ promotion: '2026-01-01T00:00:00.000Z' });
    });

    it('promoted by force while its primary is unreachable (a forced failover): the pair goes with the promotion record, and a Warning says what is lost; force never overrides a connected primary or a resync', async () => {
      const { r, b, fenced, annotations } = await toPromote({ forcePromote: true });
      // Forced, but its primary still replicates to it: that primary must demote, force or not.
      await r.reconciler.reconcile('apps/db', signal);
      expect(condition(r, 'Ready')).toMatchObject({ status: 'False', reason: 'PromotionRefused', message: expect.stringContaining('a primary is connected') as unknown });
      // Mid-resync: no point in time to promote, force or not.
      b.state = 'PAIR_STATE_RESYNCING';
      b.setRole('apps.db', 'ROLE_SECONDARY', { consistent: false });
      await r.reconciler.reconcile('apps/db', signal);
      expect(condition(r, 'Ready')?.message).toContain('in the middle of a resync');
      expect(condition(r, 'Ready')?.message).not.toContain('forcePromote');
      expect(b.pairs.has('apps.db')).toBe(true);

      // The primary's site gone: unreachable, never demoted.
      b.state = 'PAIR_STATE_RETRYING';
      b.setRole('apps.db', 'ROLE_SECONDARY', { consistent: true });
      b.deleteAnswer = { role: 'secondary', generation: 'g1', history: ['g0'], consistent: true };
      fenced.releases = ['waiting'];
      await r.reconciler.reconcile('apps/db', signal);
      expect(b.pairs.size).toBe(0);
      // The new primary on the splice continues g1 with a bitmap, so the old primary takes a
      // delta when it returns (and learns of the newer generation).
      expect(recorded(annotations)).toEqual({ role: 'secondary', generation: 'g1', history: ['g0'], consistent: true, promotion: '2026-01-01T00:00:00.000Z' });
      const promoting = r.events.find((e) => e.reason === 'Promoting');
      expect(promoting).toMatchObject({ type: 'Warning' });
      expect(promoting?.message).toContain('promoted by force from generation g1');
      expect(promoting?.message).toContain('writes it acknowledged after that are lost');
      expect(promoting?.message).toContain('the old primary takes a delta');
      expect(condition(r, 'Ready')).toMatchObject({ reason: 'Unfencing' });
      await expect(r.reconciler.reconcile('apps/db', signal)).rejects.toBeInstanceOf(TemporaryError);
      expect(r.current.status?.fence).toBeUndefined();
      expect(recorded(annotations)).toMatchObject({ promotion: '2026-01-01T00:00:00.000Z' });
    });

    it('a pod stages the promoted volume: the primary on the splice continues the promotion record, then the PV records it as a primary', async () => {
      const annotations: Record<string, string> = { [LINEAGE_ANNOTATION]: JSON.stringify({ role: 'secondary', generation: 'g1', history: ['g0'], consistent: true, promotion: '2026-01-01T00:00:00.000Z' }) };
      const at: LocateResult = { location: { pvName: 'pvc-1', node: 'node-a', csi, usedBy: ['apps/db-0'], spliceOptIn: 'x' } };
      const r = rig(pairObject(), { locate: at, fenced: new FakeFenced(), lineage: pvStore(annotations) });
      r.sidecar.stage('vol-1', '/dev/loop4');
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.sidecar.received[0]!.lineage).toEqual({ role: 'ROLE_SECONDARY', generation: 'g1', history: ['g0'], consistent: true, promotion: '2026-01-01T00:00:00.000Z' });
      expect(r.events.find((e) => e.reason === 'Created')?.message).toContain("continuing its volume's data lineage from generation g1 (promoted");
      expect(r.sidecar.volumes!.get('vol-1')?.state).toBe('attached');
      r.sidecar.setRole('apps.db', 'ROLE_PRIMARY', { generation: 'g2', bitmapGeneration: 'g1', historyGenerations: ['g1', 'g0'] });
      await r.reconciler.reconcile('apps/db', signal);
      expect(recorded(annotations)).toEqual({ role: 'primary', generation: 'g2', history: ['g1', 'g0'], consistent: true });
    });

    it('a CSI primary demoted: fenced first, waits (DemotionWaiting) for its pods and the device\'s openers, then demotes in place, detaches and goes with its lineage; the fenced flow places the secondary', async () => {
      const fenced = new FakeFenced();
      const annotations: Record<string, string> = {};
      const at: LocateResult = { location: { pvName: 'pvc-1', node: 'node-a', csi, usedBy: ['apps/db-0'], spliceOptIn: 'x' } };
      const r = rig(pairObject(), { locate: at, fenced, lineage: pvStore(annotations) });
      r.sidecar.stage('vol-1', '/dev/loop4');
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.current.status?.appliedRole).toBe('primary');
      r.current = { ...r.current, metadata: { ...r.current.metadata, generation: 4 }, spec: { ...r.current.spec, role: 'secondary', remote: undefined } };
      fenced.users = [{ namespace: 'apps', name: 'db-0', node: 'node-a', phase: 'Running' }];
      const n = r.sidecar.calls.length;
      expect(await r.reconciler.reconcile('apps/db', signal)).toEqual({ requeueAfterMs: 1000 });
      expect(fenced.calls).toEqual(['fence pvc-1 vol-1']);
      expect(condition(r, 'Ready')).toMatchObject({ status: 'False', reason: 'DemotionWaiting', message: expect.stringContaining('pod(s) apps/db-0 on node node-a still use the claim') as unknown });
      // Still the primary, still replicating, still where it was.
      expect(r.current.status).toMatchObject({ state: 'InSync', role: 'primary', appliedRole: 'primary', sidecar: { node: 'node-a' }, fence: { pv: 'vol-1' } });
      fenced.users = [];
      await r.reconciler.reconcile('apps/db', signal);
      expect(condition(r, 'Ready')?.message).toContain('/dev/mapper/blockmirror-vol-1 is still open 1 time(s)');
      r.sidecar.volumes!.set('vol-1', { ...r.sidecar.volumes!.get('vol-1')!, openCount: 0 });
      r.sidecar.deleteAnswer = { role: 'secondary', generation: 'g1', history: [], consistent: true };
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.sidecar.calls.slice(n).filter((c) => /^(demote|detach|delete|create|promote)/.test(c))).toEqual(['demote apps.db force=false wait=60000', 'detach vol-1', 'delete apps.db']);
      expect(recorded(annotations)).toEqual({ role: 'secondary', generation: 'g1', history: [], consistent: true });
      expect(r.events.map((e) => e.reason)).toEqual(expect.arrayContaining(['DemotionWaiting', 'Demoting', 'Demoted', 'DemotedPairRemoved']));
      expect(r.events.filter((e) => e.reason === 'DemotionWaiting')).toHaveLength(1);
      // The same pass goes on as a fenced secondary's, which waits for its holder pod.
      expect(fenced.calls.at(-1)).toBe('place pvc-1 vol-1 db-data Filesystem');
      expect(r.current.status).toMatchObject({ appliedRole: 'secondary', state: 'Pending' });
      expect(condition(r, 'Ready')?.reason).toBe('Staging');
      // The holder's node holds the raw device: the secondary there continues the lineage.
      fenced.held('node-a', '/dev/loop4');
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.sidecar.received.at(-1)).toMatchObject({ role: 'ROLE_SECONDARY', volumePath: '/dev/loop4', lineage: { role: 'ROLE_SECONDARY', generation: 'g1', consistent: true } });
      expect(r.events.at(-2)).toMatchObject({ reason: 'Created', message: expect.stringContaining("continuing its volume's data lineage at generation g1") as unknown });
    });

    it('a CSI primary holding blocks its peer never confirmed is recorded as a primary when it goes: no delta leaves them behind', async () => {
      const fenced = new FakeFenced();
      const annotations: Record<string, string> = {};
      const at: LocateResult = { location: { pvName: 'pvc-1', node: 'node-a', csi, usedBy: [], spliceOptIn: 'x' } };
      const r = rig(pairObject(), { locate: at, fenced, lineage: pvStore(annotations) });
      r.sidecar.stage('vol-1', '/dev/loop4');
      await r.reconciler.reconcile('apps/db', signal);
      // It demoted itself (its peer was promoted) with writes its peer never got.
      r.sidecar.setRole('apps.db', 'ROLE_SECONDARY', { fenced: true, peerGeneration: 'g2', dirtyBlocks: 3, consistent: true });
      r.current = { ...r.current, spec: { ...r.current.spec, role: 'secondary', remote: undefined } };
      r.sidecar.deleteAnswer = { role: 'secondary', generation: 'g1', history: [], consistent: true };
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.sidecar.calls.filter((c) => /^(demote|detach|delete)/.test(c))).toEqual(['detach vol-1', 'delete apps.db']);
      expect(recorded(annotations)).toEqual({ role: 'primary', generation: 'g1', history: [], consistent: true });
    });

    it('a demotion given up while it waits: the pair stays the primary on the splice, and only the fences go', async () => {
      const fenced = new FakeFenced();
      const at: LocateResult = { location: { pvName: 'pvc-1', node: 'node-a', csi, usedBy: ['apps/db-0'], spliceOptIn: 'x' } };
      const r = rig(pairObject(), { locate: at, fenced });
      r.sidecar.stage('vol-1', '/dev/loop4');
      await r.reconciler.reconcile('apps/db', signal);
      r.current = { ...r.current, spec: { ...r.current.spec, role: 'secondary', remote: undefined } };
      fenced.users = [{ namespace: 'apps', name: 'db-0', node: 'node-a', phase: 'Running' }];
      await r.reconciler.reconcile('apps/db', signal);
      expect(condition(r, 'Ready')?.reason).toBe('DemotionWaiting');
      r.current = { ...r.current, spec: { ...r.current.spec, role: 'primary', remote: { endpoint: 'site-b:7401' } } };
      await r.reconciler.reconcile('apps/db', signal);
      expect(fenced.calls.at(-1)).toBe('release vol-1');
      expect(r.sidecar.calls.filter((c) => /^(demote|detach|delete|promote)/.test(c))).toEqual([]);
      expect(r.current.status).toMatchObject({ state: 'InSync', appliedRole: 'primary' });
      expect(r.current.status?.fence).toBeUndefined();
    });
  });

  describe('role changes on a live pair (kubectl patch of spec.role)', () => {
    const ready = (r: ReturnType<typeof rig>) => r.current.status?.conditions?.find((c) => c.type === 'Ready');
    const patchSpec = (r: ReturnType<typeof rig>, spec: Partial<ReplicationPair['spec']>): void => {
      const g = (r.current.metadata.generation ?? 0) + 1;
      r.current = { ...r.current, metadata: { ...r.current.metadata, generation: g }, spec: { ...r.current.spec, ...spec } };
    };
    const secondary = (): ReplicationPair => pairObject({ role: 'secondary', remote: undefined });

    it('primary -> secondary demotes through DemotePair (no force, a wait the call outlasts), keeping the pair: no delete, no create, no update', async () => {
      const r = rig(pairObject());
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.current.status).toMatchObject({ role: 'primary', appliedRole: 'primary', generation: 'g1', fenced: false });
      patchSpec(r, { role: 'secondary' });
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.sidecar.calls.slice(2)).toEqual(['get apps.db', 'demote apps.db force=false wait=60000']);
      expect(r.current.status).toMatchObject({ role: 'secondary', appliedRole: 'secondary', fenced: true, state: 'InSync' });
      expect(ready(r)).toMatchObject({ status: 'True' });
      expect(r.events.map((e) => e.reason).slice(2)).toEqual(['Demoting', 'Demoted']);
      // Settled: the demoted primary keeps its export (fenced) and its peer; nothing more is called.
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.sidecar.calls.slice(4)).toEqual(['get apps.db']);
      // A tunable changed later is updated in place with the export and the peer kept.
      patchSpec(r, { sync: { writeTimeoutMs: 900 } });
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.sidecar.calls.slice(5)).toEqual(['get apps.db', 'update apps.db']);
      expect(r.sidecar.received.at(-1)).toMatchObject({ role: 'ROLE_SECONDARY', nbdListen: '127.0.0.1:0', peerAddress: 'site-b:7401', writeTimeoutMs: 900 });
    });

    it('a demotion the sidecar refuses (the peer unreachable) leaves the primary, says what to do, warns once and is retried', async () => {
      const r = rig(pairObject());
      await r.reconciler.reconcile('apps/db', signal);
      r.sidecar.refuseDemote = 'pair apps.db not demoted: 1048576 bytes out of sync were not shipped and confirmed in time';
      patchSpec(r, { role: 'secondary' });
      await expect(r.reconciler.reconcile('apps/db', signal)).rejects.toBeInstanceOf(TemporaryError);
      expect(ready(r)).toMatchObject({ status: 'False', reason: 'DemotionFailed' });
      expect(ready(r)!.message).toContain('1048576 bytes out of sync');
      expect(ready(r)!.message).toContain('"discardMyData":true');
      expect(r.current.status).toMatchObject({ role: 'primary', appliedRole: 'primary' });
      await expect(r.reconciler.reconcile('apps/db', signal)).rejects.toBeInstanceOf(TemporaryError);
      expect(r.sidecar.calls.filter((c) => c.startsWith('demote'))).toHaveLength(2);
      expect(r.events.filter((e) => e.reason === 'DemotionFailed')).toHaveLength(1);
      r.sidecar.refuseDemote = undefined;
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.current.status).toMatchObject({ role: 'secondary', appliedRole: 'secondary' });
      expect(r.sidecar.calls.filter((c) => /^(delete|create)/.test(c))).toEqual(['create apps.db']);
    });

    it('secondary -> primary promotes through PromotePair with the remote as its peer and an export, keeping the pair', async () => {
      const r = rig(secondary());
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.current.status).toMatchObject({ role: 'secondary', appliedRole: 'secondary', fenced: true });
      patchSpec(r, { role: 'primary', remote: { endpoint: 'site-a:7401', name: 'db-a' } });
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.sidecar.calls.slice(2)).toEqual(['get apps.db', 'promote apps.db force=false peer=site-a:7401 peerPair=apps.db-a nbd=127.0.0.1:0']);
      expect(r.current.status).toMatchObject({ role: 'primary', appliedRole: 'primary', generation: 'g2', fenced: false, lastPromotionTime: new Date(1_700_000_100_000).toISOString() });
      expect(r.events.find((e) => e.reason === 'Promoted')).toMatchObject({ type: 'Normal' });
      expect(r.events.find((e) => e.reason === 'Promoted')!.message).toContain('generation g2 (from g1)');
      // The pair promoted as asked: no settings update follows.
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.sidecar.calls.slice(4)).toEqual(['get apps.db']);
    });

    it('a refused promotion says what to patch to force it and what is lost; with forcePromote it goes, with a Warning naming the data-loss window', async () => {
      const r = rig(pairObject({ role: 'secondary', remote: undefined, mode: 'async' }));
      await r.reconciler.reconcile('apps/db', signal);
      r.sidecar.refusePromote = { message: 'pair apps.db: its primary (generation g1) has not demoted itself with everything shipped here; demote it first, or promote with force', unlessForced: true };
      r.sidecar.setRole('apps.db', 'ROLE_SECONDARY', { lastConsistencyPointTimeMs: 1_700_000_040_000 });
      patchSpec(r, { role: 'primary', remote: { endpoint: 'site-a:7401' } });
      expect(await r.reconciler.reconcile('apps/db', signal)).toEqual({ requeueAfterMs: 1000 });
      const refused = ready(r)!;
      expect(refused).toMatchObject({ status: 'False', reason: 'PromotionRefused' });
      expect(refused.message).toContain('has not demoted itself');
      expect(refused.message).toContain(`kubectl patch rp db -n apps --type=merge -p '{"spec":{"forcePromote":true}}'`);
      expect(refused.message).toContain(`after the consistency point this side holds (${new Date(1_700_000_040_000).toISOString()})`);
      expect(r.current.status).toMatchObject({ role: 'secondary', appliedRole: 'secondary' });
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.events.filter((e) => e.reason === 'PromotionRefused')).toEqual([{ type: 'Warning', reason: 'PromotionRefused', message: refused.message }]);

      patchSpec(r, { forcePromote: true });
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.sidecar.calls.at(-1)).toBe('promote apps.db force=true peer=site-a:7401 peerPair=apps.db nbd=127.0.0.1:0');
      expect(r.current.status).toMatchObject({ role: 'primary', appliedRole: 'primary', promotedPointTime: new Date(1_700_000_050_000).toISOString() });
      expect(ready(r)).toMatchObject({ status: 'True' });
      const promoted = r.events.find((e) => e.reason === 'Promoted')!;
      expect(promoted.type).toBe('Warning');
      expect(promoted.message).toContain(`as of ${new Date(1_700_000_050_000).toISOString()} (the last consistency group applied here)`);
    });

    it('a refusal force cannot overcome (a resync under way) does not suggest force', async () => {
      const r = rig(secondary());
      await r.reconciler.reconcile('apps/db', signal);
      r.sidecar.refusePromote = { message: 'pair apps.db is in the middle of a resync from generation g1', unlessForced: false };
      patchSpec(r, { role: 'primary', remote: { endpoint: 'site-a:7401' }, forcePromote: true });
      await r.reconciler.reconcile('apps/db', signal);
      expect(ready(r)).toMatchObject({ reason: 'PromotionRefused', message: 'not promoted: pair apps.db is in the middle of a resync from generation g1. The operator tries again.' });
    });

    it('a primary whose sidecar demoted itself is never promoted back: Ready=False Demoted telling the user to patch role secondary, one Warning; then a switchover back promotes it', async () => {
      const r = rig(pairObject());
      await r.reconciler.reconcile('apps/db', signal);
      r.sidecar.setRole('apps.db', 'ROLE_SECONDARY', { fenced: true, peerGeneration: 'g2', state: 'PAIR_STATE_RESYNCING' });
      for (let i = 0; i < 3; i++) expect(await r.reconciler.reconcile('apps/db', signal)).toEqual({ requeueAfterMs: 1000 });
      expect(r.sidecar.calls.filter((c) => /^(promote|demote|delete|create|update)/.test(c))).toEqual(['create apps.db']);
      const demoted = ready(r)!;
      expect(demoted).toMatchObject({ status: 'False', reason: 'Demoted' });
      expect(demoted.message).toContain('its peer holds generation g2, newer than and descending from this side\'s g1');
      expect(demoted.message).toContain(`kubectl patch rp db -n apps --type=merge -p '{"spec":{"role":"secondary","forcePromote":null}}'`);
      expect(r.current.status).toMatchObject({ role: 'secondary', appliedRole: 'primary', fenced: true, peerGeneration: 'g2' });
      expect(r.events.filter((e) => e.reason === 'Demoted')).toEqual([{ type: 'Warning', reason: 'Demoted', message: demoted.message }]);

      // The user agrees: nothing to call, the pair is a secondary now.
      patchSpec(r, { role: 'secondary' });
      await r.reconciler.reconcile('apps/db', signal);
      expect(ready(r)).toMatchObject({ status: 'True' });
      expect(r.current.status?.appliedRole).toBe('secondary');
      // Later, bringing the application home: a promotion, asked for by a change of the spec.
      patchSpec(r, { role: 'primary' });
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.sidecar.calls.filter((c) => c.startsWith('promote'))).toEqual(['promote apps.db force=false peer=site-b:7401 peerPair=apps.db nbd=']);
      expect(r.current.status?.role).toBe('primary');
    });

    it('a demotion the cache has not seen yet is not taken for the peer\'s: the pass writes nothing and looks again, and the role set back is carried out', async () => {
      const r = rig(pairObject());
      await r.reconciler.reconcile('apps/db', signal);
      // Demoted on the user's patch; the user sets the role back at once. The next pass reads
      // the cache before the watch brought the status patch that recorded the demotion.
      patchSpec(r, { role: 'secondary' });
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.current.status?.appliedRole).toBe('secondary');
      const demoted = r.current;
      r.current = { ...demoted, metadata: { ...demoted.metadata, resourceVersion: '41' }, spec: { ...demoted.spec, role: 'primary' }, status: { ...demoted.status!, appliedRole: 'primary' } };
      r.serverVersion = '42';
      const patches = r.patches.length;
      const events = r.events.length;
      expect(await r.reconciler.reconcile('apps/db', signal)).toEqual({ requeueAfterMs: 250 });
      // No status written (it would carry the stale appliedRole back), no Warning that the peer demoted it.
      expect(r.patches.length).toBe(patches);
      expect(r.events.slice(events)).toEqual([]);
      // The watch caught up: the promotion the user asked for.
      r.current = { ...r.current, metadata: { ...r.current.metadata, resourceVersion: '42' }, status: { ...demoted.status!, appliedRole: 'secondary' } };
      r.serverVersion = undefined;
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.sidecar.calls.filter((c) => c.startsWith('promote'))).toHaveLength(1);
      expect(r.current.status).toMatchObject({ role: 'primary', appliedRole: 'primary' });
    });

    it('split brain: a SplitBrain state and condition, one Warning naming both generations and how to resolve, nothing called; discardMyData then resolves it once', async () => {
      const r = rig(pairObject());
      await r.reconciler.reconcile('apps/db', signal);
      r.sidecar.state = 'PAIR_STATE_SPLIT_BRAIN';
      r.sidecar.setRole('apps.db', 'ROLE_PRIMARY', { generation: 'gA', peerGeneration: 'gB', lastError: 'split brain: both sides were written as primaries since generation g1' });
      await r.reconciler.reconcile('apps/db', signal);
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.current.status?.state).toBe('SplitBrain');
      const c = ready(r)!;
      expect(c).toMatchObject({ status: 'False', reason: 'SplitBrain' });
      expect(c.message).toContain('this side (primary) holds generation gA, its peer gB');
      expect(c.message).toContain('since generation g1');
      expect(c.message).toContain(`'{"spec":{"role":"secondary","discardMyData":true,"forcePromote":null}}'`);
      expect(r.current.status?.conditions?.find((x) => x.type === 'Synchronized')).toMatchObject({ status: 'False', reason: 'SplitBrain' });
      expect(r.current.status?.conditions?.find((x) => x.type === 'Degraded')).toMatchObject({ status: 'True', reason: 'SplitBrain' });
      const warnings = r.events.filter((e) => e.reason === 'SplitBrain');
      expect(warnings).toHaveLength(1);
      expect(warnings[0]!.type).toBe('Warning');
      expect(warnings[0]!.message).toContain('gA');
      expect(warnings[0]!.message).toContain('gB');
      expect(r.sidecar.calls.filter((x) => !x.startsWith('get'))).toEqual(['create apps.db']);

      // This side's changes go: demoted at once and overwritten; asked once.
      patchSpec(r, { role: 'secondary', discardMyData: true });
      await r.reconciler.reconcile('apps/db', signal);
      r.sidecar.state = 'PAIR_STATE_RESYNCING';
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.sidecar.calls.filter((x) => /^(discard|demote)/.test(x))).toEqual(['discard apps.db']);
      expect(r.events.find((e) => e.reason === 'DiscardingMyData')).toMatchObject({ type: 'Warning', message: expect.stringContaining('this side (primary, generation gA) is demoted at once') as unknown as string });
      expect(r.current.status).toMatchObject({ role: 'secondary', appliedRole: 'secondary', state: 'Resyncing' });
      // Overwritten: the sidecar drops its flag; the spec's flag left set asks nothing more.
      r.sidecar.setRole('apps.db', 'ROLE_SECONDARY', { discardMyData: false, generation: 'gB' });
      r.sidecar.state = 'PAIR_STATE_IN_SYNC';
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.sidecar.calls.filter((x) => x.startsWith('discard'))).toHaveLength(1);
      expect(ready(r)).toMatchObject({ status: 'True' });
    });

    it('discardMyData on a secondary in split brain marks it to be overwritten, once', async () => {
      const r = rig(pairObject({ role: 'secondary', remote: undefined }));
      await r.reconciler.reconcile('apps/db', signal);
      r.sidecar.state = 'PAIR_STATE_SPLIT_BRAIN';
      await r.reconciler.reconcile('apps/db', signal);
      patchSpec(r, { discardMyData: true });
      await r.reconciler.reconcile('apps/db', signal);
      await r.reconciler.reconcile('apps/db', signal);
      expect(r.sidecar.calls.filter((x) => x.startsWith('discard'))).toEqual(['discard apps.db']);
      expect(r.events.find((e) => e.reason === 'DiscardingMyData')!.message).toContain("this side (secondary, generation g1) is its data is overwritten by its peer's");
    });

    it('a CSI primary that demoted itself is reported, not recreated or detached', async () => {
      const csiAt: LocateResult = { location: { pvName: 'pvc-1', node: 'node-a', csi: { driver: 'lab.csi', volumeHandle: 'vol-1', splicePv: 'vol-1', volumeMode: 'Filesystem' }, usedBy: ['apps/db-0'], spliceOptIn: 'x' } };
      const r = rig(pairObject(), { locate: csiAt });
      r.sidecar.stage('vol-1', '/dev/loop4');
      await r.reconciler.reconcile('apps/db', signal);
      r.sidecar.setRole('apps.db', 'ROLE_SECONDARY', { fenced: true, peerGeneration: 'g2' });
      await r.reconciler.reconcile('apps/db', signal);
      expect(ready(r)).toMatchObject({ status: 'False', reason: 'Demoted' });
      expect(r.sidecar.calls.filter((c) => /^(detach|delete|create|promote)/.test(c))).toEqual(['create apps.db']);
      expect(r.sidecar.volumes!.get('vol-1')?.state).toBe('attached');
    });
  });

  it('a local primary a pod mounts is written around the export: refused, never InSync; a secondary replicates on (its sidecar fences the pod)', async () => {
    const used: LocateResult = { location: { pvName: 'pv-1', node: 'node-a', path: '/dev/loop3', usedBy: ['apps/db-0'] } };
    const r = rig(pairObject(), { locate: used });
    await r.reconciler.reconcile('apps/db', signal);
    expect(r.sidecar.pairs.size).toBe(0);
    expect(r.current.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'WrittenAround' });
    expect(r.current.status?.conditions?.find((c) => c.type === 'Synchronized')?.status).toBe('False');
    expect(r.events.find((e) => e.reason === 'WrittenAround')?.message).toContain('apps/db-0');
    const s = rig(pairObject({ role: 'secondary', remote: undefined }), { locate: used });
    await s.reconciler.reconcile('apps/db', signal);
    expect(s.sidecar.pairs.get('apps.db')?.spec?.role).toBe('ROLE_SECONDARY');
  });
});
