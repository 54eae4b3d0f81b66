import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'winston';
import { DirtyTracker } from '../bitmap/dirty-tracker.js';
import { NbdServer } from '../nbd/nbd-server.js';
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
}

export interface PairContext {
  stateDir: string;
  logger: Logger;
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
  #paused: boolean;
  #closed = false;

  private constructor(spec: PairSpec, stateDir: string, volume: Volume, tracker: DirtyTracker | null, exp: VolumeExport | null, nbd: NbdServer | null) {
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
      if (spec.role === 'secondary') return new Pair(spec, dir, volume, null, null, null);
      tracker = await DirtyTracker.open({ path: join(dir, 'dirty.log'), volumeBytes: volume.size, blockSize: spec.blockSize });
      if (tracker.recoveredExtents > 0) {
        logger.warn('recovered dirty extents after an unclean stop', { extents: tracker.recoveredExtents, dirtyBlocks: tracker.dirtyBlocks });
      }
      const exp = new VolumeExport(spec.name, volume, tracker);
      nbd = new NbdServer(exp, { logger, onProtocolError: (r) => ctx.onProtocolError?.(spec.name, r) });
      await nbd.listen({ tcp: spec.nbdListen, socket: spec.nbdSocket });
      logger.info('pair started', { role: spec.role, volume: spec.volumePath, bytes: volume.size, nbd: nbd.tcpAddress, socket: nbd.socketPath });
      return new Pair(spec, dir, volume, tracker, exp, nbd);
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
      outOfSyncBytes: t?.dirtyBytes ?? 0,
      dirtyBlocks: t?.dirtyBlocks ?? 0,
      resyncProgressPercent: 0,
      lastInSyncTimeMs: 0,
      retries: 0,
      lastError: this.#lastError(),
      ...counters,
      nbdConnections: this.#nbd?.connectionCount ?? 0,
      nbdAddress: this.#nbd?.tcpAddress ?? '',
      nbdSocket: this.#nbd?.socketPath ?? '',
      peer: this.spec.peer ?? '',
    };
  }

  #state(): PairStateName {
    if (this.#paused) return 'Paused';
    if (this.spec.role === 'secondary') return 'Initializing';
    if (!this.spec.peer) return 'Standalone';
    // A configured peer this build cannot reach yet: writes continue and stay tracked.
    return 'Retrying';
  }

  #lastError(): string {
    const trackerError = this.#tracker?.lastError;
    if (trackerError) return `dirty log: ${trackerError.message}`;
    if (this.spec.role === 'primary' && this.spec.peer && !this.#paused) return 'peer replication is not available in this build';
    return '';
  }

  /** Graceful stop: in-flight requests finish, data is flushed, the bitmap persisted. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#nbd?.close();
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
