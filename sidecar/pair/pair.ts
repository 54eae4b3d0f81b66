import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'winston';
import { DirtyTracker } from '../bitmap/dirty-tracker.js';
import { FailedPreconditionError } from '../errors.js';
import { makeDirDurable } from '../fs/make-dir-durable.js';
import { readTlsMaterial, type TlsFiles, type TlsMaterial } from '../grpc/grpc-credentials.js';
import { NbdServer } from '../nbd/nbd-server.js';
import { GroupJournal } from '../replication/group-journal.js';
import { PairMeta } from '../replication/pair-meta.js';
import { SecondaryEndpoint } from '../replication/secondary-endpoint.js';
import { AsyncReplicator } from '../replication/async-replicator.js';
import type { ConsistencyGroup } from '../replication/consistency-group.js';
import type { ConsistencyGroups } from '../replication/consistency-groups.js';
import { SyncReplicator } from '../replication/sync-replicator.js';
import { openPairVolume, type PairVolumeOptions } from '../volume/open-pair-volume.js';
import type { Volume } from '../volume/volume.js';
import { DEFAULT_MAX_COORDINATION_MS, DEFAULT_MAX_DRAIN_MS, pairSettings, type PairSettings, type PairSpec } from './pair-spec.js';
import type { PairStateName } from './pair-state.js';
import { VolumeExport, type IoCounters } from './volume-export.js';

export interface PairStatusView extends IoCounters {
  name: string;
  /** The spec's tunables, echoed so a client can tell whether a pair matches what it wants. */
  settings: PairSettings;
  role: PairSpec['role'];
  mode: PairSpec['mode'];
  state: PairStateName;
  volumePath: string;
  volumeBytes: number;
  blockSize: number;
  outOfSyncBytes: number;
  dirtyBlocks: number;
  resyncProgressPercent: number;
  lastInSyncTimeMs: number;
  retries: number;
  lastError: string;
  nbdConnections: number;
  nbdAddress: string;
  nbdSocket: string;
  peer: string;
  peerPair: string;
  bytesOnWire: number;
  bytesReplicated: number;
  consistencyGroup: string;
  lastConsistencyPointTimeMs: number;
  rpoSeconds: number;
  groupsFormed: number;
  groupsFailed: number;
  groupsDeferred: number;
  /** Frames, barriers or groups the secondary could not apply (see the control proto). */
  replicationErrors: number;
  coordinationHoldP50Ms: number;
  coordinationHoldP99Ms: number;
  coordinationHoldMaxMs: number;
}

export interface PairContext {
  stateDir: string;
  logger: Logger;
  /** TLS material for the peer link (mutual TLS); plaintext only to loopback. */
  tls?: TlsFiles;
  /** The name a secondary's certificate must carry (default: the dialled host). */
  peerServerName?: string;
  /** The remote site's CA (PEM), trusted besides `tls.ca` when the pair has no TLS of its own. */
  peerTrustCa?: string;
  /** Sync pairs: foreground bytes in flight to the secondary before writes wait. */
  replicationBudgetBytes?: number;
  onProtocolError?(pair: string, reason: string): void;
  /** The sidecar's consistency groups, which async primaries join. */
  groups: ConsistencyGroups;
  /** How a pair's block device is checked and held (see openPairVolume). */
  volume?: Omit<PairVolumeOptions, 'role'>;
}

/**
 * A running pair: its volume, its dirty tracker and, for a primary, its NBD export.
 * Replication with a peer attaches here in later work; without a peer a primary is
 * Standalone and every write stays tracked as out of sync.
 */
/** A primary's NBD export over a Unix socket: what the node splice connects the kernel to. */
export interface SocketExport {
  device: string;
  socket: string;
  blockSize: number;
}

export class Pair {
  readonly spec: PairSpec;
  readonly #volume: Volume;
  readonly #tracker: DirtyTracker | null;
  readonly #export: VolumeExport | null;
  readonly #nbd: NbdServer | null;
  readonly #stateDir: string;
  readonly #replicator: SyncReplicator | AsyncReplicator | null;
  readonly #group: { groups: ConsistencyGroups; name: string; group: ConsistencyGroup } | null;
  readonly endpoint: SecondaryEndpoint | null;
  #paused: boolean;
  #closed = false;

