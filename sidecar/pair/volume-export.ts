import type { DirtyTracker } from '../bitmap/dirty-tracker.js';
import { VolumeIoError } from '../errors.js';
import type { NbdExport } from '../nbd/nbd-export.js';
import type { Replicator } from '../replication/primary/replicator.js';
import type { Volume } from '../volume/volume.js';

export interface IoCounters {
  bytesWritten: number;
  bytesRead: number;
  writeOps: number;
  readOps: number;
}

const ZERO_CHUNK = 1 << 20;
/** A long zero run is zeroed and replicated in pieces of at most this. */
const ZERO_PIECE = 32 << 20;

function fencedError(name: string): VolumeIoError {
  return new VolumeIoError(`pair ${name} is being demoted: its export refuses writes`, { errno: 'EPERM' });
}
const ZEROES = Buffer.alloc(ZERO_CHUNK);

/**
 * A primary's volume as an NBD export. Every change goes through the dirty tracker
 * first, so no byte reaches the volume unrecorded.
 */
export class VolumeExport implements NbdExport {
  readonly name: string;
  readonly description: string;
  readonly counters: IoCounters = { bytesWritten: 0, bytesRead: 0, writeOps: 0, readOps: 0 };
  readonly #volume: Volume;
  readonly #tracker: DirtyTracker;
  #replication: Replicator | null = null;
  #fenced = false;
  /** Writes that reached the volume without the peer: see recordUntrackedWrites. */
  #onDiverge: (() => Promise<void> | undefined) | null = null;

  constructor(name: string, volume: Volume, tracker: DirtyTracker) {
    this.name = name;
    this.description = `blockmirror pair ${name}`;
    this.#volume = volume;
    this.#tracker = tracker;
  }

  attachReplication(r: Replicator | null, onDiverge?: () => Promise<void> | undefined): void {
    this.#replication = r;
    this.#onDiverge = onDiverge ?? null;
  }

  /**
   * The fence of a primary being demoted (or that learnt it is stale): every write,
   * write-zeroes and trim from now on fails with EPERM (the NBD layer checks `readOnly`
   * per request); writes already accepted finish and are tracked as usual.
   */
  fenceWrites(): void {
    this.#fenced = true;
  }

  unfence(): void {
    this.#fenced = false;
  }

  get readOnly(): boolean {
    return this.#fenced;
  }

  get size(): number {
    return this.#volume.size;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const data = await this.#volume.read(offset, length);
    this.counters.readOps++;
    this.counters.bytesRead += length;
    return data;
  }

