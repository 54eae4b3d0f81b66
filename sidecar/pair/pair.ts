import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'winston';
import { DirtyTracker } from '../bitmap/dirty-tracker.js';
import type { TlsFiles } from '../grpc/grpc-credentials.js';
import { NbdServer } from '../nbd/nbd-server.js';
import { PairMeta } from '../replication/pair-meta.js';
import { SecondaryEndpoint } from '../replication/secondary-endpoint.js';
import { SyncReplicator } from '../replication/sync-replicator.js';
import { Volume } from '../volume/volume.js';
import type { PairSpec } from './pair-spec.js';
import type { PairStateName } from './pair-state.js';
import { VolumeExport, type IoCounters } from './volume-export.js';

export interface PairStatusView extends IoCounters {
  name: string;
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
}

export interface PairContext {
  stateDir: string;
  logger: Logger;
  /** TLS material for the peer link (mutual TLS); plaintext only to loopback. */
  tls?: TlsFiles;
  onProtocolError?(pair: string, reason: string): void;
}

/**
 * A running pair: its volume, its dirty tracker and, for a primary, its NBD export.
 * Replication with a peer attaches here in later work; without a peer a primary is
 * Standalone and every write stays tracked as out of sync.
 */
export class Pair {
  readonly spec: PairSpec;
  readonly #volume: Volume;
  readonly #tracker: DirtyTracker | null;
  readonly #export: VolumeExport | null;
  readonly #nbd: NbdServer | null;
  readonly #stateDir: string;
  readonly #replicator: SyncReplicator | null;
  readonly endpoint: SecondaryEndpoint | null;
  #paused: boolean;
  #closed = false;

  private constructor(
    spec: PairSpec,
    stateDir: string,
    volume: Volume,
    parts: { tracker?: DirtyTracker; exp?: VolumeExport; nbd?: NbdServer; replicator?: SyncReplicator; endpoint?: SecondaryEndpoint },
  ) {
    const { tracker = null, exp = null, nbd = null } = parts;
    this.#replicator = parts.replicator ?? null;
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

  static async start(spec: PairSpec, ctx: PairContext): Promise<Pair> {
    const dir = Pair.stateDirOf(ctx.stateDir, spec.name);
    const logger = ctx.logger.child({ pair: spec.name });
    const volume = await Volume.open(spec.volumePath);
    let tracker: DirtyTracker | null = null;
    let nbd: NbdServer | null = null;
    try {
      if (spec.role === 'secondary') {
        const endpoint = new SecondaryEndpoint(spec.name, volume, spec.blockSize, await PairMeta.open(dir), logger);
        logger.info('secondary pair started', { volume: spec.volumePath, bytes: volume.size });
        return new Pair(spec, dir, volume, { endpoint });
      }
      tracker = await DirtyTracker.open({ path: join(dir, 'dirty.log'), volumeBytes: volume.size, blockSize: spec.blockSize });
      if (tracker.recoveredExtents > 0) {
        logger.warn('recovered dirty extents after an unclean stop', { extents: tracker.recoveredExtents, dirtyBlocks: tracker.dirtyBlocks });
      }
      const exp = new VolumeExport(spec.name, volume, tracker);
      let replicator: SyncReplicator | undefined;
      if (spec.peer) {
        replicator = new SyncReplicator({
          volume,
          tracker,
          meta: await PairMeta.open(dir),
          peer: spec.peer,
          remotePair: spec.peerPair ?? spec.name,
          ...(ctx.tls ? { tls: ctx.tls } : {}),
          ...(spec.writeTimeoutMs ? { writeTimeoutMs: spec.writeTimeoutMs } : {}),
          ...(spec.resyncBytesPerSecond ? { resyncBytesPerSecond: spec.resyncBytesPerSecond } : {}),
          logger,
        });
        replicator.setPaused(spec.paused);
        exp.attachReplication(replicator);
      }
      nbd = new NbdServer(exp, { logger, onProtocolError: (r) => ctx.onProtocolError?.(spec.name, r) });
      await nbd.listen({ tcp: spec.nbdListen, socket: spec.nbdSocket });
      logger.info('pair started', { role: spec.role, volume: spec.volumePath, bytes: volume.size, nbd: nbd.tcpAddress, socket: nbd.socketPath });
      replicator?.start();
      return new Pair(spec, dir, volume, { tracker, exp, nbd, ...(replicator ? { replicator } : {}) });
    } catch (err) {
      await nbd?.close(0).catch(() => undefined);
      await tracker?.close().catch(() => undefined);
      await volume.close().catch(() => undefined);
      throw err;
    }
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
      bytesOnWire: this.#replicator?.bytesOnWire ?? this.endpoint?.stats.bytesApplied ?? 0,
      bytesReplicated: this.#replicator?.bytesReplicated ?? this.endpoint?.stats.bytesApplied ?? 0,
    };
  }

  #state(): PairStateName {
    if (this.#paused) return 'Paused';
    if (this.endpoint) return this.endpoint.consistent ? (this.endpoint.connected ? 'InSync' : 'Retrying') : 'Initializing';
    return this.#replicator?.state ?? 'Standalone';
  }

  #lastError(): string {
    const trackerError = this.#tracker?.lastError;
    if (trackerError) return `dirty log: ${trackerError.message}`;
    return this.#replicator?.lastError ?? '';
  }

  /** Graceful stop: in-flight requests finish, data is flushed, the bitmap persisted. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#nbd?.close();
    this.#replicator?.close();
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