  private constructor(
    spec: PairSpec,
    stateDir: string,
    volume: Volume,
    parts: {
      tracker?: DirtyTracker;
      exp?: VolumeExport;
      nbd?: NbdServer;
      replicator?: SyncReplicator | AsyncReplicator;
      group?: { groups: ConsistencyGroups; name: string; group: ConsistencyGroup };
      endpoint?: SecondaryEndpoint;
    },
  ) {
    const { tracker = null, exp = null, nbd = null } = parts;
    this.#replicator = parts.replicator ?? null;
    this.#group = parts.group ?? null;
    this.endpoint = parts.endpoint ?? null;
    this.spec = spec;
    this.#stateDir = stateDir;
    this.#volume = volume;
    this.#tracker = tracker;
    this.#export = exp;
    this.#nbd = nbd;
    this.#paused = spec.paused;
  }

  static stateDirOf(stateDir: string, name: string): string {
    return join(stateDir, 'pairs', name);
  }

  /**
   * `holdReplication`: the replicator stays stopped until startReplication(); the export
   * serves and tracks writes meanwhile (a spliced volume's fallback writes must be
   * recorded before any consistency group is cut).
   */
  static async start(spec: PairSpec, ctx: PairContext, opts: { holdReplication?: boolean; restored?: boolean } = {}): Promise<Pair> {
    const holdReplication = opts.holdReplication ?? false;
    const dir = Pair.stateDirOf(ctx.stateDir, spec.name);
    const logger = ctx.logger.child({ pair: spec.name });
    // First, so that a volume refused (in use, a directory) leaves no state behind.
    const volume = await openPairVolume(spec.volumePath, { ...ctx.volume, role: spec.role });
    let tracker: DirtyTracker | null = null;
    let nbd: NbdServer | null = null;
    try {
      // The pair's dirty log, metadata and journal must not vanish with an unsynced
      // directory entry at a power cut.
      await makeDirDurable(spec.role === 'secondary' ? join(dir, 'journal') : dir, ctx.stateDir);
      if (spec.role === 'secondary') {
        const journal = await GroupJournal.open(join(dir, 'journal'), volume);
        const endpoint = new SecondaryEndpoint(spec.name, volume, spec.blockSize, await PairMeta.open(dir), journal, logger);
        logger.info('secondary pair started', { volume: spec.volumePath, bytes: volume.size });
        return new Pair(spec, dir, volume, { endpoint });
      }
      // A pair restored from pairs.json had its dirty log created (durably) before it was
      // listed there: if the log is gone, what it held is unknown, so everything counts
      // as dirty, never nothing.
      const logLost = opts.restored === true && !existsSync(join(dir, 'dirty.log'));
      tracker = await DirtyTracker.open({ path: join(dir, 'dirty.log'), volumeBytes: volume.size, blockSize: spec.blockSize });
      if (logLost) {
        logger.warn('the dirty log is missing: every block counts as out of sync (a full resync)');
        await tracker.markAllDirty();
      }
      if (tracker.recoveredExtents > 0) {
        logger.warn('recovered dirty extents after an unclean stop', { extents: tracker.recoveredExtents, dirtyBlocks: tracker.dirtyBlocks });
      }
      if (tracker.convertedFrom !== null) logger.info('dirty log converted to the current format', { from: tracker.convertedFrom, dirtyBlocks: tracker.dirtyBlocks });
      for (const d of tracker.damage) {
        logger.warn('dirty log damaged: what it might cover is counted dirty', { detail: d.message, region: d.region, firstBlock: d.firstBlock, lastBlock: d.lastBlock });
      }
      const exp = new VolumeExport(spec.name, volume, tracker);
      let replicator: SyncReplicator | AsyncReplicator | undefined;
      let group: { groups: ConsistencyGroups; name: string; group: ConsistencyGroup } | undefined;
      if (spec.peer && spec.mode === 'async') {
        const name = spec.consistencyGroup ?? spec.name;
        const settings = {
          name,
          peer: spec.peer,
          intervalMs: spec.groupIntervalMs ?? 0,
          maxCoordinationMs: spec.maxCoordinationMs ?? DEFAULT_MAX_COORDINATION_MS,
          maxDrainMs: spec.maxDrainMs ?? DEFAULT_MAX_DRAIN_MS,
        };
        ctx.groups.check(settings);
        // The replicator tells its group about new work; the group exists once it joined.
        const member: { group?: ConsistencyGroup } = {};
        const r = new AsyncReplicator({
          volume,
          tracker,
          meta: await PairMeta.open(dir),
          peer: spec.peer,
          remotePair: spec.peerPair ?? spec.name,
          ...peerLinkTls(spec, ctx),
          logger,
          onWork: () => member.group?.notify(),
        });
        r.setPaused(spec.paused);
        exp.attachReplication(r);
        replicator = r;
        member.group = ctx.groups.join(settings, r);
        group = { groups: ctx.groups, name, group: member.group };
      } else if (spec.peer) {
        replicator = new SyncReplicator({
          volume,
          tracker,
          meta: await PairMeta.open(dir),
          peer: spec.peer,
          remotePair: spec.peerPair ?? spec.name,
          ...peerLinkTls(spec, ctx),
          ...(spec.writeTimeoutMs ? { writeTimeoutMs: spec.writeTimeoutMs } : {}),
          ...(spec.resyncBytesPerSecond ? { resyncBytesPerSecond: spec.resyncBytesPerSecond } : {}),
          ...(ctx.replicationBudgetBytes ? { maxInFlightBytes: ctx.replicationBudgetBytes } : {}),
          logger,
        });
        replicator.setPaused(spec.paused);
        exp.attachReplication(replicator);
      }
      nbd = new NbdServer(exp, { logger, onProtocolError: (r) => ctx.onProtocolError?.(spec.name, r) });
      await nbd.listen({ tcp: spec.nbdListen, socket: spec.nbdSocket });
      logger.info('pair started', { role: spec.role, volume: spec.volumePath, bytes: volume.size, nbd: nbd.tcpAddress, socket: nbd.socketPath });
      const pair = new Pair(spec, dir, volume, { tracker, exp, nbd, ...(replicator ? { replicator } : {}), ...(group ? { group } : {}) });
      if (!holdReplication) pair.startReplication();
      return pair;
    } catch (err) {
      await nbd?.close(0).catch(() => undefined);
      await tracker?.close().catch(() => undefined);
      await volume.close().catch(() => undefined);
      throw err;
    }
  }

