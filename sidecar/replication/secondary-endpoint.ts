import { randomUUID } from 'node:crypto';
import type { Logger } from 'winston';
import type { BlockFrame__Output } from '../../proto/gen/blockmirror/replication/v1/BlockFrame.js';
import type { HandshakeRequest__Output } from '../../proto/gen/blockmirror/replication/v1/HandshakeRequest.js';
import type { HandshakeResponse__Output } from '../../proto/gen/blockmirror/replication/v1/HandshakeResponse.js';
import { BlockmirrorError, GeometryMismatchError } from '../errors.js';
import type { Volume } from '../volume/volume.js';
import { frameRuns } from './frame-builder.js';
import type { GroupJournal } from './group-journal.js';
import type { PairMeta } from './pair-meta.js';

export class PeerRefusedError extends BlockmirrorError {
  constructor(message: string) {
    super('GEOMETRY_MISMATCH', message);
    this.name = 'PeerRefusedError';
  }
}

export interface SecondaryStats {
  framesApplied: number;
  bytesApplied: number;
  crcErrors: number;
  /** Frames, barriers and groups that could not be applied (disk full, I/O error). */
  applyErrors: number;
  lastFrameTimeMs: number;
  sessions: number;
}

export type SecondaryState = 'Initializing' | 'InSync' | 'Replicating' | 'Retrying';

// The primary's link sends a frame (heartbeat) every second in both modes; silence this
// long means it is gone.
const LIVENESS_MS = 5000;
// A failure to apply stays shown until applies succeed again and none failed for this long
// (a half-full disk refuses some frames and takes others).
const FAULT_CLEAR_MS = 5000;

/**
 * The receiving end of a secondary pair: checks who is sending and writes frames to the
 * volume in arrival order. Durable frames are fdatasync'd (group-committed) before
 * their acknowledgement, since only those let the primary forget blocks.
 */
export class SecondaryEndpoint {
  readonly name: string;
  readonly stats: SecondaryStats = { framesApplied: 0, bytesApplied: 0, crcErrors: 0, applyErrors: 0, lastFrameTimeMs: 0, sessions: 0 };
  readonly #volume: Volume;
  readonly #blockSize: number;
  readonly #meta: PairMeta;
  readonly #logger: Logger;
  #session = '';
  #primaryGeneration = '';
  #mode: 'sync' | 'async' = 'sync';
  /** Monotonic times (performance.now): intervals must not follow wall-clock steps. */
  #lastSeen = 0;
  #applyError = '';
  #failedAt = 0;
  #appliedAt = 0;
  /** Async mode: where consistency groups are staged until committed. */
  readonly journal: GroupJournal;
  /** Primary time of the last consistency group applied here (0: none since start). */
  lastConsistencyPointTimeMs = 0;

  constructor(name: string, volume: Volume, blockSize: number, meta: PairMeta, journal: GroupJournal, logger: Logger) {
    this.name = name;
    this.journal = journal;
    this.#volume = volume;
    this.#blockSize = blockSize;
    this.#meta = meta;
    this.#logger = logger;
  }

  /** A session exists and frames (at least heartbeats) keep arriving. */
  get connected(): boolean {
    return this.#session !== '' && performance.now() - this.#lastSeen < LIVENESS_MS;
  }

  /**
   * What the pair shows: Initializing until a full copy completed; InSync (sync) or
   * Replicating (async) while a primary is connected and everything applies; Retrying
   * while it is gone or while writes cannot be applied here.
   */
  get state(): SecondaryState {
    if (this.faulted) return 'Retrying';
    if (!this.consistent) return 'Initializing';
    if (!this.connected) return 'Retrying';
    return this.#mode === 'async' ? 'Replicating' : 'InSync';
  }

  /** Applying failed recently (or has not succeeded since it last failed). */
  get faulted(): boolean {
    return this.#applyError !== '' && (this.#appliedAt < this.#failedAt || performance.now() - this.#failedAt < FAULT_CLEAR_MS);
  }

  get lastError(): string {
    return this.faulted ? this.#applyError : '';
  }

  /** Something could not be applied here: shown in status until applies succeed again. */
  noteFailure(message: string): void {
    if (!this.faulted) this.#logger.warn('cannot apply what the primary sends', { pair: this.name, error: message });
    this.stats.applyErrors++;
    this.#applyError = message;
    this.#failedAt = performance.now();
  }

  noteApplied(): void {
    this.#appliedAt = performance.now();
  }

  /** True once a full sync from the current primary has completed. */
  get consistent(): boolean {
    return this.#meta.syncedPeerGeneration !== '' && this.#meta.syncedPeerGeneration === this.#primaryGeneration;
  }