  write(offset: number, chunks: Buffer[], length: number, fua: boolean): Promise<void> {
    if (this.#fenced) return Promise.reject(fencedError(this.name));
    const r = this.#replication;
    if (r === null) return this.#writeLocal(offset, chunks, length, fua);
    const gate = r.beforeLocalWrite(offset, length);
    // FUA: the local flush and the secondary's durable acknowledgement are independent
    // (each side makes its own copy durable), so they run at once; one after the other, a
    // FUA write paid both latencies. The write completes only when both have settled,
    // even if one fails first: the mirror frame may still hold the request's buffers.
    const run = (ticket: number): Promise<void> =>
      this.#writeLocal(offset, chunks, length, false).then(
        () => (fua ? bothSettled(r.afterLocalWrite(ticket, offset, chunks, length, true), this.#volume.flush()) : r.afterLocalWrite(ticket, offset, chunks, length, false)),
        (err: unknown) => {
          r.abandon(ticket, offset, length);
          throw err;
        },
      );
    return typeof gate === 'number' ? run(gate) : gate.then(run);
  }

  #writeLocal(offset: number, chunks: Buffer[], length: number, fua: boolean): Promise<void> {
    const covered = this.#tracker.beforeWrite(offset, length);
    // The common case (extent already recorded) stays free of extra promise hops.
    const written = covered === undefined ? this.#volume.writev(offset, chunks, length) : covered.then(() => this.#volume.writev(offset, chunks, length));
    return written.then(() => {
      this.counters.writeOps++;
      this.counters.bytesWritten += length;
      if (fua) return this.#volume.flush();
    });
  }

  /**
   * Zeroes a range. A long run the volume zeroes without writing (fallocate) is done
   * without reading it first; otherwise chunks that already read as zero are skipped: a
   * fresh sparse volume stays sparse (mkfs zeroes whole tables), and unchanged chunks are
   * not dirtied. `noHole`: the range stays allocated.
   */
  async writeZeroes(offset: number, length: number, fua: boolean, noHole = false): Promise<void> {
    if (this.#fenced) throw fencedError(this.name);
    const mayUnmap = !noHole;
    if (this.#volume.fastZeroRange(offset, length, { mayUnmap }) !== null) {
      await this.#zeroPieces(offset, length, mayUnmap, fua);
    } else {
      for (let at = offset; at < offset + length; at += ZERO_CHUNK) {
        const n = Math.min(ZERO_CHUNK, offset + length - at);
        const current = await this.#volume.read(at, n);
        if (current.equals(ZEROES.subarray(0, n))) continue;
        await this.#zeroLocal(at, n, mayUnmap, fua);
      }
    }
    if (fua) await this.#volume.flush();
    this.counters.writeOps++;
    this.counters.bytesWritten += length;
  }

  /**
   * TRIM is advisory in NBD. Where the volume can deallocate without writing, the range
   * is punched out and replicated as a zero run (both replicas stay identical, and a thin
   * or sparse volume gets its space back); elsewhere it is ignored (a later read may
   * return the old data, which the protocol allows) — writing zeroes for an fstrim of a
   * whole filesystem's free space would cost far more than it frees.
   */
  async trim(offset: number, length: number, fua: boolean): Promise<void> {
    if (this.#fenced) throw fencedError(this.name);
    const range = this.#volume.fastZeroRange(offset, length);
    if (range !== null) await this.#zeroPieces(range.offset, range.length, true, false);
    if (fua) await this.#volume.flush();
  }

  /**
   * Zeroes a long run in pieces on a ZERO_PIECE grid: each piece is one replicated zero
   * run, which bounds what a draining consistency group copies aside before it.
   */
  async #zeroPieces(offset: number, length: number, mayUnmap: boolean, fua: boolean): Promise<void> {
    const end = offset + length;
    for (let at = offset; at < end; ) {
      const next = Math.min(end, (Math.floor(at / ZERO_PIECE) + 1) * ZERO_PIECE);
      await this.#zeroLocal(at, next - at, mayUnmap, fua);
      at = next;
    }
  }

  /** Zeroes one run through the dirty tracker and the replication, like a write. */
  async #zeroLocal(at: number, n: number, mayUnmap: boolean, fua: boolean): Promise<void> {
    const r = this.#replication;
    const ticket = r ? await r.beforeLocalWrite(at, n) : 0;
    try {
      const covered = this.#tracker.beforeWrite(at, n);
      if (covered !== undefined) await covered;
      await this.#volume.writeZeroes(at, n, { mayUnmap });
    } catch (err) {
      r?.abandon(ticket, at, n);
      throw err;
    }
    if (r) await r.afterLocalWrite(ticket, at, null, n, fua);
  }

  /**
   * Writes that reached the volume without passing through the export (the node's
   * fallback path): recorded durably as out of sync, the way a write whose replication
   * failed is, so the next resync or group ships them.
   */
  async recordUntrackedWrites(ranges: ReadonlyArray<readonly [offset: number, length: number]>): Promise<void> {
    const r = this.#replication;
    for (const [offset, length] of ranges) {
      if (length <= 0) continue;
      const ticket = r ? await r.beforeLocalWrite(offset, length) : 0;
      try {
        const covered = this.#tracker.beforeWrite(offset, length);
        if (covered !== undefined) await covered;
      } finally {
        r?.abandon(ticket, offset, length);
      }
    }
    // Acknowledged long ago without the peer: this side's data diverges from the
    // generation the peer may hold.
    await this.#onDiverge?.();
  }

  flush(): Promise<void> {
    const r = this.#replication;
    if (r === null) return this.#volume.flush();
    return Promise.all([this.#volume.flush(), r.flushBarrier()]).then(() => undefined);
  }
}

/** Resolves once both have settled; rejects with the first failure, if any. */
async function bothSettled(a: Promise<void>, b: Promise<void>): Promise<void> {
  const [x, y] = await Promise.allSettled([a, b]);
  if (x.status === 'rejected') throw x.reason;
  if (y.status === 'rejected') throw y.reason;
}