  #replicationStarted = false;

  /** Starts a replicator held back by Pair.start(…, { holdReplication: true }). */
  startReplication(): void {
    if (this.#replicationStarted || this.#closed) return;
    this.#replicationStarted = true;
    this.#replicator?.start();
  }

  /** The NBD export over a Unix socket, for the node's splice; null for a secondary. */
  get socketExport(): SocketExport | null {
    if (this.#nbd === null || !this.#nbd.socketPath) return null;
    return { device: this.spec.volumePath, socket: this.#nbd.socketPath, blockSize: this.spec.blockSize };
  }

  recordUntrackedWrites(ranges: ReadonlyArray<readonly [number, number]>): Promise<void> {
    if (this.#export === null) return Promise.reject(new FailedPreconditionError(`pair ${this.spec.name} is a secondary`));
    return this.#export.recordUntrackedWrites(ranges);
  }

  get paused(): boolean {
    return this.#paused;
  }

  setPaused(paused: boolean): void {
    this.#paused = paused;
    this.#replicator?.setPaused(paused);
  }

  status(): PairStatusView {
    const t = this.#tracker;
    const counters = this.#export?.counters ?? { bytesWritten: 0, bytesRead: 0, writeOps: 0, readOps: 0 };
    return {
      name: this.spec.name,
      role: this.spec.role,
      mode: this.spec.mode,
      state: this.#state(),
      volumePath: this.spec.volumePath,
      volumeBytes: this.#volume.size,
      blockSize: this.spec.blockSize,
      // With a peer: what the secondary is known not to have (blocks awaiting their
      // durable confirmation are on it, and stay dirty in the log until confirmed).
      outOfSyncBytes: this.#replicator?.outOfSyncBytes ?? t?.dirtyBytes ?? 0,
      dirtyBlocks: t?.dirtyBlocks ?? 0,
      resyncProgressPercent: this.#replicator?.progressPercent ?? 0,
      lastInSyncTimeMs: this.#replicator?.lastInSyncTimeMs ?? 0,
      retries: this.#replicator?.retries ?? 0,
      lastError: this.#lastError(),
      ...counters,
      nbdConnections: this.#nbd?.connectionCount ?? 0,
      nbdAddress: this.#nbd?.tcpAddress ?? '',
      nbdSocket: this.#nbd?.socketPath ?? '',
      peer: this.spec.peer ?? '',
      peerPair: this.spec.peer ? (this.spec.peerPair ?? this.spec.name) : '',
      settings: pairSettings(this.spec),
      bytesOnWire: this.#replicator?.bytesOnWire ?? this.endpoint?.stats.bytesApplied ?? 0,
      bytesReplicated: this.#replicator?.bytesReplicated ?? this.endpoint?.stats.bytesApplied ?? 0,
      replicationErrors: this.#replicator?.refusals ?? this.endpoint?.stats.applyErrors ?? 0,
      ...this.#asyncStatus(),
    };
  }

  #asyncStatus(): Pick<PairStatusView, 'consistencyGroup' | 'lastConsistencyPointTimeMs' | 'rpoSeconds' | 'groupsFormed' | 'groupsFailed' | 'groupsDeferred' | 'coordinationHoldP50Ms' | 'coordinationHoldP99Ms' | 'coordinationHoldMaxMs'> {
    const r = this.#replicator instanceof AsyncReplicator ? this.#replicator : null;
    const last = r?.lastConsistencyPointTimeMs ?? this.endpoint?.lastConsistencyPointTimeMs ?? 0;
    const g = this.#group?.group.stats();
    return {
      consistencyGroup: this.spec.consistencyGroup ?? '',
      lastConsistencyPointTimeMs: last,
      // The primary's data the secondary could not yet restore: now minus the primary
      // time of the last group applied there; 0 when nothing is waiting to be shipped.
      rpoSeconds: r && last > 0 && r.outOfSyncBytes > 0 ? Math.max(0, Date.now() - last) / 1000 : 0,
      groupsFormed: g?.formed ?? 0,
      groupsFailed: g?.failed ?? 0,
      groupsDeferred: g?.deferred ?? 0,
      coordinationHoldP50Ms: g?.holdP50Ms ?? 0,
      coordinationHoldP99Ms: g?.holdP99Ms ?? 0,
      coordinationHoldMaxMs: g?.holdMaxMs ?? 0,
    };
  }

  #state(): PairStateName {
    if (this.#paused) return 'Paused';
    if (this.endpoint) return this.endpoint.state;
    return this.#replicator?.state ?? 'Standalone';
  }

  #lastError(): string {
    const trackerError = this.#tracker?.lastError;
    if (trackerError) return `dirty log: ${trackerError.message}`;
    return this.#replicator?.lastError ?? this.endpoint?.lastError ?? '';
  }

  /** Graceful stop: in-flight requests finish, data is flushed, the bitmap persisted. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#nbd?.close();
    if (this.#group && this.#replicator instanceof AsyncReplicator) this.#group.groups.leave(this.#group.name, this.#replicator);
    this.#replicator?.close();
    await this.endpoint?.journal.close();
    // Durable data first, then the bitmap that describes it.
    await this.#volume.flush().catch(() => undefined);
    await this.#tracker?.close();
    await this.#volume.close();
  }

  /** Stops the pair and forgets its state; the volume's data is left untouched. */
  async destroy(): Promise<void> {
    await this.close();
    await rm(this.#stateDir, { recursive: true, force: true });
  }
}

/** A primary's peer link TLS: the pair's own material when it has some, else the sidecar's. */
function peerLinkTls(spec: PairSpec, ctx: PairContext): { tls?: TlsFiles | TlsMaterial; serverName?: string } {
  const t = spec.peerTls;
  let tls: TlsFiles | TlsMaterial | undefined = t ? { cert: Buffer.from(t.cert), key: Buffer.from(t.key), ca: Buffer.from(t.ca) } : ctx.tls;
  if (!t && ctx.tls && ctx.peerTrustCa) {
    const own = readTlsMaterial(ctx.tls);
    tls = { ...own, ca: Buffer.concat([own.ca, Buffer.from('\n'), Buffer.from(ctx.peerTrustCa)]) };
  }
  return { ...(tls ? { tls } : {}), ...(ctx.peerServerName ? { serverName: ctx.peerServerName } : {}) };
}