  handshake(req: HandshakeRequest__Output): HandshakeResponse__Output {
    if (req.volumeBytes !== this.#volume.size) {
      throw new GeometryMismatchError(`volume size mismatch: primary has ${req.volumeBytes} bytes, secondary ${this.#volume.size}`);
    }
    if (req.blockSize !== this.#blockSize) {
      throw new GeometryMismatchError(`block size mismatch: primary uses ${req.blockSize}, secondary ${this.#blockSize}`);
    }
    if (!req.primaryGeneration) throw new PeerRefusedError('handshake without a primary generation');
    const synced = this.#meta.syncedPeerGeneration;
    if (synced !== '' && synced !== req.primaryGeneration) {
      // Data of another primary lineage: overwriting it silently could lose the only
      // good copy (split brain). A human decides (delete and recreate this pair).
      throw new PeerRefusedError(`generation mismatch: this secondary holds data of primary generation ${synced}, not ${req.primaryGeneration}`);
    }
    // One primary at a time: a new session replaces the old one.
    this.#session = randomUUID();
    this.#lastSeen = performance.now();
    this.#primaryGeneration = req.primaryGeneration;
    this.#mode = req.mode === 'async' ? 'async' : 'sync';
    this.stats.sessions++;
    const fullSyncRequired = synced === '' || req.syncedSecondaryGeneration !== this.#meta.generation;
    this.#logger.info('primary connected', { pair: this.name, fullSyncRequired });
    return { sessionId: this.#session, secondaryGeneration: this.#meta.generation, fullSyncRequired, redirect: '' };
  }

  isSession(id: string): boolean {
    return id !== '' && id === this.#session;
  }

  endSession(id: string): void {
    if (id !== this.#session) return;
    this.#session = '';
    // A group cut short by a lost session is never committed: the primary forms a new one.
    void this.journal.discard().catch((err: Error) => this.#logger.warn('could not discard a staged group', { pair: this.name, error: err.message }));
  }

  noteConsistencyPoint(timeMs: number): void {
    this.lastConsistencyPointTimeMs = Math.max(this.lastConsistencyPointTimeMs, timeMs);
  }

  /** The primary finished a full sync: this volume now holds its complete image. */
  async markSynced(sessionId: string): Promise<void> {
    if (!this.isSession(sessionId)) throw new PeerRefusedError('unknown session');
    // The copy's frames were written without fdatasync; the record that the image is
    // complete must never survive a power cut that the image itself did not.
    await this.#volume.flush();
    await this.#meta.setSyncedPeerGeneration(this.#primaryGeneration);
    this.noteApplied();
  }

  /**
   * Writes a frame; throws (writing nothing) on a bad frame. Frames must be applied in
   * arrival order: call `write` in order, then `settle` (which may overlap the next
   * frames' writes, so concurrent durable frames share one fdatasync).
   */
  async write(frame: BlockFrame__Output): Promise<void> {
    if (!this.isSession(frame.sessionId)) throw new PeerRefusedError('frame from an unknown session');
    this.#lastSeen = performance.now();
    let runs;
    try {
      // Decoding checks the crc and the ranges before anything is written.
      runs = frameRuns(frame, this.#volume.size);
    } catch (err) {
      this.stats.crcErrors++;
      throw err;
    }
    if (runs.length === 0) return; // a heartbeat or a barrier
    let bytes = 0;
    try {
      if (frame.group !== 0) {
        // Part of a consistency group: staged, applied only with the whole group.
        await this.journal.stage(frame.group, runs);
        for (const r of runs) bytes += r.length;
      } else {
        for (const r of runs) {
          await (r.zero ? this.#volume.writeZeroes(r.offset, r.length) : this.#volume.write(r.offset, r.data));
          bytes += r.length;
        }
      }
    } catch (err) {
      this.noteFailure(`${frame.group !== 0 ? 'staging a frame in the journal' : 'writing a frame'} failed: ${(err as Error).message}`);
      throw err;
    }
    if (frame.group === 0) this.noteApplied();
    this.stats.framesApplied++;
    this.stats.bytesApplied += bytes;
    this.stats.lastFrameTimeMs = Date.now();
  }

  /** Resolves when a written frame may be acknowledged: at once, or once durable. */
  settle(frame: BlockFrame__Output): Promise<void> {
    // An acknowledged durable frame lets the primary forget its blocks for good, so
    // they (and everything written before) must survive a power cut here first.
    if (!frame.durable) return Promise.resolve();
    return this.#volume.flush().then(
      () => this.noteApplied(),
      (err: Error) => {
        this.noteFailure(`fdatasync failed: ${err.message}`);
        throw err;
      },
    );
  }

  /** write then settle, for callers that do not pipeline. */
  async apply(frame: BlockFrame__Output): Promise<void> {
    await this.write(frame);
    await this.settle(frame);
  }
}
