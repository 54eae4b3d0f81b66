import type { HandshakeResponse__Output } from '../../../proto/gen/blockmirror/replication/v1/HandshakeResponse.js';
import { BlockBitmap } from '../../bitmap/block-bitmap.js';
import { guardedSession } from './guarded-session.js';
import { ClosedError, VolumeIoError, type BlockmirrorError } from '../../errors.js';
import { DEFAULT_MAX_FRAME_PAYLOAD, frameChecksum, FrameBuilder, type Frame } from '../wire/frame-builder.js';
import { peerPlan, type PeerPlan } from './peer-plan.js';
import { PeerFault } from './peer-fault.js';
import { emptyFrame } from '../wire/peer-protocol.js';
import { extendsZeroFrame, isZeroFrame, joinZeroFrames } from '../wire/zero-frames.js';
import { pairLink, type ReplicationLink } from './peer-link.js';
import { replicatorStatus, type Replicator, type ReplicatorPairOptions, type ReplicatorStatus } from './replicator.js';
import { ResyncController } from './resync-controller.js';
import { waitUntil } from './wait-until.js';
import { READ_AHEAD_FRAMES } from './read-ahead-frames.js';

interface PendingClean {
  first: number;
  last: number;
  id: number;
}

/** The states of a sync replicator (a subset of ReplicatorState). */
export type ReplicationState = 'Initializing' | 'InSync' | 'Resyncing' | 'Retrying';

export interface SyncReplicatorOptions extends ReplicatorPairOptions {
  /** A write not acknowledged by the secondary within this is marked out of sync. */
  writeTimeoutMs?: number;
  /** Hard cap on resync bandwidth; 0 or undefined: only the dynamic window. */
  resyncBytesPerSecond?: number;
  /**
   * Resync bytes in flight while the application is quiet (no write for
   * `resyncQuietMs`). Default QUIET_RESYNC_WINDOW_BYTES (32 MiB).
   */
  quietResyncWindowBytes?: number;
  /** Default QUIET_MS (1 s). */
  resyncQuietMs?: number;
  /**
   * Foreground write bytes on their way to the secondary at once; further writes wait
   * (they are not answered before the secondary has them anyway). Bounds the memory a
   * slow or stalled peer can pin. Default DEFAULT_MAX_INFLIGHT_BYTES.
   */
  maxInFlightBytes?: number;
}

const RESYNC_FRAME_BYTES = DEFAULT_MAX_FRAME_PAYLOAD;
/**
 * With no application write for this long, the resync may fill the pipe (as DRBD's
 * c-min-rate throttles a resync only while it sees application I/O).
 */
const QUIET_MS = 1000;
/**
 * The resync window while the application is quiet. The controller's window, about
 * twice bandwidth × minimum RTT, keeps foreground writes from queueing behind resync
 * data, but it stays near its floor on a fast link: a round trip under load is the two
 * sides' batched work, not a queue the RTT estimate could see. Paired 2 GiB copies on
 * loopback: median 15.4 s with the 4 MiB floor, 13.3 s with 32 MiB (bench/RESULTS.md).
 */
const QUIET_RESYNC_WINDOW_BYTES = 32 << 20;
/** Period of the durable barrier that confirms writes of applications that seldom flush. */
const BARRIER_MS = 1000;
// After a pass that failed on this side (a block it cannot read), the next one waits this long.
const FAILED_PASS_RETRY_MS = 1000;
export const DEFAULT_MAX_INFLIGHT_BYTES = 32 << 20;

/**
 * Synchronous replication that never suspends (US8583886B2). A write is answered once
 * it is local and acknowledged by the secondary — or, when the secondary does not
 * answer in time or is unreachable, once its blocks are durably out of sync (they were
 * recorded by the dirty tracker before the local write). Out-of-sync blocks are
 * retried by a background resync whenever the link is up; nothing waits for a human.
 */
