import type { Pair__Output } from '../../proto/gen/blockmirror/control/v1/Pair.js';
import { pairStateFromProto } from '../pair/pair-state.js';
import type { VolumeLineage } from '../replication/lineage/continue-lineage.js';
import { lineageRecordOf } from './lineage-record.js';

/**
 * The one JSON shape of a pair's spec and status, read from the control API's `Pair`
 * message: what `blockmirror pair status -o json` prints and what the operator reads.
 */
export interface PairJson {
  name: string;
  role: 'primary' | 'secondary';
  mode: 'sync' | 'async';
  state: string;
  volumePath: string;
  volumeBytes: number;
  blockSize: number;
  outOfSyncBytes: number;
  dirtyBlocks: number;
  resyncProgressPercent: number;
  lastInSyncTime: string | null;
  retries: number;
  lastError: string;
  peer: string;
  nbdAddress: string;
  nbdSocket: string;
  nbdConnections: number;
  bytesWritten: number;
  bytesRead: number;
  writeOps: number;
  readOps: number;
  bytesOnWire: number;
  bytesReplicated: number;
  consistencyGroup: string;
  /** The remote peer identity the pair itself is pinned to ('' : the sidecar's default). */
  remoteIdentity: string;
  lastConsistencyPointTime: string | null;
  rpoSeconds: number;
  groupsFormed: number;
  groupsFailed: number;
  groupsDeferred: number;
  replicationErrors: number;
  coordinationHoldP50Ms: number;
  coordinationHoldP99Ms: number;
  coordinationHoldMaxMs: number;
  /** Data-generation ids this side holds: current, bitmap ('' none), ancestors newest first. */
  generation: string;
  bitmapGeneration: string;
  historyGenerations: string[];
  /** The peer's current generation at the last handshake ('' unknown). */
  peerGeneration: string;
  /** The export refuses writes (a secondary, or a primary being demoted). */
  fenced: boolean;
  /** A secondary holds a complete image at one point in time: it can be promoted. */
  consistent: boolean;
  /** A secondary whose primary demoted with everything shipped: promotable without force. */
  primaryDemoted: boolean;
  discardMyData: boolean;
  lastPromotionTime: string | null;
  /** At the last promotion, the point the volume held (the data-loss window starts there). */
  promotedPointTime: string | null;
  /** Why the last handshake started no session ('' none): split-brain, unrelated, dialer-stale. */
  peerVerdict: string;
  /**
   * What identifies this volume's data, to record when the pair is deleted and pass to the
   * next pair over it (`pair create --lineage`); null without a complete image.
   */
  lineage: VolumeLineage | null;
}

/** A `Pair` message as JSON; absent fields read as empty. */
export function pairToJson(p: Pair__Output): PairJson {
  const s = p.status;
  return {
    name: p.spec?.name ?? '',
    role: p.spec?.role === 'ROLE_SECONDARY' ? 'secondary' : 'primary',
    mode: p.spec?.mode === 'MODE_ASYNC' ? 'async' : 'sync',
    state: (s && pairStateFromProto(s.state)) ?? 'Unknown',
    volumePath: s?.volumePath ?? p.spec?.volumePath ?? '',
    volumeBytes: s?.volumeBytes ?? 0,
    blockSize: p.spec?.blockSize ?? 0,
    outOfSyncBytes: s?.outOfSyncBytes ?? 0,
    dirtyBlocks: s?.dirtyBlocks ?? 0,
    resyncProgressPercent: s?.resyncProgressPercent ?? 0,
    lastInSyncTime: s?.lastInSyncTimeMs ? new Date(s.lastInSyncTimeMs).toISOString() : null,
    retries: s?.retries ?? 0,
    lastError: s?.lastError ?? '',
    peer: p.spec?.peerAddress ?? '',
    nbdAddress: s?.nbdAddress ?? '',
    nbdSocket: s?.nbdSocket ?? '',
    nbdConnections: s?.nbdConnections ?? 0,
    bytesWritten: s?.bytesWritten ?? 0,
    bytesRead: s?.bytesRead ?? 0,
    writeOps: s?.writeOps ?? 0,
    readOps: s?.readOps ?? 0,
    bytesOnWire: s?.bytesOnWire ?? 0,
    bytesReplicated: s?.bytesReplicated ?? 0,
    consistencyGroup: p.spec?.consistencyGroup ?? '',
    remoteIdentity: p.spec?.remoteIdentity ?? '',
    lastConsistencyPointTime: s?.lastConsistencyPointTimeMs ? new Date(s.lastConsistencyPointTimeMs).toISOString() : null,
    rpoSeconds: s?.rpoSeconds ?? 0,
    groupsFormed: s?.groupsFormed ?? 0,
    groupsFailed: s?.groupsFailed ?? 0,
    groupsDeferred: s?.groupsDeferred ?? 0,
    replicationErrors: s?.replicationErrors ?? 0,
    coordinationHoldP50Ms: s?.coordinationHoldP50Ms ?? 0,
    coordinationHoldP99Ms: s?.coordinationHoldP99Ms ?? 0,
    coordinationHoldMaxMs: s?.coordinationHoldMaxMs ?? 0,
    generation: s?.generation ?? '',
    bitmapGeneration: s?.bitmapGeneration ?? '',
    historyGenerations: s?.historyGenerations ?? [],
    peerGeneration: s?.peerGeneration ?? '',
    fenced: s?.fenced ?? false,
    consistent: s?.consistent ?? false,
    primaryDemoted: s?.primaryDemoted ?? false,
    discardMyData: s?.discardMyData ?? false,
    lastPromotionTime: s?.promotedTimeMs ? new Date(s.promotedTimeMs).toISOString() : null,
    promotedPointTime: s?.promotedPointTimeMs ? new Date(s.promotedPointTimeMs).toISOString() : null,
    peerVerdict: s?.peerVerdict ?? '',
    lineage: lineageRecordOf({ role: p.spec?.role === 'ROLE_SECONDARY' ? 'secondary' : 'primary', generation: s?.generation ?? '', historyGenerations: s?.historyGenerations ?? [], consistent: s?.consistent ?? false, dirtyBlocks: s?.dirtyBlocks ?? 0 }),
  };
}
