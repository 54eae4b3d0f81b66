import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  ListWatch,
  PatchStrategy,
  StorageV1Api,
  V1MicroTime,
  Watch,
  setHeaderOptions,
  type KubernetesListObject,
  type KubernetesObject,
  type V1Lease,
  type V1PersistentVolume,
  type V1Pod,
} from '@kubernetes/client-node';
import { KubeApiError } from './kube-api-error.js';
import { GROUP, PLURAL, VERSION, type ReplicationPair, type ReplicationPairStatus } from '../api/replication-pair.js';

/**
 * The one module that talks to the Kubernetes API. Everything else in the operator works
 * on the plain types below, so it can be tested without an API server.
 */


export interface ClaimInfo {
  name: string;
  namespace: string;
  /** The bound PersistentVolume; undefined while Pending. */
  volumeName?: string;
  phase?: string;
}

export interface VolumeInfo {
  name: string;
  /** `local` volumes: the path on the node (a file or a block device). */
  localPath?: string;
  /** CSI volumes; `volumeAttributes` is the volume_context the node plugin is given. */
  csi?: { driver: string; volumeHandle: string; volumeAttributes: Record<string, string> };
  volumeMode: 'Filesystem' | 'Block';
  storageClassName?: string;
  /** Nodes the PV's nodeAffinity allows (kubernetes.io/hostname values), if any. */
  affinityNodes: string[];
  /** The PV's annotations (the data lineage a deleted pair left is one). */
  annotations?: Record<string, string>;
}

/** A pod that mounts a claim: where it is scheduled, if it is. */
export interface ClaimUser {
  namespace: string;
  name: string;
  node?: string;
  /** Pending, Running, ... (Running: its volumes were published to it). */
  phase?: string;
}

/** A pod the operator makes, as the API takes it. */
export type PodManifest = V1Pod;

/** A pod as the operator looks at one it made. */
export interface PodInfo extends ClaimUser {
  /** Being deleted (a deletionTimestamp): it goes once the kubelet has torn it down. */
  deleting: boolean;
  labels: Record<string, string>;
}

export interface Attachment {
  node: string;
  attached: boolean;
}

export interface LeaseRecord {
  name: string;
  namespace: string;
  holder?: string;
  leaseDurationSeconds?: number;
  renewTime?: Date;
  acquireTime?: Date;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  resourceVersion?: string;
}

export interface PairEventHandlers {
  onUpsert(pair: ReplicationPair): void;
  onDelete(pair: ReplicationPair): void;
  /** The watch failed and will restart after `retryInMs`. */
  onError?(err: unknown, retryInMs: number): void;
}

export interface PairCache {
  get(namespace: string, name: string): ReplicationPair | undefined;
  list(): readonly ReplicationPair[];
  stop(): Promise<void>;
}

export interface EventRecord {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/** Converts a client error into a KubeApiError with the API server's own message. */
function apiError(what: string, err: unknown): KubeApiError {
  if (err instanceof ApiException) {
    const body = typeof err.body === 'string' ? err.body : JSON.stringify(err.body);
    let message = body;
    try {
      message = (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      // not JSON: keep the text
    }
    return new KubeApiError(`${what}: ${message}`, err.code, err);
  }
  return new KubeApiError(`${what}: ${(err as Error).message}`, 0, err);
}

async function call<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw apiError(what, err);
  }
}

const pairPath = `/apis/${GROUP}/${VERSION}/${PLURAL}`;

export class KubeClient {
  readonly #kc: KubeConfig;
  readonly #core: CoreV1Api;
  readonly #storage: StorageV1Api;
  readonly #custom: CustomObjectsApi;
  readonly #coordination: CoordinationV1Api;
  readonly #component: string;

  /** `kubeconfig`: a file; undefined: in-cluster credentials or the default file. */
  constructor(opts: { kubeconfig?: string; component: string }) {
    this.#kc = new KubeConfig();
    if (opts.kubeconfig !== undefined) this.#kc.loadFromFile(opts.kubeconfig);
    else this.#kc.loadFromDefault();
    this.#core = this.#kc.makeApiClient(CoreV1Api);
    this.#storage = this.#kc.makeApiClient(StorageV1Api);
    this.#custom = this.#kc.makeApiClient(CustomObjectsApi);
    this.#coordination = this.#kc.makeApiClient(CoordinationV1Api);
    this.#component = opts.component;
  }

  // ---- ReplicationPairs ----

