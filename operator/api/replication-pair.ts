/**
 * The ReplicationPair custom resource (blockmirror.io/v1alpha1). These types are the
 * single source of truth: `hack/gen-crd.mjs` generates the CRD's OpenAPI schema in
 * crds/ from them, and a test fails when the committed CRD disagrees.
 *
 * JSDoc tags (@minimum, @maximum, @pattern, @asType) become schema constraints.
 */

export const GROUP = 'blockmirror.io';
export const VERSION = 'v1alpha1';
export const KIND = 'ReplicationPair';
export const PLURAL = 'replicationpairs';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const FINALIZER = 'blockmirror.io/sidecar-pair';

export type BlockSize = 4096 | 8192 | 16384 | 32768 | 65536 | 131072 | 262144 | 524288 | 1048576;
export const DEFAULT_BLOCK_SIZE: BlockSize = 65536;

export type PairRole = 'primary' | 'secondary';
export type ReplicationMode = 'sync' | 'async';

/** Where the other half of the pair lives. */
export interface RemoteSpec {
  /**
   * host:port of the remote sidecar's peer listener (the primary dials it).
   * @pattern ^[^\s:]+:[0-9]{1,5}$
   */
  endpoint: string;
  /** Name of the ReplicationPair in the remote cluster. Default: this resource's name. */
  name?: string;
  /** Namespace of the ReplicationPair in the remote cluster. Default: this resource's namespace. */
  namespace?: string;
  /**
   * Secret (in this namespace) holding the peer TLS material: tls.crt, tls.key, ca.crt.
   * The operator checks it exists; the sidecar serving the pair must use the same material.
   */
  tlsSecretName?: string;
  /**
   * The remote site's peer identity, spiffe://blockmirror/<site>/peer: the only identity
   * this pair's sidecar accepts a primary from (as a secondary, before its first sync
   * too) and dials (as a primary). Default: the sidecars' tls.remoteSite.
   * @pattern ^spiffe://blockmirror/[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?/peer$
   */
  identity?: string;
}

export interface SyncSettings {
  /**
   * A write the secondary has not acknowledged within this many milliseconds is marked
   * out of sync and answered; the block is retried in the background.
   * @asType integer
   * @minimum 10
   * @maximum 600000
   */
  writeTimeoutMs?: number;
  /**
   * Cap on resync bandwidth in bytes per second; 0 or absent: the dynamic window only.
   * @asType integer
   * @minimum 0
   */
  resyncBytesPerSecond?: number;
}

export interface AsyncSettings {
  /**
   * Milliseconds between consistency groups; 0 forms them back to back.
   * @asType integer
   * @minimum 0
   * @maximum 3600000
   */
  groupIntervalMs?: number;
  /**
   * Longest a group boundary may hold write acknowledgements, in milliseconds.
   * @asType integer
   * @minimum 1
   * @maximum 10000
   */
  maxCoordinationMs?: number;
  /**
   * Longest a group may drain before it is abandoned and retried, in milliseconds.
   * @asType integer
   * @minimum 100
   */
  maxDrainMs?: number;
}

export interface ReplicationPairSpec {
  /**
   * The PersistentVolumeClaim (in this namespace) whose volume is replicated. Immutable.
   * @pattern ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$
   */
  pvcName: string;
  /**
   * primary: serves the application and ships writes; secondary: receives them, read-only.
   * Changing it is a role change on the live pair, keeping its dirty log and generation
   * ids: to secondary, the sidecar fences the export, ships everything and demotes; to
   * primary, it is promoted (refused unless its old primary demoted, see forcePromote).
   */
  role: PairRole;
  /** sync: a write is acknowledged once on both sides; async: shipped in consistency groups. */
  mode: ReplicationMode;
  /** The remote side. Required for a primary. */
  remote?: RemoteSpec;
  /** Dirty-tracking granularity in bytes: a power of two from 4 KiB to 1 MiB. Immutable. Default 65536. */
  blockSize?: BlockSize;
  sync?: SyncSettings;
  async?: AsyncSettings;
  /**
   * Pairs on one sidecar sharing this name form their consistency groups together
   * (for example a database's data and WAL volumes). Async mode only.
   * @pattern ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$
   */
  consistencyGroup?: string;
  /** Stop replicating and record writes as out of sync until unpaused. */
  paused?: boolean;
  /**
   * With role primary: promote this side even though its old primary has not demoted with
   * everything shipped here (it is unreachable: a forced failover, DRBD's primary --force).
   * Writes the old primary acknowledged that never reached this side are lost (async:
   * everything after the consistency point in status.promotedPointTime; sync: what it
   * acknowledged after losing the link); if it went on writing alone, its return shows a
   * split brain. It applies to one promotion: drop it when the role goes back to secondary.
   */
  forcePromote?: boolean;
  /**
   * With role secondary: this side's data loses (DRBD's --discard-my-data). The operator
   * asks the sidecar once, for a split brain, a primary being demoted (it demotes at once,
   * nothing shipped) or a refused peer holding unrelated data; the peer then overwrites
   * what this side wrote (a delta from the common generation when both dirty logs reach
   * back to it). The operator does not clear it; drop it once the pair is in sync again.
   */
  discardMyData?: boolean;
}