export class SyncReplicator implements Replicator {
  readonly #o: SyncReplicatorOptions;
  readonly #link: ReplicationLink;
  /** Blocks the secondary is known not to have: failed or unsent writes, resync work. */
  readonly #oos: BlockBitmap;
  /** Foreground writes in flight per block (a block is clean only when none is). */
  readonly #inflight = new Map<number, number>();
  /** Blocks whose resync copy is in flight: foreground writes to them wait. */
  readonly #locked = new Set<number>();
  #unlockWaiters: (() => void)[] = [];
  readonly #controller: ResyncController;
  readonly #blockSize: number;
  /**
   * Block ranges the secondary acknowledged as written but not yet as durable. They
   * stay dirty until a durable acknowledgement covers them (then clean), or the
   * session ends or a barrier fails (then out of sync): a secondary power cut must
   * never lose a block the primary has forgotten.
   */
  #pendingClean: PendingClean[] = [];
  /**
   * Per block, the entries of #pendingClean covering it. Acknowledgements arrive out of
   * order, so a barrier may confirm an older write of a block while a newer one is
   * acknowledged but not yet durable: the block is clean only when no entry covers it.
   */
  readonly #pendingBlocks = new Map<number, number>();
  /** Id of the last pending entry; a durable frame confirms those added before it was sent. */
  #pendingId = 0;
  /** The secondary refuses what it is sent: retries back off, the error shows. */
  readonly #fault = new PeerFault();
  /** Foreground payload bytes sent and not yet answered, and the writes waiting for room. */
  #mirrorBytes = 0;
  #mirrorWaiters: (() => void)[] = [];
  #barrierTimer: NodeJS.Timeout | undefined;
  #fullSync = false;
  #fullSyncTotal = 0;
  #resyncing = false;
  /** performance.now() of the latest application write (-Infinity: none yet). */
  #lastLocalWriteAt = -Infinity;
  #paused = false;
  #closed = false;
  /** The secondary's image id (a full copy to it resumes). */
  #secondaryImage = '';
  /** The session's secondary does not hold our generation yet, or holds divergent blocks: tell it once resynced. */
  #adoptPending = false;
  /**
   * The session's handshake is processed: its out-of-sync set is built (a full copy's
   * blocks marked dirty, a delta's divergent ones merged). Passes and MarkSynced wait for
   * it: one run in between finds nothing to ship and would tell the secondary it holds
   * our generation over blocks it never got.
   */
  #sessionReady = false;
  /** The peer's current generation at the last handshake or MarkSynced ('' unknown). */
  peerGeneration = '';
  lastInSyncTimeMs = 0;
  bytesReplicated = 0;
  bytesOnWire = 0;

  constructor(o: SyncReplicatorOptions) {
    this.#o = o;
    this.#paused = o.paused ?? false;
    this.#blockSize = o.tracker.layout.blockSize;
    // Everything the tracker holds dirty (recovered after a crash included) is unsent.
    this.#oos = o.tracker.dirtyBitmap();
    // At least 16 frames (4 MiB) in flight from the start: a short resync is over before
    // a window grown from one frame would have measured anything, and on a fast link a
    // frame's round trip is mostly the two sides' own work, not a queue — a floor of 4
    // frames left the pipeline (read, send, apply) half idle (175 vs 215 MB/s for a
    // 512 MiB copy on loopback).
    this.#controller = new ResyncController({ minWindowBytes: 16 * RESYNC_FRAME_BYTES, ...(o.resyncBytesPerSecond ? { maxBytesPerSecond: o.resyncBytesPerSecond } : {}) });
    const onSession = guardedSession((s) => this.#onSession(s), (why) => this.#link.fail(why), o.logger);
    // The link sends the heartbeats and watches the secondary's liveness (see pairLink).
    this.#link = o.link ? o.link(onSession) : pairLink(o, onSession, 'sync');
  }

  start(): void {
    this.#link.start();
    // Applications that seldom flush still get their blocks confirmed durable (and the
    // dirty log kept small) once a second. (The link sends the heartbeats.)
    this.#barrierTimer = setInterval(() => {
      if (this.#pendingClean.length > 0) void this.flushBarrier();
    }, BARRIER_MS);
    this.#barrierTimer.unref();
  }

  /**
   * FLUSH in sync mode: resolves once every write acknowledged so far is durable on the
   * secondary, or durably out of sync (its dirty bit was never cleared). Never rejects.
   */
  flushBarrier(): Promise<void> {
    return this.#barrier().then(() => undefined);
  }