  /**
   * Lists and watches ReplicationPairs in every namespace. The client re-lists by itself
   * on 410 Gone; after any other watch error it stops, so this restarts it with backoff.
   */
  watchPairs(handlers: PairEventHandlers): PairCache {
    // Custom objects arrive as plain JSON (timestamps as strings), which is what
    // ReplicationPair describes; the client's generic type says Date, hence the casts.
    const listFn = (): Promise<KubernetesListObject<KubernetesObject>> =>
      this.#custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL }) as Promise<KubernetesListObject<KubernetesObject>>;
    const informer = new ListWatch<KubernetesObject>(pairPath, new Watch(this.#kc), listFn, false);
    const asPair = (o: KubernetesObject): ReplicationPair => o as unknown as ReplicationPair;
    informer.on('add', (p) => handlers.onUpsert(asPair(p)));
    informer.on('update', (p) => handlers.onUpsert(asPair(p)));
    informer.on('delete', (p) => handlers.onDelete(asPair(p)));
    let stopped = false;
    let failures = 0;
    let timer: NodeJS.Timeout | undefined;
    const start = (): void => {
      informer.start().then(
        () => (failures = 0),
        (err: unknown) => restart(err),
      );
    };
    const restart = (err: unknown): void => {
      if (stopped) return;
      const retryInMs = Math.min(500 * 2 ** failures++, 30_000);
      handlers.onError?.(err, retryInMs);
      timer = setTimeout(start, retryInMs);
    };
    informer.on('error', (err) => restart(err));
    informer.on('connect', () => (failures = 0));
    start();
    return {
      get: (namespace, name) => {
        const o = informer.get(name, namespace);
        return o === undefined ? undefined : asPair(o);
      },
      list: () => informer.list().map(asPair),
      stop: async () => {
        stopped = true;
        clearTimeout(timer);
        await informer.stop();
      },
    };
  }

  /**
   * One merge patch of the status subresource. A merge patch keeps fields it does not
   * mention, so those of `previous` that `status` no longer has are sent as null.
   */
  async patchPairStatus(namespace: string, name: string, status: ReplicationPairStatus, previous?: ReplicationPairStatus): Promise<void> {
    const body: Record<string, unknown> = { ...status };
    for (const k of Object.keys(previous ?? {})) if (!(k in body)) body[k] = null;
    await call(`patch status of ${namespace}/${name}`, () =>
      this.#custom.patchNamespacedCustomObjectStatus(
        { group: GROUP, version: VERSION, plural: PLURAL, namespace, name, body: { status: body }, fieldManager: this.#component },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    );
  }

  /**
   * The resourceVersion of a ReplicationPair as the API server has it now, not as a cache
   * last saw it (undefined: gone): whether a pass's copy is behind the operator's own writes.
   */
  async pairResourceVersion(namespace: string, name: string): Promise<string | undefined> {
    try {
      const o = (await this.#custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, name })) as { metadata?: { resourceVersion?: string } };
      return o.metadata?.resourceVersion;
    } catch (err) {
      const e = apiError(`get ReplicationPair ${namespace}/${name}`, err);
      if (e.status === 404) return undefined;
      throw e;
    }
  }

  /**
   * Sets the finalizer list, guarded by resourceVersion: a concurrent change makes it
   * fail with 409 instead of dropping someone else's finalizer.
   */
  async setFinalizers(namespace: string, name: string, finalizers: string[], resourceVersion: string | undefined): Promise<void> {
    await call(`update finalizers of ${namespace}/${name}`, () =>
      this.#custom.patchNamespacedCustomObject(
        {
          group: GROUP,
          version: VERSION,
          plural: PLURAL,
          namespace,
          name,
          body: { metadata: { finalizers, ...(resourceVersion !== undefined ? { resourceVersion } : {}) } },
          fieldManager: this.#component,
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    );
  }

  // ---- volumes ----

  async getClaim(namespace: string, name: string): Promise<ClaimInfo | undefined> {
    try {
      const pvc = await this.#core.readNamespacedPersistentVolumeClaim({ namespace, name });
      return { name, namespace, volumeName: pvc.spec?.volumeName || undefined, phase: pvc.status?.phase };
    } catch (err) {
      const e = apiError(`get PersistentVolumeClaim ${namespace}/${name}`, err);
      if (e.status === 404) return undefined;
      throw e;
    }
  }

  async getVolume(name: string): Promise<VolumeInfo | undefined> {
    let pv: V1PersistentVolume;
    try {
      pv = await this.#core.readPersistentVolume({ name });
    } catch (err) {
      const e = apiError(`get PersistentVolume ${name}`, err);
      if (e.status === 404) return undefined;
      throw e;
    }
    const affinityNodes: string[] = [];
    for (const term of pv.spec?.nodeAffinity?.required?.nodeSelectorTerms ?? []) {
      for (const expr of term.matchExpressions ?? []) {
        if (expr.key === 'kubernetes.io/hostname' && expr.operator === 'In') affinityNodes.push(...(expr.values ?? []));
      }
    }
    const csi = pv.spec?.csi;
    return {
      name,
      localPath: pv.spec?.local?.path,
      csi: csi !== undefined ? { driver: csi.driver, volumeHandle: csi.volumeHandle, volumeAttributes: csi.volumeAttributes ?? {} } : undefined,
      volumeMode: pv.spec?.volumeMode === 'Block' ? 'Block' : 'Filesystem',
      ...(pv.spec?.storageClassName ? { storageClassName: pv.spec.storageClassName } : {}),
      affinityNodes,
      ...(pv.metadata?.annotations ? { annotations: pv.metadata.annotations } : {}),
    };
  }

  /** A merge patch of a PersistentVolume's annotations (null removes one). */
  async patchVolumeAnnotations(name: string, annotations: Record<string, string | null>): Promise<void> {
    await call(`annotate PersistentVolume ${name}`, () =>
      this.#core.patchPersistentVolume({ name, body: { metadata: { annotations } }, fieldManager: this.#component }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)),
    );
  }

  /** A StorageClass's parameters; undefined when there is no such class. */
  async storageClassParameters(name: string): Promise<Record<string, string> | undefined> {
    try {
      return (await this.#storage.readStorageClass({ name })).parameters ?? {};
    } catch (err) {
      const e = apiError(`get StorageClass ${name}`, err);
      if (e.status === 404) return undefined;
      throw e;
    }
  }

  /**
   * Pods of `namespace` whose volumes name the claim, and have not ended: the writers of
   * its volume, and where a volume of a driver without attach is.
   */
  async podsUsingClaim(namespace: string, claim: string): Promise<ClaimUser[]> {
    const list = await call(`list Pods in ${namespace}`, () => this.#core.listNamespacedPod({ namespace }));
    return list.items
      .filter((p) => p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed')
      .filter((p) => (p.spec?.volumes ?? []).some((v) => v.persistentVolumeClaim?.claimName === claim))
      .map((p) => ({ namespace, name: p.metadata?.name ?? '', ...(p.spec?.nodeName ? { node: p.spec.nodeName } : {}), ...(p.status?.phase ? { phase: p.status.phase } : {}) }));
  }

  // ---- pods the operator makes (a secondary's holder pod) ----

  async getPod(namespace: string, name: string): Promise<PodInfo | undefined> {
    let p: V1Pod;
    try {
      p = await this.#core.readNamespacedPod({ namespace, name });
    } catch (err) {
      const e = apiError(`get Pod ${namespace}/${name}`, err);
      if (e.status === 404) return undefined;
      throw e;
    }
    return {
      namespace,
      name,
      ...(p.spec?.nodeName ? { node: p.spec.nodeName } : {}),
      ...(p.status?.phase ? { phase: p.status.phase } : {}),
      deleting: p.metadata?.deletionTimestamp !== undefined,
      labels: p.metadata?.labels ?? {},
    };
  }

  /** Creates the pod; one of that name already there is left as it is. */
  async createPod(pod: PodManifest): Promise<void> {
    const namespace = pod.metadata?.namespace ?? '';
    try {
      await this.#core.createNamespacedPod({ namespace, body: pod });
    } catch (err) {
      const e = apiError(`create Pod ${namespace}/${pod.metadata?.name ?? ''}`, err);
      if (e.status !== 409) throw e;
    }
  }

  /** Deletes the pod (graceful); one already gone is fine. */
  async deletePod(namespace: string, name: string): Promise<void> {
    try {
      await this.#core.deleteNamespacedPod({ namespace, name });
    } catch (err) {
      const e = apiError(`delete Pod ${namespace}/${name}`, err);
      if (e.status !== 404) throw e;
    }
  }

  /** VolumeAttachments of `pvName` (CSI volumes: which node has it attached). */
  async attachmentsOf(pvName: string): Promise<Attachment[]> {
    const list = await call('list VolumeAttachments', () => this.#storage.listVolumeAttachment());
    return list.items
      .filter((va) => va.spec.source.persistentVolumeName === pvName)
      .map((va) => ({ node: va.spec.nodeName, attached: va.status?.attached === true }));
  }

  /** A Secret's data, decoded; undefined when it does not exist. */
  async readSecret(namespace: string, name: string): Promise<Record<string, Buffer> | undefined> {
    try {
      const s = await this.#core.readNamespacedSecret({ namespace, name });
      return Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
    } catch (err) {
      const e = apiError(`get Secret ${namespace}/${name}`, err);
      if (e.status === 404) return undefined;
      throw e;
    }
  }

  // ---- events ----

  async recordEvent(pair: ReplicationPair, event: EventRecord): Promise<void> {
    const now = new Date();
    await call('create Event', () =>
      this.#core.createNamespacedEvent({
        namespace: pair.metadata.namespace,
        body: {
          metadata: { generateName: `${pair.metadata.name}.`, namespace: pair.metadata.namespace },
          involvedObject: {
            apiVersion: pair.apiVersion,
            kind: pair.kind,
            name: pair.metadata.name,
            namespace: pair.metadata.namespace,
            uid: pair.metadata.uid,
            resourceVersion: pair.metadata.resourceVersion,
          },
          type: event.type,
          reason: event.reason,
          message: event.message,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
          source: { component: this.#component },
          reportingComponent: this.#component,
        },
      }),
    );
  }

  // ---- leases (leader election, sidecar registration) ----

  async getLease(namespace: string, name: string): Promise<LeaseRecord | undefined> {
    try {
      return leaseRecord(await this.#coordination.readNamespacedLease({ namespace, name }));
    } catch (err) {
      const e = apiError(`get Lease ${namespace}/${name}`, err);
      if (e.status === 404) return undefined;
      throw e;
    }
  }

  async listLeases(namespace: string, labelSelector: string): Promise<LeaseRecord[]> {
    const list = await call(`list Leases in ${namespace}`, () => this.#coordination.listNamespacedLease({ namespace, labelSelector }));
    return list.items.map(leaseRecord);
  }

  /**
   * Creates the lease, or replaces it when `resourceVersion` still matches (409 when
   * someone else changed it first: the caller lost the race).
   */
  async writeLease(lease: LeaseRecord): Promise<LeaseRecord> {
    const body: V1Lease = {
      metadata: { name: lease.name, namespace: lease.namespace, labels: lease.labels, annotations: lease.annotations, resourceVersion: lease.resourceVersion },
      spec: {
        holderIdentity: lease.holder,
        leaseDurationSeconds: lease.leaseDurationSeconds,
        renewTime: lease.renewTime ? new V1MicroTime(lease.renewTime.getTime()) : undefined,
        acquireTime: lease.acquireTime ? new V1MicroTime(lease.acquireTime.getTime()) : undefined,
      },
    };
    if (lease.resourceVersion === undefined) {
      return leaseRecord(await call(`create Lease ${lease.namespace}/${lease.name}`, () => this.#coordination.createNamespacedLease({ namespace: lease.namespace, body })));
    }
    return leaseRecord(
      await call(`replace Lease ${lease.namespace}/${lease.name}`, () =>
        this.#coordination.replaceNamespacedLease({ namespace: lease.namespace, name: lease.name, body }),
      ),
    );
  }

  async deleteLease(namespace: string, name: string): Promise<void> {
    try {
      await this.#coordination.deleteNamespacedLease({ namespace, name });
    } catch (err) {
      const e = apiError(`delete Lease ${namespace}/${name}`, err);
      if (e.status !== 404) throw e;
    }
  }
}

function leaseRecord(l: V1Lease): LeaseRecord {
  return {
    name: l.metadata?.name ?? '',
    namespace: l.metadata?.namespace ?? '',
    holder: l.spec?.holderIdentity,
    leaseDurationSeconds: l.spec?.leaseDurationSeconds,
    renewTime: l.spec?.renewTime ? new Date(l.spec.renewTime) : undefined,
    acquireTime: l.spec?.acquireTime ? new Date(l.spec.acquireTime) : undefined,
    labels: l.metadata?.labels ?? {},
    annotations: l.metadata?.annotations ?? {},
    resourceVersion: l.metadata?.resourceVersion,
  };
}
