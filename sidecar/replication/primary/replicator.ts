import type { Logger } from 'winston';
import type { HandshakeResponse__Output } from '../../../proto/gen/blockmirror/replication/v1/HandshakeResponse.js';
import type { DirtyTracker } from '../../bitmap/dirty-tracker.js';
import type { TlsFiles, TlsMaterial } from '../../grpc/grpc-credentials.js';
import type { Volume } from '../../volume/volume.js';
import type { PairMeta } from '../lineage/pair-meta.js';
import type { GroupStats } from './consistency-group.js';
import type { LinkFactory } from './peer-link.js';

/** The write path's hooks into replication: what the export calls around each write. */
export interface WriteReplication {
  /**
   * Before the local write; may make it wait (a resync copy of its blocks in flight, an
   * old block to copy aside). Gives a ticket for afterLocalWrite or abandon.
   */
  beforeLocalWrite(offset: number, length: number): Promise<number> | number;
  /** After the local write: mirror it (chunks null: zeroes) or record it. Never rejects. */
  afterLocalWrite(ticket: number, offset: number, chunks: Buffer[] | null, length: number, durable?: boolean): Promise<void>;
  /** FLUSH: every write acknowledged so far durable on the peer or out of sync. */
  flushBarrier(): Promise<void>;
  /** The local write failed after beforeLocalWrite: its blocks are out of sync. */
  abandon(ticket: number, offset: number, length: number): void;
}

/** Sync: Initializing, InSync, Resyncing, Retrying; async: Initializing, Replicating, Retrying. */
export type ReplicatorState = 'Initializing' | 'InSync' | 'Resyncing' | 'Replicating' | 'Retrying';

/** What a replicator shows of itself, in one read. */
export interface ReplicatorStatus {
  state: ReplicatorState;
  /** What the secondary is known not to have (blocks awaiting a durable confirmation are on it). */
  outOfSyncBytes: number;
  progressPercent: number;
  lastInSyncTimeMs: number;
  retries: number;
  lastError: string;
  /** Frames, barriers or groups the secondary could not apply, since the pair started. */
  refusals: number;
  bytesOnWire: number;
  bytesReplicated: number;
  /** The peer's current generation at the last handshake or MarkSynced ('' unknown). */
  peerGeneration: string;
  /** Async: primary time of the last consistency point applied on the secondary; 0 in sync mode. */
  lastConsistencyPointTimeMs: number;
  /** Async: the pair's consistency group; null in sync mode. */
  group: GroupStats | null;
}

/** What a replicator of either mode is made with: its pair, and how to reach the secondary. */
export interface ReplicatorPairOptions {
  volume: Volume;
  tracker: DirtyTracker;
  meta: PairMeta;
  peer: string;
  remotePair: string;
  tls?: TlsFiles | TlsMaterial;
  /** The name the secondary's certificate must carry (default: the dialled host). */
  serverName?: string;
  /** The one peer identity the secondary may present (default: any peer identity). */
  serverIdentity?: string;
  logger: Logger;
  /** The link to the secondary; default a PeerLink to `peer` (unit tests pass a fake). */
  link?: LinkFactory;
  /** Starts paused (see setPaused). */
  paused?: boolean;
  /** The peer answered a handshake with a verdict and no session (see PeerLink); null: a session started. */
  onVerdict?(answer: HandshakeResponse__Output | null): void;
}

/** The status fields both modes read the same way, from a replicator's getters. */
export type CommonStatus = Omit<ReplicatorStatus, 'lastConsistencyPointTimeMs' | 'group'>;

/** A replicator's status(): its common getters, read once, and its mode's own fields. */
export function replicatorStatus(r: CommonStatus, own: Pick<ReplicatorStatus, 'lastConsistencyPointTimeMs' | 'group'>): ReplicatorStatus {
  return {
    state: r.state,
    outOfSyncBytes: r.outOfSyncBytes,
    progressPercent: r.progressPercent,
    lastInSyncTimeMs: r.lastInSyncTimeMs,
    retries: r.retries,
    lastError: r.lastError,
    refusals: r.refusals,
    bytesOnWire: r.bytesOnWire,
    bytesReplicated: r.bytesReplicated,
    peerGeneration: r.peerGeneration,
    ...own,
  };
}

/**
 * A primary pair's replication to its secondary, sync or async (see createReplicator):
 * the pair and its export hold this, never a mode's class.
 */
export interface Replicator extends WriteReplication {
  /** Starts linking to the secondary and replicating. */
  start(): void;
  /** Stops for good (an async replicator leaves its consistency group first). */
  close(): void;
  setPaused(paused: boolean): void;
  /**
   * Demotion: resolves once everything this primary acknowledged is on the secondary,
   * which holds our generation and has been told we demote. Rejects when `signal` aborts.
   */
  shipEverything(signal: AbortSignal): Promise<void>;
  status(): ReplicatorStatus;
  /**
   * The peer just dialled us (a stale primary back from an outage, about to restart as
   * our secondary): retry the link now rather than when its backoff says.
   */
  peerSeen(): void;
}
