import { randomUUID } from 'node:crypto';
import type { Logger } from 'winston';
import type { BlockFrame__Output } from '../../proto/gen/blockmirror/replication/v1/BlockFrame.js';
import type { HandshakeRequest__Output } from '../../proto/gen/blockmirror/replication/v1/HandshakeRequest.js';
import type { HandshakeResponse } from '../../proto/gen/blockmirror/replication/v1/HandshakeResponse.js';
import { BlockmirrorError, GeometryMismatchError } from '../errors.js';
import type { Volume } from '../volume/volume.js';
import { frameRuns } from './frame-builder.js';
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
  lastFrameTimeMs: number;
  sessions: number;
}

const ZERO_CHUNK = Buffer.alloc(1 << 20);

/**
 * The receiving end of a secondary pair: checks who is sending, writes frames to the
 * volume and makes them durable before they are acknowledged — an acknowledged block
 * is one the primary may forget, so it must survive a crash here.
 */
export class SecondaryEndpoint {
  readonly name: string;
  readonly stats: SecondaryStats = { framesApplied: 0, bytesApplied: 0, crcErrors: 0, lastFrameTimeMs: 0, sessions: 0 };
  readonly #volume: Volume;
  readonly #blockSize: number;
  readonly #meta: PairMeta;
  readonly #logger: Logger;
  #session = '';
  #primaryGeneration = '';

  constructor(name: string, volume: Volume, blockSize: number, meta: PairMeta, logger: Logger) {
    this.name = name;
    this.#volume = volume;
    this.#blockSize = blockSize;
    this.#meta = meta;
    this.#logger = logger;
  }

  get connected(): boolean {
    return this.#session !== '';
  }

  /** True once a full sync from the current primary has completed. */
  get consistent(): boolean {
    return this.#meta.syncedPeerGeneration !== '' && this.#meta.syncedPeerGeneration === this.#primaryGeneration;
  }

  handshake(req: HandshakeRequest__Output): HandshakeResponse {
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
    this.#primaryGeneration = req.primaryGeneration;
    this.stats.sessions++;
    const fullSyncRequired = synced === '' || req.syncedSecondaryGeneration !== this.#meta.generation;
    this.#logger.info('primary connected', { pair: this.name, fullSyncRequired });
    return { sessionId: this.#session, secondaryGeneration: this.#meta.generation, fullSyncRequired };
  }

  isSession(id: string): boolean {
    return id !== '' && id === this.#session;
  }

  endSession(id: string): void {
    if (id === this.#session) this.#session = '';
  }

  /** The primary finished a full sync: this volume now holds its complete image. */
  async markSynced(sessionId: string): Promise<void> {
    if (!this.isSession(sessionId)) throw new PeerRefusedError('unknown session');
    await this.#meta.setSyncedPeerGeneration(this.#primaryGeneration);
  }

  /** Writes a frame and makes it durable; throws (writing nothing) on a bad frame. */
  async apply(frame: BlockFrame__Output): Promise<void> {
    if (!this.isSession(frame.sessionId)) throw new PeerRefusedError('frame from an unknown session');
    let runs;
    try {
      // Decoding checks the crc and the ranges before anything is written.
      runs = [...frameRuns(frame, this.#volume.size)];
    } catch (err) {
      this.stats.crcErrors++;
      throw err;
    }
    let bytes = 0;
    for (const r of runs) {
      if (r.zero) {
        for (let at = r.offset; at < r.offset + r.length; at += ZERO_CHUNK.length) {
          await this.#volume.write(at, ZERO_CHUNK.subarray(0, Math.min(ZERO_CHUNK.length, r.offset + r.length - at)));
        }
      } else {
        await this.#volume.write(r.offset, r.data!);
      }
      bytes += r.length;
    }
    await this.#volume.flush();
    this.stats.framesApplied++;
    this.stats.bytesApplied += bytes;
    this.stats.lastFrameTimeMs = Date.now();
  }
}
