import { randomUUID } from 'node:crypto';
import type { Logger } from 'winston';
import type { BlockFrame__Output } from '../../../proto/gen/blockmirror/replication/v1/BlockFrame.js';
import type { Generations__Output } from '../../../proto/gen/blockmirror/replication/v1/Generations.js';
import type { HandshakeRequest__Output } from '../../../proto/gen/blockmirror/replication/v1/HandshakeRequest.js';
import type { HandshakeResponse__Output } from '../../../proto/gen/blockmirror/replication/v1/HandshakeResponse.js';
import type { DirtyTracker } from '../../bitmap/dirty-tracker.js';
import { BlockmirrorError, GeometryMismatchError } from '../../errors.js';
import type { Volume } from '../../volume/volume.js';
import { frameRuns } from '../wire/frame-builder.js';
import { SECONDARY_LIVENESS_MS } from '../wire/peer-protocol.js';
import { formatGenerations, validGenerations, type GenerationIds } from '../lineage/generation-ids.js';
import type { GroupJournal } from './group-journal.js';
import { handshakeVerdict, type RefusalVerdict } from '../lineage/handshake-verdict.js';
import type { PairMeta } from '../lineage/pair-meta.js';

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

export type SecondaryState = 'Initializing' | 'InSync' | 'Replicating' | 'Retrying' | 'SplitBrain';

/** Why the last handshake started no session, for status. */
export interface PeerVerdict {
  verdict: RefusalVerdict;
  reason: string;
  /** The dialler's current generation. */
  peerGeneration: string;
}

/** Which stream a frame came on: resync frames written in block order break point-in-time consistency. */
export type FrameStream = 'mirror' | 'resync';

// A failure to apply stays shown until applies succeed again and none failed for this long
// (a half-full disk refuses some frames and takes others).
const FAULT_CLEAR_MS = 5000;

/**
 * The receiving end of a secondary pair: checks who is sending (geometry, then the
 * data-generation ids: handshakeVerdict) and writes frames to the volume in arrival
 * order. Durable frames are fdatasync'd (group-committed) before their acknowledgement,
 * since only those let the primary forget blocks.
 *
 * Its dirty log (`divergent`) holds the blocks this side wrote as a primary that its
 * peer never confirmed (a demoted or discarded primary): they go to the primary at the
 * handshake, which overwrites them in the same delta, and are forgotten once the
 * primary says this side holds its generation (MarkSynced).
 */
export class SecondaryEndpoint {
  readonly name: string;
  readonly stats: SecondaryStats = { framesApplied: 0, bytesApplied: 0, crcErrors: 0, applyErrors: 0, lastFrameTimeMs: 0, sessions: 0 };
  readonly #volume: Volume;
  readonly #blockSize: number;
  readonly #meta: PairMeta;
  readonly #divergent: DirtyTracker;
  readonly #logger: Logger;
  #session = '';
  /** Frames being written (settled or not): a new session starts only once none is. */
  #writing = 0;
  readonly #allWritten: (() => void)[] = [];
  /** The generation ids the session's primary sent (MarkSynced from older primaries names none). */
  #primaryGenerations: GenerationIds = { current: '', bitmap: '', history: [] };
  #verdict: PeerVerdict | null = null;
  /**
   * The current generation of the last primary that dialled (in session or refused),
   * updated by MarkSynced: what status shows as the peer's. Kept after the session ends,
   * as a primary keeps the last one its secondary answered.
   */
  #peerGeneration = '';
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

  constructor(name: string, parts: { volume: Volume; blockSize: number; meta: PairMeta; journal: GroupJournal; divergent: DirtyTracker; logger: Logger }) {
    this.name = name;
    this.journal = parts.journal;
    this.#volume = parts.volume;
    this.#blockSize = parts.blockSize;
    this.#meta = parts.meta;
    this.#divergent = parts.divergent;
    this.#logger = parts.logger;
  }

  /** A session exists and frames (at least heartbeats) keep arriving. */
  get connected(): boolean {
    return this.#session !== '' && performance.now() - this.#lastSeen < SECONDARY_LIVENESS_MS;
  }

