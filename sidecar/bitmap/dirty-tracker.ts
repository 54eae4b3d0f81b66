import { link, mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { InvalidArgumentError, StateCorruptError } from '../errors.js';
import { SyncBatcher } from '../volume/sync-batcher.js';
import { BlockBitmap } from './block-bitmap.js';
import { DISK_PAGE_BYTES, encodeBitmapPage, layoutFor, type DirtyLogLayout } from './dirty-log-format.js';
import { readDirtyLog, type DirtyLogContents, type DirtyLogDamage } from './dirty-log-reader.js';
import { writeDirtyLogFile, writeFully, writePagesDurably } from './dirty-log-writer.js';

export interface DirtyTrackerOptions {
  /** Path of the dirty log file (created when missing). */
  path: string;
  volumeBytes: number;
  /** Tracking granularity: a power of two from 4 KiB to 1 MiB. */
  blockSize: number;
  /** Activity-log extent size; a power-of-two multiple of blockSize. Default 4 MiB. */
  extentSize?: number;
  /** Extents kept hot before the least recently written is retired. Default 1024 (4 GiB). */
  maxActiveExtents?: number;
  /** Period of the lazy sweep that persists the fine bitmap and retires idle extents. */
  sweepIntervalMs?: number;
  /**
   * Consecutive sweeps without a write before an extent retires. Default 6 (30 s at the
   * default interval): a workload that pauses for a few seconds keeps its extents hot
   * instead of paying an intent fdatasync per 4 MiB when it resumes.
   */
  retireAfterIdleSweeps?: number;
}

/** What open found besides a clean log, for the caller to log and show. */
interface OpenReport {
  recoveredExtents: number;
  damage: readonly DirtyLogDamage[];
  convertedFrom: number | null;
}

const COLD = 0;
const PENDING = 1;
const HOT = 2;

export const MIN_BLOCK_SIZE = 4096;
export const MAX_BLOCK_SIZE = 1 << 20;
export const DEFAULT_BLOCK_SIZE = 64 * 1024;
const DEFAULT_EXTENT_SIZE = 4 << 20;

export function validateBlockSize(blockSize: number): void {
  if (!Number.isInteger(blockSize) || blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE || (blockSize & (blockSize - 1)) !== 0) {
    throw new InvalidArgumentError(`block size ${blockSize} must be a power of two from 4096 to 1048576`);
  }
}

/**
 * Crash-safe dirty-block tracking, after DRBD's activity log.
 *
 * In memory: a fine bitmap (one bit per block). On disk: the same fine bitmap, written
 * lazily, plus an *intent* bitmap of coarse extents. Before the first write into a cold
 * extent, its intent bit is written and fdatasync'd; writes into hot extents pay
 * nothing extra. After a crash, every block of every intent extent counts as dirty, so
 * the recovered set is a superset of the true one — never a subset.
 *
 * A bit is cleared (markClean) only when the peer has confirmed the whole block; the
 * on-disk fine bit follows lazily, which can only over-report.
 *
 * Every on-disk page checks itself (dirty-log-format.ts): a page that fails at open
 * counts as all ones, and a page write torn by a power cut is either old, new or
 * failing — all three safe under the two orderings above (intent durable before the
 * data write; fine bits durable before an intent is cleared).
 */
export class DirtyTracker {
  readonly layout: DirtyLogLayout;
  /** Extents found in the intent region at open: > 0 means the last stop was a crash. */
  readonly recoveredExtents: number;
  /**
   * Damage found at open and counted dirty (a page that failed its check, a truncated
   * file, a bad header): empty normally. Each entry's message names the file, the
   * region and the blocks made dirty; the caller logs them as warnings.
   */
  readonly damage: readonly DirtyLogDamage[];
  /** The on-disk version the log was converted from at open (1), or null. */
  readonly convertedFrom: number | null;
  readonly #fh: FileHandle;
  readonly #fine: BlockBitmap;
  readonly #intent: BlockBitmap;
  readonly #state: Uint8Array;
  readonly #writes: Uint32Array;
  readonly #lastUse: Float64Array;
  readonly #hot = new Set<number>();
  readonly #maxActive: number;
  #pending: number[] = [];
  readonly #intentSync: SyncBatcher;
  #tick = 0;
  #sweepTimer: NodeJS.Timeout | undefined;
  #retiring: Promise<void> | null = null;
  #sweepSeen: Uint32Array | null = null;
  readonly #idleSweeps: Uint8Array;
  readonly #retireAfter: number;
  #closed = false;
  #lastError: Error | null = null;

  private constructor(fh: FileHandle, layout: DirtyLogLayout, fine: BlockBitmap, report: OpenReport, opts: DirtyTrackerOptions) {
    this.#fh = fh;
    this.layout = layout;
    this.#fine = fine;
    this.recoveredExtents = report.recoveredExtents;
    this.damage = report.damage;
    this.convertedFrom = report.convertedFrom;
    this.#intent = new BlockBitmap(layout.extents);
    this.#state = new Uint8Array(layout.extents);
    this.#writes = new Uint32Array(layout.extents);
    this.#lastUse = new Float64Array(layout.extents);
    this.#maxActive = opts.maxActiveExtents ?? 1024;
    this.#idleSweeps = new Uint8Array(layout.extents);
    this.#retireAfter = Math.max(1, Math.min(255, opts.retireAfterIdleSweeps ?? 6));
    this.#intentSync = new SyncBatcher(() => this.#writeIntents());
    const interval = opts.sweepIntervalMs ?? 5000;
    if (interval > 0) {
      this.#sweepTimer = setInterval(() => void this.sweep().catch(() => undefined), interval);
      this.#sweepTimer.unref();
    }
  }

  static async open(opts: DirtyTrackerOptions): Promise<DirtyTracker> {
    validateBlockSize(opts.blockSize);
    const extentSize = opts.extentSize ?? Math.max(DEFAULT_EXTENT_SIZE, opts.blockSize);
    if (extentSize < opts.blockSize || (extentSize & (extentSize - 1)) !== 0) {
      throw new InvalidArgumentError(`extent size ${extentSize} must be a power of two no smaller than the block size`);
    }
    const layout = layoutFor({ volumeBytes: opts.volumeBytes, blockSize: opts.blockSize, extentSize });
    const clean: OpenReport = { recoveredExtents: 0, damage: [], convertedFrom: null };
    await mkdir(dirname(opts.path), { recursive: true });
    let fh: FileHandle;
    try {
      fh = await open(opts.path, 'r+');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // Created whole and durable (every page with its checksum, the name fsync'd in its
      // directory) before any write relies on it.
      const fine = new BlockBitmap(layout.blocks);
      return new DirtyTracker(await writeDirtyLogFile(opts.path, layout, fine), layout, fine, clean, opts);
    }
    let contents: DirtyLogContents;
    try {
      contents = await readDirtyLog(fh, layout, opts.path);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
    if (contents.kind === 'bad-header') {
      await fh.close();
      return DirtyTracker.#rebuildAllDirty(opts, layout, contents.reason);
    }
    if (contents.kind === 'v1') {
      // Replaced atomically by a version 2 log holding exactly version 1's recovered set:
      // a crash during the conversion leaves the version 1 log, converted again next time.
      await fh.close();
      const converted = await writeDirtyLogFile(opts.path, layout, contents.dirty);
      return new DirtyTracker(converted, layout, contents.dirty, { recoveredExtents: contents.intentExtents, damage: contents.damage, convertedFrom: 1 }, opts);
    }
    const { fine, intent, damage } = contents;
    try {
      const recovered = intent.count;
      if (recovered > 0 || damage.length > 0) {
        // Crash recovery: fold every intent extent into the fine bitmap (damaged pages
        // are already in it), make that durable, and only then clear the intents (the
        // reverse order could lose them). Damaged pages are rewritten whole, with valid
        // checksums, by these two steps (a truncated file grows back to full size).
        const perExtent = layout.extentSize / layout.blockSize;
        for (let e = intent.nextSet(0); e !== -1; e = intent.nextSet(e + 1)) {
          fine.setRange(e * perExtent, Math.min(layout.blocks, (e + 1) * perExtent) - 1);
        }
        await writePagesDurably(fh, fine, layout.fineFirstPage, fine.changedPages());
        const cleared = new BlockBitmap(layout.extents);
        await writePagesDurably(fh, cleared, layout.intentFirstPage, [...Array(layout.intentPages).keys()]);
      }
      return new DirtyTracker(fh, layout, fine, { recoveredExtents: recovered, damage, convertedFrom: null }, opts);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
  }

  /**
   * A log whose header fails its check: kept aside for diagnosis and replaced by one
   * with every block dirty (why not refuse: dirty-log-format.ts). The damaged file is
   * hard-linked aside first, so at every moment the log's name points at the damaged
   * log or the new one — never at nothing, which the next start would take for a new,
   * clean log.
   */
  static async #rebuildAllDirty(opts: DirtyTrackerOptions, layout: DirtyLogLayout, reason: string): Promise<DirtyTracker> {
    const aside = `${opts.path}.corrupt-${Date.now()}`;
    let kept = `kept as ${aside}`;
    try {
      await link(opts.path, aside);
    } catch (err) {
      kept = `not kept (${(err as Error).message})`;
    }
    const fine = new BlockBitmap(layout.blocks);
    fine.setRange(0, layout.blocks - 1);
    const fh = await writeDirtyLogFile(opts.path, layout, fine);
    const damage: DirtyLogDamage = {
      region: 'header',
      firstPage: 0,
      lastPage: 0,
      reason,
      firstBlock: 0,
      lastBlock: layout.blocks - 1,
      message: `${opts.path}: header failed its check (${reason}); the damaged file is ${kept}; replaced by a new log with every block dirty (blocks 0-${layout.blocks - 1}: a full resync of the pair)`,
    };
    return new DirtyTracker(fh, layout, fine, { recoveredExtents: 0, damage: [damage], convertedFrom: null }, opts);
  }

  get dirtyBlocks(): number {
    return this.#fine.count;
  }

  get dirtyBytes(): number {
    return Math.min(this.#fine.count * this.layout.blockSize, this.layout.volumeBytes);
  }

  /** Extents currently hot (their intent bit set or being set). */
  get activeExtents(): number {
    return this.#hot.size;
  }

  isDirty(block: number): boolean {
    return this.#fine.test(block);
  }

  /** A copy of the dirty set, recovered blocks included: what a peer may not have. */
  dirtyBitmap(): BlockBitmap {
    return this.#fine.clone();
  }

  nextDirty(from: number): number {
    return this.#fine.nextSet(from);
  }

  /**
   * Records that [offset, offset+length) is about to be written. Returns undefined when
   * the range is already durably covered; otherwise a promise that resolves once it is.
   * The caller must not issue the data write before then: a write that reaches the
   * disk while its extent is unrecorded would be invisible after a crash, and the two
   * replicas would silently differ.
   */
  beforeWrite(offset: number, length: number): Promise<void> | undefined {
    if (this.#closed) return Promise.reject(new StateCorruptError('dirty tracker is closed'));
    if (length <= 0) return undefined;
    const end = offset + length - 1;
    // Any partially written block is dirty as a whole.
    this.#fine.setRange(Math.floor(offset / this.layout.blockSize), Math.floor(end / this.layout.blockSize));
    const firstExtent = Math.floor(offset / this.layout.extentSize);
    const lastExtent = Math.floor(end / this.layout.extentSize);
    let wait = false;
    const tick = ++this.#tick;
    for (let e = firstExtent; e <= lastExtent; e++) {
      this.#writes[e] = (this.#writes[e]! + 1) >>> 0;
      this.#lastUse[e] = tick;
      const s = this.#state[e];
      if (s === HOT) continue;
      wait = true;
      if (s === COLD) {
        this.#state[e] = PENDING;
        this.#intent.set(e);
        this.#hot.add(e);
        this.#pending.push(e);
      }
    }
    if (!wait) return undefined;
    if (this.#hot.size > this.#maxActive) this.#startRetire(this.#lruVictims());
    return this.#intentSync.sync();
  }

  /** The peer confirmed the whole block: it is no longer dirty. */
  markClean(block: number): void {
    this.#fine.clear(block);
  }

  /**
   * Marks the whole volume dirty, durably (an initial copy is starting: a crash in the
   * middle of it must resume it, not forget it).
   */
  async markAllDirty(): Promise<void> {
    this.#fine.setRange(0, this.layout.blocks - 1);
    await writePagesDurably(this.#fh, this.#fine, this.layout.fineFirstPage, this.#fine.changedPages());
  }

  /**
   * Adds `blocks` (a bitmap of this log's geometry) to the dirty set, durably: blocks a
   * peer holds differently (a demoted primary's unconfirmed writes) that the next
   * resync must overwrite.
   */
  async mergeDirty(blocks: BlockBitmap): Promise<void> {
    if (blocks.bits !== this.layout.blocks) throw new InvalidArgumentError(`a bitmap of ${blocks.bits} blocks cannot merge into a log of ${this.layout.blocks}`);
    if (blocks.count === 0) return;
    this.#fine.union(blocks);
    await writePagesDurably(this.#fh, this.#fine, this.layout.fineFirstPage, this.#fine.changedPages());
  }

  /**
   * Writes the fine bitmap now instead of at the next sweep: after a full copy cleans
   * every block (or a resync a secondary's divergent ones), a crash before the sweep
   * would bring the whole set back and ship it all again. Only clean bits the peer
   * confirmed reach the disk earlier than they would have; a block written since is
   * covered by its extent's intent, as at any sweep.
   */
  async checkpoint(): Promise<void> {
    if (this.#closed) return;
    while (this.#retiring !== null) await this.#retiring.catch(() => undefined);
    await writePagesDurably(this.#fh, this.#fine, this.layout.fineFirstPage, this.#fine.changedPages());
  }

  /**
   * Forgets every dirty block (a secondary whose divergent blocks were all overwritten by
   * its primary's data, durably). On disk lazily: a crash before the next sweep can only
   * bring back blocks already in sync, which would be sent again.
   */
  clearAll(): void {
    this.#fine.clearAll();
  }

  /** Marks whole blocks dirty without a data write (e.g. a failed replication). */
  markDirty(offset: number, length: number): Promise<void> | undefined {
    return this.beforeWrite(offset, length);
  }

  /**
   * Persists the fine bitmap and retires extents idle for `retireAfterIdleSweeps`
   * sweeps, so a crash after a quiet period needs little or no extra resync.
   */
  async sweep(): Promise<void> {
    if (this.#closed) return;
    const previous = this.#sweepSeen;
    this.#sweepSeen = this.#writes.slice();
    const idle: number[] = [];
    if (previous !== null) {
      for (const e of this.#hot) {
        if (this.#state[e] !== HOT) continue;
        if (this.#writes[e] !== previous[e]) this.#idleSweeps[e] = 0;
        else if (++this.#idleSweeps[e]! >= this.#retireAfter) idle.push(e);
      }
    }
    for (const e of idle) this.#idleSweeps[e] = 0;
    await this.#retire(idle);
  }

  /** Graceful stop: the fine bitmap becomes the whole truth on disk, intents cleared. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    await this.#retiring?.catch(() => undefined);
    this.#closed = true;
    try {
      await writePagesDurably(this.#fh, this.#fine, this.layout.fineFirstPage, this.#fine.changedPages());
      // Only after the fine region is durable may the intents go.
      for (const e of this.#hot) this.#intent.clear(e);
      await writePagesDurably(this.#fh, this.#intent, this.layout.intentFirstPage, this.#intent.changedPages());
    } finally {
      await this.#fh.close();
    }
  }

  get lastError(): Error | null {
    return this.#lastError;
  }

  async #writeIntents(): Promise<void> {
    // Snapshot synchronously: these extents and pages are what this flush covers. The
    // pages are sealed (crc32c) here too: the only new synchronous work per flush.
    const batch = this.#pending;
    this.#pending = [];
    const pages = this.#intent.changedPages();
    const first = this.layout.intentFirstPage;
    const sealed = pages.map((p) => encodeBitmapPage(this.#intent, p, first + p));
    try {
      // Each page is one aligned 4 KiB write: torn by a power cut, it fails its check
      // at the next open and counts as all intents — never as fewer.
      for (let i = 0; i < pages.length; i++) await writeFully(this.#fh, sealed[i]!, (first + pages[i]!) * DISK_PAGE_BYTES);
      await this.#fh.datasync();
    } catch (err) {
      // Nothing is covered: re-queue so the next attempt writes them again, and fail the
      // waiting writes rather than let them reach the disk unrecorded.
      for (const p of pages) this.#intent.markPageChanged(p);
      this.#pending.push(...batch);
      this.#lastError = err as Error;
      throw err;
    }
    for (const e of batch) if (this.#state[e] === PENDING) this.#state[e] = HOT;
    this.#lastError = null;
  }

  #lruVictims(): number[] {
    const excess = this.#hot.size - this.#maxActive;
    const candidates = [...this.#hot].filter((e) => this.#state[e] === HOT);
    candidates.sort((a, b) => this.#lastUse[a]! - this.#lastUse[b]!);
    return candidates.slice(0, Math.max(excess, 0));
  }

  #startRetire(extents: number[]): void {
    if (this.#retiring !== null || extents.length === 0) return;
    this.#retire(extents).catch((err: unknown) => {
      this.#lastError = err as Error;
    });
  }

  /**
   * Moves extents from the intent region to the fine region. Order matters: the fine
   * bits of an extent must be durable before its intent bit is cleared, and an extent
   * written to in the meantime keeps its intent (its new fine bits may not be on disk).
   */
  async #retire(extents: number[]): Promise<void> {
    while (this.#retiring !== null) await this.#retiring.catch(() => undefined);
    const run = async (): Promise<number> => {
      const seen = extents.map((e) => this.#writes[e]!);
      await writePagesDurably(this.#fh, this.#fine, this.layout.fineFirstPage, this.#fine.changedPages());
      if (this.#closed) return 0;
      let cleared = 0;
      extents.forEach((e, i) => {
        if (this.#state[e] !== HOT || this.#writes[e] !== seen[i]) return;
        this.#state[e] = COLD;
        this.#intent.clear(e);
        this.#hot.delete(e);
        cleared++;
      });
      // A cleared intent bit that is not yet on disk only over-reports after a crash,
      // so the clear rides on the next intent flush; force one when nothing else will.
      if (cleared > 0) await this.#intentSync.sync();
      return cleared;
    };
    let cleared = 0;
    this.#retiring = run().then((n) => {
      cleared = n;
    });
    try {
      await this.#retiring;
    } finally {
      this.#retiring = null;
    }
    // Requests that arrived while this one ran were dropped: catch up, as long as the
    // last round made progress (extents being written to cannot retire).
    if (cleared > 0 && !this.#closed && this.#hot.size > this.#maxActive) this.#startRetire(this.#lruVictims());
  }
}