/** The pair's state as the sidecar reports it; there is deliberately no "Suspended". */
export type PairPhase =
  | 'Pending'
  | 'Initializing'
  | 'InSync'
  | 'Replicating'
  | 'Resyncing'
  | 'Retrying'
  | 'Paused'
  | 'Standalone'
  | 'SplitBrain'
  | 'Error';

export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** A standard Kubernetes condition (metav1.Condition). */
export interface Condition {
  /** Ready, Synchronized or Degraded. */
  type: string;
  status: ConditionStatus;
  /**
   * @asType integer
   * @minimum 0
   */
  observedGeneration?: number;
  /** @format date-time */
  lastTransitionTime: string;
  /** CamelCase reason. */
  reason: string;
  message: string;
}

export interface SidecarRef {
  /** The node whose sidecar serves the pair. */
  node: string;
  /** Its control endpoint. */
  endpoint: string;
}

/**
 * A secondary on a CSI volume: fenced on every node of its site (never published to a
 * pod for writing), staged by a holder pod as a raw device the pair writes to.
 */
export interface SecondaryFence {
  /** The PersistentVolume fenced. */
  volume: string;
  /** The CSI node proxy's name for it: its volume handle, or a hash of it. */
  pv: string;
  /** Nodes whose sidecar holds the fence. */
  fencedNodes: string[];
  /** The pod that keeps the volume staged (read-only, on an empty placeholder). */
  holderPod?: string;
  /** Where the volume is held as a raw block device for the pair, once it is. */
  node?: string;
  device?: string;
}

export interface ReplicationPairStatus {
  state?: PairPhase;
  /** The role the sidecar actually holds (absent: no pair on a sidecar yet). */
  role?: PairRole;
  /**
   * The spec.role the operator last carried out on the sidecar. A sidecar holding another
   * role although spec.role has not changed since changed by itself (a stale primary
   * demotes itself when it learns its peer was promoted) and is never driven back.
   */
  appliedRole?: PairRole;
  /** The data generation id the volume holds ('' none: no complete image yet). */
  generation?: string;
  /** The peer's data generation id at the last handshake. */
  peerGeneration?: string;
  /** No application write is accepted on this side (a secondary, or a primary being demoted). */
  fenced?: boolean;
  /** @format date-time */
  lastPromotionTime?: string;
  /**
   * At the last promotion, the primary time of the point the volume held (async: the last
   * applied consistency group; sync: the last write received): after a forced failover,
   * writes the old primary acknowledged after it are the data lost.
   * @format date-time
   */
  promotedPointTime?: string;
  /**
   * Bytes the secondary does not have yet.
   * @asType integer
   * @minimum 0
   */
  outOfSyncBytes?: number;
  /** Initial copy or resync progress, 0-100, while one runs. */
  progressPercent?: number;
  /** @format date-time */
  lastInSyncTime?: string;
  /** Primary time of the last consistency group applied on the secondary (async). @format date-time */
  lastConsistencyPointTime?: string;
  /** Seconds of writes the secondary is behind (async). */
  rpoSeconds?: number;
  /** Text form of rpoSeconds for the printer column, e.g. "1.4s". */
  rpo?: string;
  /** Text form of outOfSyncBytes for the printer column, e.g. "12.0MiB". */
  outOfSync?: string;
  sidecar?: SidecarRef;
  /** Loopback host:port of the primary's NBD export on its node. */
  exportAddress?: string;
  /** A secondary on a CSI volume: its fence and where its volume is held. */
  fence?: SecondaryFence;
  /** Last error the sidecar or the operator reported for this pair. */
  lastError?: string;
  /**
   * The spec generation this status describes.
   * @asType integer
   * @minimum 0
   */
  observedGeneration?: number;
  conditions?: Condition[];
}

export interface ObjectMeta {
  name: string;
  namespace: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  finalizers?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface ReplicationPair {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: ObjectMeta;
  spec: ReplicationPairSpec;
  status?: ReplicationPairStatus;
}