  /**
   * What the pair shows: Initializing until a full copy completed; InSync (sync) or
   * Replicating (async) while a primary is connected and everything applies; Retrying
   * while it is gone or while writes cannot be applied here.
   */
  get state(): SecondaryState {
    if (this.faulted) return 'Retrying';
    if (!this.connected && this.#verdict?.verdict === 'split-brain' && !this.#meta.data.discardMyData) return 'SplitBrain';
    if (this.#meta.current === '') return 'Initializing';
    if (!this.connected) return 'Retrying';
    return this.#mode === 'async' ? 'Replicating' : 'InSync';
  }

  /** Why the last primary was refused (until a session starts). */
  get verdict(): PeerVerdict | null {
    return this.#verdict;
  }

  /** The last known current generation of the primary ('' before any handshake with ids). */
  get peerGeneration(): string {
    return this.#peerGeneration;
  }

  /** Applying failed recently (or has not succeeded since it last failed). */
  get faulted(): boolean {
    return this.#applyError !== '' && (this.#appliedAt < this.#failedAt || performance.now() - this.#failedAt < FAULT_CLEAR_MS);
  }

  get lastError(): string {
    if (this.faulted) return this.#applyError;
    return !this.connected && this.#verdict !== null ? this.#verdict.reason : '';
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

  /**
   * The volume holds a complete image at one point in time: a complete copy or resync of
   * a primary's generation, with no resync under way since (a promotion needs it).
   */
  get consistent(): boolean {
    return this.#meta.current !== '' && !this.#meta.data.inconsistent;
  }

  /**
   * A primary's handshake: geometry, then its generation ids against this side's
   * (handshakeVerdict). A primary of the previous release sends none: its generation is
   * `primary_generation`, and it is refused with an error as that release expects.
   */
  async handshake(req: HandshakeRequest__Output): Promise<HandshakeResponse__Output> {
    if (req.volumeBytes !== this.#volume.size) {
      throw new GeometryMismatchError(`volume size mismatch: primary has ${req.volumeBytes} bytes, secondary ${this.#volume.size}`);
    }
    if (req.blockSize !== this.#blockSize) {
      throw new GeometryMismatchError(`block size mismatch: primary uses ${req.blockSize}, secondary ${this.#blockSize}`);
    }
    const legacy = req.generations === null;
    const dialer = dialerGenerations(req);
    if (typeof dialer === 'string') throw new PeerRefusedError(`bad generation ids: ${dialer}`);
    if (dialer.current === '') throw new PeerRefusedError('handshake without a primary generation');
    const v = handshakeVerdict({ role: 'secondary', generations: this.#meta.generations, discardMyData: this.#meta.data.discardMyData }, dialer);
    if (v.kind !== 'session') {
      // Overwriting this side could lose the only copy of what it holds (a split brain,
      // another lineage): nothing moves until a person decides which side loses.
      const verdict = v.kind === 'refuse' ? v.verdict : 'unrelated';
      if (legacy) throw new PeerRefusedError(`generation mismatch: this secondary holds data of primary generation ${this.#meta.current}, not ${req.primaryGeneration}`);
      if (this.#verdict?.reason !== v.reason) this.#logger.warn('primary refused', { pair: this.name, verdict, reason: v.reason });
      this.#verdict = { verdict, reason: v.reason, peerGeneration: dialer.current };
      this.#peerGeneration = dialer.current;
      return this.#answer('', false, verdict, v.reason);
    }
    // Older primaries decide on a full copy by whether they completed one to this image.
    const full = v.full || (legacy && req.syncedSecondaryGeneration !== this.#meta.image);
    // A primary is back: it may write again, so a promotion needs force again.
    await this.#meta.clearPrimaryDemoted();
    // One primary at a time: a new session replaces the old one. A frame checks its
    // session once, as it starts, and its runs are written one after another: one of the
    // old session may still be writing. The primary gave its blocks up (out of sync) and
    // resends them in the new session, so every old write must land before a new one,
    // or it would overwrite newer data with blocks the primary then believes are here.
    this.#session = '';
    if (this.#writing > 0) await new Promise<void>((resolve) => this.#allWritten.push(resolve));
    this.#session = randomUUID();
    this.#lastSeen = performance.now();
    this.#primaryGenerations = dialer;
    this.#peerGeneration = dialer.current;
    this.#mode = req.mode === 'async' ? 'async' : 'sync';
    this.#verdict = null;
    this.stats.sessions++;
    const divergent = full ? 0 : this.#divergent.dirtyBlocks;
    this.#logger.info('primary connected', { pair: this.name, fullSyncRequired: full, primary: formatGenerations(dialer), mine: formatGenerations(this.#meta.generations), divergentBlocks: divergent });
    return this.#answer(this.#session, full, '', '');
  }

  #answer(sessionId: string, full: boolean, verdict: string, reason: string): HandshakeResponse__Output {
    const g = this.#meta.generations;
    // Blocks this side wrote that the primary never confirmed: its delta overwrites them too.
    const divergent = sessionId !== '' && !full && this.#divergent.dirtyBlocks > 0 ? Buffer.from(this.#divergent.dirtyBitmap().toBytes()) : Buffer.alloc(0);
    return {
      sessionId,
      secondaryGeneration: this.#meta.image,
      fullSyncRequired: full,
      redirect: '',
      generations: { current: g.current, bitmap: g.bitmap, history: [...g.history] },
      role: 'secondary',
      verdict,
      reason,
      divergentBlocks: divergent,
    };
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

  /**
   * The primary finished a copy or resync: this volume now holds its complete image of
   * `generations` (older primaries send none: their handshake's). Its divergent blocks
   * were all overwritten. `primaryDemoting`: the primary shipped everything and demotes.
   */
  async markSynced(sessionId: string, generations: Generations__Output | null = null, primaryDemoting = false): Promise<void> {
    if (!this.isSession(sessionId)) throw new PeerRefusedError('unknown session');
    const source = generations === null ? this.#primaryGenerations : validGenerations(generations);
    if (typeof source === 'string') throw new PeerRefusedError(`bad generation ids: ${source}`);
    // The copy's frames were written without fdatasync; the record that the image is
    // complete must never survive a power cut that the image itself did not.
    await this.#volume.flush();
    await this.#meta.adopt(source, { primaryDemoted: primaryDemoting });
    this.#peerGeneration = source.current;
    // Only after the record: a crash in between brings back blocks already in sync,
    // which the next session sends again; the reverse order could lose divergent ones.
    if (this.#divergent.dirtyBlocks > 0) {
      this.#divergent.clearAll();
      await this.#divergent.checkpoint().catch((err: Error) => this.#logger.warn('could not write the cleared divergent blocks (a crash now resends them)', { pair: this.name, error: err.message }));
    }
    if (primaryDemoting) this.#logger.info('the primary demoted itself with everything shipped', { pair: this.name, generation: source.current });
    this.noteApplied();
  }

  /**
   * Writes a frame; throws (writing nothing) on a bad frame. Frames must be applied in
   * arrival order: call `write` in order, then `settle` (which may overlap the next
   * frames' writes, so concurrent durable frames share one fdatasync).
   */
  write(frame: BlockFrame__Output, stream: FrameStream = 'mirror'): Promise<void> {
    if (!this.isSession(frame.sessionId)) return Promise.reject(new PeerRefusedError('frame from an unknown session'));
    // A count, not a set of promises: this is every frame's path.
    this.#writing++;
    const written = this.#write(frame, stream);
    written.then(this.#wrote, this.#wrote);
    return written;
  }

  readonly #wrote = (): void => {
    if (--this.#writing === 0) for (const resolve of this.#allWritten.splice(0)) resolve();
  };

  async #write(frame: BlockFrame__Output, stream: FrameStream): Promise<void> {
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
    // Resync frames land in block order, not in the order they were written: from the
    // first one until MarkSynced, the volume is at no point in time, and a promotion must
    // know it even after a crash — durable before that frame touches the volume.
    if (stream === 'resync' && frame.group === 0 && this.#meta.current !== '' && !this.#meta.data.inconsistent) {
      try {
        await this.#meta.setInconsistent();
      } catch (err) {
        this.noteFailure(`recording a resync in progress failed: ${(err as Error).message}`);
        throw err;
      }
    }
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
  async apply(frame: BlockFrame__Output, stream: FrameStream = 'mirror'): Promise<void> {
    await this.write(frame, stream);
    await this.settle(frame);
  }
}

/** The dialler's generation ids; a primary of the previous release sends only its generation. */
function dialerGenerations(req: HandshakeRequest__Output): GenerationIds | string {
  if (req.generations === null) return { current: req.primaryGeneration, bitmap: '', history: [] };
  return validGenerations(req.generations);
}