  /** flushBarrier; false when it did not confirm (no session, refused, timed out). */
  #barrier(): Promise<boolean> {
    if (!this.#link.connected) {
      this.#pendingToOos();
      return Promise.resolve(false);
    }
    // Acknowledgements may arrive out of order: only what was acknowledged before the
    // barrier was sent was written before it on the secondary, so only that is covered.
    const upTo = this.#pendingId;
    return this.#withTimeout(this.#link.send('mirror', emptyFrame(true))).then((ok) => {
      if (ok) this.#confirmPending(upTo);
      else this.#pendingToOos();
      return ok;
    });
  }

  get state(): ReplicationState {
    // Connected but refused (a full or failing secondary): retrying, never suspended.
    if (!this.#link.connected || this.#fault.active) return 'Retrying';
    if (this.#fullSync) return 'Initializing';
    // A pass is not over when its last frame is acknowledged: until its durable barrier
    // returns, the secondary may still lose those blocks, so the pair is not InSync yet.
    return this.#oos.count > 0 || this.#resyncing ? 'Resyncing' : 'InSync';
  }

  get outOfSyncBytes(): number {
    // Blocks awaiting a durable acknowledgement are not out of sync: they are on the
    // secondary, and the dirty log still covers them until confirmed.
    return Math.min(this.#oos.count * this.#blockSize, this.#o.volume.size);
  }

  get progressPercent(): number {
    const total = this.#fullSync ? this.#fullSyncTotal : Math.max(this.#fullSyncTotal, this.#oos.count);
    return total === 0 ? 100 : Math.round((1000 * (total - this.#oos.count)) / total) / 10;
  }

  get retries(): number {
    return this.#link.retries;
  }

  get lastError(): string {
    return this.#link.connected ? this.#fault.error : this.#link.lastError;
  }

  /** Frames and barriers the secondary could not apply, since the pair started. */
  get refusals(): number {
    return this.#fault.count;
  }

  setPaused(paused: boolean): void {
    this.#paused = paused;
    if (!paused) this.#kick();
  }

  status(): ReplicatorStatus {
    // No consistency groups in sync mode.
    return replicatorStatus(this, { lastConsistencyPointTimeMs: 0, group: null });
  }

  /** Before a local write: waits while a resync copy of any of its blocks is in flight. */
  beforeLocalWrite(offset: number, length: number): Promise<number> | number {
    this.#lastLocalWriteAt = performance.now();
    if (this.#locked.size === 0) return this.#enter(offset, length);
    const [first, last] = this.#blocks(offset, length);
    for (let b = first; b <= last; b++) {
      if (this.#locked.has(b)) {
        // A newer write must not reach the secondary before an older resync copy of the
        // same block, or the old copy would land last: wait for the resync ack.
        return new Promise<void>((resolve) => this.#unlockWaiters.push(resolve)).then(() => this.beforeLocalWrite(offset, length));
      }
    }
    return this.#enter(offset, length);
  }

  /**
   * After the local write: mirrors it. Resolves when the secondary has it, or when it is
   * recorded out of sync — and then, when the secondary may hold our generation, once a
   * new one is durable (see PairMeta.diverge). Rejects only when that cannot be recorded:
   * a write the peer missed is never acknowledged under a generation the peer holds.
   */
  afterLocalWrite(_ticket: number, offset: number, chunks: Buffer[] | null, length: number, durable = false): Promise<void> {
    if (!this.#mirroring) {
      this.#leave(offset, length, false);
      return this.#o.meta.diverge() ?? Promise.resolve();
    }
    // Zeroes travel as a zero run, without payload.
    const bytes = chunks === null ? 0 : length;
    const max = this.#o.maxInFlightBytes ?? DEFAULT_MAX_INFLIGHT_BYTES;
    // Over the budget: wait in order (FIFO keeps overlapping writes in completion order).
    if (this.#mirrorWaiters.length > 0 || (this.#mirrorBytes > 0 && this.#mirrorBytes + bytes > max)) {
      return new Promise<void>((resolve) => this.#mirrorWaiters.push(resolve)).then(() => this.#mirror(offset, chunks, length, durable, bytes));
    }
    return this.#mirror(offset, chunks, length, durable, bytes);
  }

  get #mirroring(): boolean {
    return !this.#paused && this.#link.connected && !this.#fault.active;
  }

  #mirror(offset: number, chunks: Buffer[] | null, length: number, durable: boolean, bytes: number): Promise<void> {
    if (!this.#mirroring) {
      this.#leave(offset, length, false);
      this.#admitWaiters();
      return this.#o.meta.diverge() ?? Promise.resolve();
    }
    // The slab chunks themselves: the encoder copies them once into the message. They
    // stay ours until this write is answered (or dropped with its session), which is
    // longer than the frame can wait to be serialized.
    const payload = chunks === null ? EMPTY : chunks;
    const runs = [{ offset, length, zero: chunks === null }];
    const upTo = this.#pendingId;
    this.#mirrorBytes += bytes;
    const sent = this.#link.send('mirror', { runs, payload, crc32c: frameChecksum(runs, payload), durable });
    this.bytesOnWire += bytes;
    this.#admitWaiters();
    return this.#withTimeout(sent).then((ok) => {
      this.#mirrorBytes -= bytes;
      this.#admitWaiters();
      if (ok) this.bytesReplicated += length;
      // Out of sync first, then the new generation: an adoption that looks between the
      // two sees the block out of sync and tells the secondary nothing.
      this.#leave(offset, length, ok, durable ? upTo : -1);
      if (!ok) return this.#o.meta.diverge();
    });
  }

  /** Lets waiting writes go, in order, while they fit the budget (or nothing is in flight). */
  #admitWaiters(): void {
    const max = this.#o.maxInFlightBytes ?? DEFAULT_MAX_INFLIGHT_BYTES;
    // Each admitted writer adds its bytes synchronously in #mirror before the next one
    // is looked at (the promise callbacks run in order), so one at a time is enough.
    if (this.#mirrorWaiters.length > 0 && (this.#mirrorBytes < max || !this.#mirroring)) this.#mirrorWaiters.shift()!();
  }

  /** Waits for an acknowledgement up to the write timeout; false on failure. */
  #withTimeout(sent: Promise<void>): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), this.#o.writeTimeoutMs ?? 2000)));
    return Promise.race([sent.then(() => 'ok' as const), timeout]).then(
      (r) => {
        clearTimeout(timer);
        // A secondary that cannot answer in time: drop the session so later writes do
        // not each wait the timeout; resync catches up after reconnecting.
        if (r === 'timeout') this.#link.fail('write timeout');
        return r === 'ok';
      },
      (err: BlockmirrorError) => {
        clearTimeout(timer);
        this.#noteRefusal(err);
        return false;
      },
    );
  }

  /** A refusal by a live secondary (not a lost session) starts or extends the fault. */
  #noteRefusal(err: BlockmirrorError): void {
    if (err.code !== 'PEER_REFUSED') return;
    if (!this.#fault.active) this.#o.logger.warn('the secondary cannot apply what it is sent; retrying with backoff', { error: err.message });
    this.#fault.fail(err.message);
  }

  /** Marks clean the pending entries with id <= upTo (and `also`): a durable acknowledgement covers them. */
  #confirmPending(upTo: number, also = -1): void {
    const keep: PendingClean[] = [];
    for (const p of this.#pendingClean) {
      if (p.id > upTo && p.id !== also) {
        keep.push(p);
        continue;
      }
      for (let b = p.first; b <= p.last; b++) {
        const n = (this.#pendingBlocks.get(b) ?? 1) - 1;
        if (n > 0) {
          // A newer write of b is acknowledged but not yet durable: b stays dirty.
          this.#pendingBlocks.set(b, n);
          continue;
        }
        this.#pendingBlocks.delete(b);
        if (!this.#oos.test(b) && !this.#inflight.has(b)) this.#o.tracker.markClean(b);
      }
    }
    this.#pendingClean = keep;
  }

  #addPending(first: number, last: number): void {
    this.#pendingClean.push({ first, last, id: ++this.#pendingId });
    for (let b = first; b <= last; b++) this.#pendingBlocks.set(b, (this.#pendingBlocks.get(b) ?? 0) + 1);
  }

  #pendingToOos(): void {
    const pending = this.#pendingClean;
    this.#pendingClean = [];
    this.#pendingBlocks.clear();
    let any = false;
    for (const { first, last } of pending) {
      for (let b = first; b <= last; b++) {
        any ||= !this.#oos.test(b);
        this.#oos.set(b);
      }
    }
    if (any) this.#kick();
  }

  abandon(_ticket: number, offset: number, length: number): void {
    this.#leave(offset, length, false);
  }

  peerSeen(): void {
    this.#link.redialSoon();
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#barrierTimer);
    this.#link.close();
  }

  /** True while running; throws once closed (a wait for shipping must end with the pair). */
  #open(): boolean {
    if (this.#closed) throw new ClosedError('the pair stopped');
    return true;
  }

  #blocks(offset: number, length: number): [number, number] {
    return [Math.floor(offset / this.#blockSize), Math.floor((offset + Math.max(length, 1) - 1) / this.#blockSize)];
  }

  #enter(offset: number, length: number): number {
    const [first, last] = this.#blocks(offset, length);
    for (let b = first; b <= last; b++) this.#inflight.set(b, (this.#inflight.get(b) ?? 0) + 1);
    return 0;
  }

  /** `durableUpTo` >= 0: the write was a durable frame sent when that was the last pending id. */
  #leave(offset: number, length: number, acked: boolean, durableUpTo = -1): void {
    const [first, last] = this.#blocks(offset, length);
    let newOos = false;
    for (let b = first; b <= last; b++) {
      const n = (this.#inflight.get(b) ?? 1) - 1;
      if (n === 0) this.#inflight.delete(b);
      else this.#inflight.set(b, n);
      if (!acked) {
        if (!this.#oos.test(b)) newOos = true;
        this.#oos.set(b);
      }
    }
    if (acked) {
      // The secondary has this write (the block was in sync before, or it stays out of
      // sync). Clean once durable there: now for a durable frame — which also covers
      // everything acknowledged before it — or at the next barrier.
      this.#addPending(first, last);
      // This entry is covered by its own durable acknowledgement, and so is everything
      // acknowledged before the frame was sent.
      if (durableUpTo >= 0) this.#confirmPending(durableUpTo, this.#pendingId);
    }
    if (newOos) this.#kick();
  }

  async #onSession(s: HandshakeResponse__Output | null): Promise<void> {
    this.#sessionReady = false;
    if (s === null) {
      // Written on the secondary but never confirmed durable: it may have lost them.
      this.#pendingToOos();
      return;
    }
    this.#o.onVerdict?.(null);
    this.#secondaryImage = s.secondaryGeneration;
    // A new path may have another bandwidth and RTT: measure afresh.
    this.#controller.reset();
    const plan = peerPlan(this.#o.meta.generations, s, this.#o.tracker.layout.blocks);
    this.peerGeneration = plan.peerGeneration;
    if (plan.kind === 'refuse') {
      // The secondary's answer and our own reading of its ids disagree: never ship.
      this.#o.logger.error('the secondary answered a session its generation ids do not allow; dropping it', { reason: plan.reason });
      this.#link.fail(plan.reason);
      return;
    }
    this.#adoptPending = plan.adopt;
    if (plan.kind === 'full') {
      this.#fullSync = true;
      this.#fullSyncTotal = this.#oos.bits;
      if (s.secondaryGeneration !== '' && this.#o.meta.fullSyncTarget === s.secondaryGeneration) {
        // The copy to this very image was under way: what the secondary durably
        // confirmed was cleared from the dirty log at a barrier, and everything else is
        // still dirty (unconfirmed blocks went back at the session's end). Starting over
        // would make a copy longer than a session on a slow or loaded link never end.
        this.#o.logger.info('full sync resumed', { blocks: this.#fullSyncTotal, left: this.#oos.count });
      } else {
        // No complete image on the secondary: everything is out of sync. Durable first,
        // so a crash during the initial copy resumes it instead of forgetting it.
        await this.#o.tracker.markAllDirty();
        for (let b = 0; b < this.#oos.bits; b++) this.#oos.set(b);
        // Recorded only once every block is durably dirty: a crash in between starts
        // the copy over, never resumes it from a log that was not yet all dirty.
        await this.#o.meta.setFullSyncTarget(s.secondaryGeneration).catch((err: Error) => {
          this.#o.logger.warn('cannot record the full sync target; a new session will start the copy over', { error: err.message });
        });
        this.#o.logger.info('full sync started', { blocks: this.#fullSyncTotal });
      }
    } else {
      this.#fullSync = false;
      // The secondary's divergent blocks (what it wrote as a primary that we never got)
      // are overwritten by this delta too: the union of both sides' changes.
      await this.#mergeDivergent(plan);
      this.#fullSyncTotal = this.#oos.count;
      // What this session must ship besides new writes: after an outage or a crash, the
      // blocks changed meanwhile (and, unconfirmed, before), never the whole volume.
      this.#o.logger.info('resync started', { outOfSyncBytes: this.#oos.count * this.#blockSize, divergentBlocks: plan.divergent?.count ?? 0 });
    }
    // A session that ended meanwhile stays unready: its successor builds its own set.
    this.#sessionReady = this.#link.connected;
    this.#kick();
  }

  async #mergeDivergent(plan: PeerPlan): Promise<void> {
    if (plan.divergent === null) return;
    // Durable in our log before anything is shipped; the secondary keeps its own copy of
    // them until MarkSynced anyway.
    await this.#o.tracker.mergeDirty(plan.divergent);
    this.#oos.union(plan.divergent);
  }

  /**
   * Tells the secondary it holds our current generation (and forgets its divergent
   * blocks): only when nothing is out of sync. The flag that makes a later missed write
   * take a new generation is durable first; the check and the generation sent are taken
   * in one tick after it, so a write missed before is seen out of sync, and one missed
   * after takes a new generation. False when it could not be done now.
   */
  async #adopt(opts: { primaryDemoting?: boolean } = {}): Promise<boolean> {
    await this.#o.meta.markShared();
    if (!this.#sessionReady || this.#oos.count > 0 || !this.#link.connected) return false;
    const sent = this.#o.meta.generations;
    await this.#link.markSynced(sent, opts);
    await this.#o.meta.peerAdopted(sent.current);
    if (this.#fullSync) await this.#o.meta.setPeerImage(this.#secondaryImage);
    this.#adoptPending = false;
    this.peerGeneration = sent.current;
    return true;
  }

  /**
   * Demotion: resolves once everything this primary acknowledged is durable on the
   * secondary, which holds our generation and has been told we demote. The export is
   * fenced by then (nothing new arrives). Rejects when `signal` aborts first.
   */
  async shipEverything(signal: AbortSignal): Promise<void> {
    for (;;) {
      await waitUntil(() => this.#open() && this.#link.connected && this.#sessionReady && !this.#fullSync && !this.#paused && this.#oos.count === 0 && this.#inflight.size === 0 && !this.#resyncing, signal, () => this.#kick());
      // Everything acknowledged by the secondary made durable there, then the record.
      await this.flushBarrier();
      if (this.#pendingClean.length > 0 || this.#oos.count > 0) continue;
      try {
        if (await this.#adopt({ primaryDemoting: true })) return;
      } catch (err) {
        if (signal.aborted) throw err;
        this.#o.logger.warn('telling the secondary we demote failed; trying again', { error: (err as Error).message });
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  #kick(): void {
    if (this.#resyncing || this.#closed || this.#paused || !this.#link.connected || !this.#sessionReady) return;
    if (this.#fault.waitMs > 0) {
      // The secondary refused the last attempt: the next one waits its backoff step.
      this.#scheduleKick(this.#fault.waitMs);
      return;
    }
    this.#resyncing = true;
    let failed = false;
    this.#resync()
      .catch((err: Error) => {
        failed = true;
        this.#o.logger.warn('resync pass failed', { error: err.message });
      })
      .finally(() => {
        this.#resyncing = false;
        // Work left and a link up: go again (a failed frame leaves its blocks out of sync,
        // a refused MarkSynced leaves the initial copy to be recorded). A pass that failed
        // here (a block this side cannot read) waits longer: each would fail and warn again.
        if ((this.#oos.count > 0 || this.#fullSync || this.#adoptPending) && this.#link.connected && !this.#paused && !this.#closed) this.#scheduleKick(Math.max(failed ? FAILED_PASS_RETRY_MS : 50, this.#fault.waitMs));
      });
  }

  #kickTimer: NodeJS.Timeout | undefined;

  #scheduleKick(ms: number): void {
    if (this.#kickTimer !== undefined) return;
    this.#kickTimer = setTimeout(() => {
      this.#kickTimer = undefined;
      this.#kick();
    }, ms);
    this.#kickTimer.unref();
  }

  /** Walks the out-of-sync blocks in block order, keeping the controller's window full. */
  async #resync(): Promise<void> {
    const inflight = new Set<Promise<void>>();
    let inflightBytes = 0;
    let cursor = 0;
    // Frames are read ahead of sending: a resync after an outage reads scattered blocks,
    // and one disk read at a time would make the resync as slow as the disk's latency.
    // Each with its blocks: a read that fails still has them to unlock.
    const reading: { blocks: number[]; read: Promise<ResyncFrame> }[] = [];
    // A refusal stops the pass: resending the rest now would be refused too.
    let refused = false;
    // So does a block that cannot be read here (an I/O error): it stays out of sync.
    let unreadable: Error | null = null;
    // Where the pass spends its time, logged at its end: the disk (waiting for a read),
    // the window (waiting for acknowledgements), the closing barrier.
    const pass = { started: performance.now(), frames: 0, bytes: 0, readWaitMs: 0, windowWaitMs: 0 };
    // All-zero frames in a row are held and sent as one zero run (up to
    // MAX_JOINED_ZERO_RUN): the secondary then punches megabytes at once, where one
    // 256 KiB run at a time would each cost it a tool run or writing zeroes.
    let held: ResyncFrame | null = null;
    const send = async (frame: ResyncFrame): Promise<void> => {
      const size = frame.blocks.length * this.#blockSize;
      const t = performance.now();
      while (inflightBytes > 0 && inflightBytes + size > this.#resyncWindow()) await Promise.race(inflight);
      pass.windowWaitMs += performance.now() - t;
      pass.frames++;
      pass.bytes += size;
      const wait = this.#controller.delayMs(size, performance.now());
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const started = performance.now();
      inflightBytes += size;
      // The secondary marks itself inconsistent at the first resync frame: MarkSynced at
      // the end of the pass tells it it holds a point in time again.
      this.#adoptPending = true;
      this.#controller.onSent(size);
      this.bytesOnWire += frame.payload.length;
      const p: Promise<void> = this.#link
        .send('resync', { runs: frame.runs, payload: frame.payload, crc32c: frame.crc32c, durable: false })
        .then(
          () => {
            this.#controller.onAcked(size, performance.now() - started);
            this.bytesReplicated += size;
            // On the secondary, not yet durable there: clean at the barrier that ends
            // the pass (one fdatasync per pass, not one per frame).
            for (const b of frame.blocks) this.#oos.clear(b);
            for (const [first, count] of spans(frame.blocks)) this.#addPending(first, first + count - 1);
          },
          // The blocks stay out of sync and the next pass retries them; the controller
          // must stop counting the frame as in flight, or its window never reopens.
          (err: BlockmirrorError) => {
            this.#controller.onDropped(size);
            if (err.code === 'PEER_REFUSED') refused = true;
            this.#noteRefusal(err);
          },
        )
        .finally(() => {
          inflightBytes -= size;
          inflight.delete(p);
          this.#unlock(frame.blocks);
        });
      inflight.add(p);
    };
    for (;;) {
      // Reads cover the window: a sequential copy with 8 MiB read ahead of a 32 MiB
      // window waited 2.1 s of 5.1 s for the disk, 0.1 s with the window's worth.
      // At most the quiet window's worth: what is read ahead is held in memory.
      const readAhead = Math.max(READ_AHEAD_FRAMES, Math.ceil(Math.min(this.#resyncWindow(), this.#quietWindowBytes) / RESYNC_FRAME_BYTES));
      while (reading.length < readAhead && !refused && unreadable === null && this.#link.connected && !this.#paused && !this.#closed) {
        const blocks = this.#selectFrame(cursor);
        if (blocks === null) break;
        cursor = blocks.next;
        const read = this.#readFrame(blocks.blocks);
        // Awaited in order below; one the pass never reaches must not go unhandled (that
        // would end the sidecar).
        read.catch(() => undefined);
        reading.push({ blocks: blocks.blocks, read });
      }
      const next = reading.shift();
      if (next === undefined) break;
      const t = performance.now();
      let frame: ResyncFrame;
      try {
        frame = await next.read;
      } catch (err) {
        // Its blocks, and those of every frame read ahead, stay out of sync and unlocked:
        // a write to them must not wait for a pass that will not come.
        unreadable ??= err as Error;
        this.#unlock(next.blocks);
        continue;
      } finally {
        pass.readWaitMs += performance.now() - t;
      }
      if (refused || unreadable !== null || !this.#link.connected || this.#paused || this.#closed) {
        // Not sent: unlock, the blocks stay out of sync for the next pass.
        this.#unlock(frame.blocks);
        if (held !== null) this.#unlock(held.blocks);
        held = null;
        continue;
      }
      if (isZeroFrame(frame)) {
        if (held !== null && extendsZeroFrame(held, frame)) {
          held = { ...joinZeroFrames(held, frame), blocks: held.blocks.concat(frame.blocks) };
          continue;
        }
        if (held !== null) await send(held);
        held = frame;
        continue;
      }
      if (held !== null) await send(held);
      held = null;
      await send(frame);
    }
    if (held !== null) {
      if (refused || unreadable !== null || !this.#link.connected || this.#paused || this.#closed) this.#unlock(held.blocks);
      else await send(held);
    }
    await Promise.all(inflight);
    const shippedMs = performance.now() - pass.started;
    // Durable before the blocks are forgotten or the image is declared complete. A refused
    // barrier (frames taken, the fdatasync failed) is a refusal like a frame's: the fault
    // it recorded stays, and the next pass waits its backoff.
    if (this.#pendingClean.length > 0 && !(await this.#barrier())) refused = true;
    if (pass.frames > 0) {
      const ms = (x: number): number => Math.round(x);
      this.#o.logger.info('resync pass done', { bytes: pass.bytes, frames: pass.frames, ms: ms(performance.now() - pass.started), shippedMs: ms(shippedMs), readWaitMs: ms(pass.readWaitMs), windowWaitMs: ms(pass.windowWaitMs), windowBytes: this.#resyncWindow() });
    }
    if (unreadable !== null) throw new VolumeIoError(`reading the volume failed: ${unreadable.message}`, { cause: unreadable });
    // A pass applied without a refusal: the secondary takes data again, and foreground
    // writes are mirrored again while later passes drain what is left. When the pass
    // left nothing out of sync, the fault ends only once the initial copy is recorded
    // too: a secondary that takes data but cannot record it (its state disk is full)
    // stays Retrying, instead of flipping to Initializing between attempts.
    if (refused || !this.#link.connected) return;
    if (this.#oos.count > 0) {
      this.#fault.clear();
      return;
    }
    if (this.#fullSync || this.#adoptPending) {
      let done: boolean;
      try {
        done = await this.#adopt();
      } catch (err) {
        this.#noteRefusal(err as BlockmirrorError);
        throw err;
      }
      // Something went out of sync meanwhile: a later pass tells it.
      if (!done) return;
      if (this.#fullSync) {
        this.#o.logger.info('full sync complete');
        // Every block was dirty on disk for the copy: a crash now must not send it all again.
        await this.#o.tracker.checkpoint().catch((err: Error) => this.#o.logger.warn('could not write the dirty log after the copy (a crash now resends more)', { error: err.message }));
      }
      this.#fullSync = false;
    }
    this.#fault.clear();
    this.lastInSyncTimeMs = Date.now();
  }

  /** Resync bytes that may be in flight now: the controller's, or more while the application is quiet. */
  #resyncWindow(): number {
    const w = this.#controller.window();
    const quiet = performance.now() - this.#lastLocalWriteAt >= (this.#o.resyncQuietMs ?? QUIET_MS);
    return quiet ? Math.max(w, this.#quietWindowBytes) : w;
  }

  get #quietWindowBytes(): number {
    return this.#o.quietResyncWindowBytes ?? QUIET_RESYNC_WINDOW_BYTES;
  }

  #unlock(blocks: number[]): void {
    for (const b of blocks) this.#locked.delete(b);
    const w = this.#unlockWaiters;
    this.#unlockWaiters = [];
    for (const f of w) f();
  }

  /**
   * The blocks of the next resync frame from `cursor` on: out-of-sync blocks with no
   * foreground write in flight, in block order; they are locked until the frame is
   * acknowledged or dropped.
   */
  #selectFrame(cursor: number): { blocks: number[]; next: number } | null {
    const blocks: number[] = [];
    let b = this.#oos.nextSet(cursor);
    // Block order, ignoring blocks already locked by an earlier frame of this pass.
    while (b !== -1 && blocks.length * this.#blockSize < RESYNC_FRAME_BYTES) {
      if (!this.#inflight.has(b) && !this.#locked.has(b)) blocks.push(b);
      b = this.#oos.nextSet(b + 1);
    }
    if (blocks.length === 0) return null;
    for (const x of blocks) this.#locked.add(x);
    return { blocks, next: b === -1 ? 0 : b };
  }

  /** Reads a frame's blocks (adjacent ones in one read, all at once); all-zero blocks become zero runs. */
  async #readFrame(blocks: number[]): Promise<ResyncFrame> {
    const bs = this.#blockSize;
    const size = this.#o.volume.size;
    const frameSpans = spans(blocks);
    const bufs = await Promise.all(frameSpans.map(([first, count]) => this.#o.volume.read(first * bs, Math.min(count * bs, size - first * bs))));
    // #selectFrame keeps a frame within RESYNC_FRAME_BYTES, or one block when blocks are larger.
    // The buffers were just read for this frame alone: a run of adjacent non-zero blocks
    // is sent from its read buffer, not from a copy (a copy a frame cost the primary
    // 0.24 CPU-s per GiB of an initial copy, and as much again in GC).
    const builder = new FrameBuilder({ maxPayloadBytes: Math.max(RESYNC_FRAME_BYTES, bs), ownsData: true });
    frameSpans.forEach(([first], i) => {
      const buf = bufs[i]!;
      for (let at = 0; at < buf.length; at += bs) builder.addBlock(first * bs + at, buf.subarray(at, Math.min(at + bs, buf.length)));
    });
    return { ...builder.takeOne(), blocks };
  }
}

/** Ascending block numbers as [first, count] runs of adjacent blocks. */
function spans(blocks: number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const b of blocks) {
    const last = out[out.length - 1];
    if (last && last[0] + last[1] === b) last[1]++;
    else out.push([b, 1]);
  }
  return out;
}

interface ResyncFrame extends Frame {
  blocks: number[];
}

const EMPTY = Buffer.alloc(0);
