import type { HandshakeResponse__Output } from '../../../proto/gen/blockmirror/replication/v1/HandshakeResponse.js';
import { guardedSession } from './guarded-session.js';
import { BlockBitmap } from '../../bitmap/block-bitmap.js';
import { BlockmirrorError, ClosedError } from '../../errors.js';
import { DEFAULT_MAX_FRAME_PAYLOAD, FrameBuilder, type Frame } from '../wire/frame-builder.js';
import { emptyFrame } from '../wire/peer-protocol.js';
import { extendsZeroFrame, isZeroFrame, joinZeroFrames } from '../wire/zero-frames.js';
import type { GenerationIds } from '../lineage/generation-ids.js';
import type { ConsistencyGroup } from './consistency-group.js';
import type { ConsistencyGroups, GroupSettings } from './consistency-groups.js';
import { PeerFault } from './peer-fault.js';
import { pairLink, type PeerLink, type ReplicationLink } from './peer-link.js';
import { peerPlan } from './peer-plan.js';
import { replicatorStatus, type Replicator, type ReplicatorPairOptions, type ReplicatorStatus } from './replicator.js';
import { waitUntil } from './wait-until.js';
import { READ_AHEAD_FRAMES } from './read-ahead-frames.js';

export class GroupAbortedError extends BlockmirrorError {
  constructor(message: string) {
    super('UNAVAILABLE', message);
    this.name = 'GroupAbortedError';
  }
}

export interface AsyncReplicatorOptions extends ReplicatorPairOptions {
  /**
   * The consistency group this replicator joins as it is made and leaves as it closes
   * (the sidecar's groups, and the group's settings: see ConsistencyGroups.join).
   */
  group?: { groups: ConsistencyGroups; settings: GroupSettings };
  /** Something to ship appeared, or the link came up: the group coordinator may form a group (its group is told too). */
  onWork?(): void;
  /** Copy-aside memory for the draining group; default DEFAULT_ASIDE_BUDGET_BYTES. */
  asideBudgetBytes?: number;
}

/** What a cut saw: the generation its group is a point of, and the writes acknowledged without the peer so far. */
interface CutInfo {
  id: number;
  generations: GenerationIds;
  divergentWrites: number;
}

export type AsyncState = 'Initializing' | 'Replicating' | 'Retrying';

const FRAME_BYTES = DEFAULT_MAX_FRAME_PAYLOAD;
/**
 * Old block versions a pair may hold copied aside for its draining group. A drain that
 * falls this far behind the writes is abandoned (its blocks go back to the recording
 * bitmap) instead of holding an unbounded copy of the volume in memory.
 */
export const DEFAULT_ASIDE_BUDGET_BYTES = 64 << 20;
/** Frames of a drain in flight at once (the link's bandwidth-delay product on a LAN). */
const FRAMES_IN_FLIGHT = 16;

/** A drain's frame, and the bytes of the blocks it covers (zero or not). */
type DrainFrame = Frame & { bytes: number };

interface Drain {
  id: number;
  /** Blocks of the group (cleared from `unread` once their data is captured). */
  blocks: BlockBitmap;
  unread: BlockBitmap;
  /** Old contents of group blocks, copied aside before a newer write overwrote them. */
  aside: Map<number, Buffer>;
  /** Captures under way (by the drain or by a write copying aside). */
  reading: Map<number, Promise<Buffer>>;
  /** Writes of the group's epoch still landing: the drain reads only after them. */
  epoch: number;
  /** Bytes copied aside for writes (held in `aside` or being read), and their blocks. */
  asideBytes: number;
  heldForWrites: Set<number>;
  /** Set when the copy-aside budget ran out: the drain stops, the group fails. */
  abandoned: string | null;
}

/**
 * One pair's side of asynchronous replication with consistency groups (US20050071586A1,
 * IBM Global Mirror): writes are answered once local; their blocks go to the
 * change-recording bitmap. At a cut, that bitmap becomes the group being drained and a
 * fresh one records; a newer write into a block of the group that has not been read yet
 * first copies the old block aside, so the group carries only data of its point in time.
 * The ConsistencyGroup coordinator decides when to cut, drain and commit.
 */
export class AsyncReplicator implements Replicator {
  readonly #o: AsyncReplicatorOptions;
  readonly #link: ReplicationLink;
  /** The secondary refuses frames or groups: the coordinator's retries back off. */
  readonly #fault = new PeerFault();
  readonly #bs: number;
  /** Blocks changed since the last cut (the change-recording bitmap). */
  #recording: BlockBitmap;
  #drain: Drain | null = null;
  /** Group blocks not also in `#recording`: outOfSyncBytes without a full scan. */
  #groupOnly = 0;
  #epoch = 1;
  readonly #inflight = new Map<number, number>();
  #epochWaiters: { epoch: number; resolve(): void }[] = [];
  /** While set, acknowledgements wait for it (the coordination hold). */
  #hold: Promise<void> | null = null;
  #fullSync = false;
  #fullSyncBlocks = 0;
  #paused = false;
  #closed = false;
  /** The secondary's image id (a full copy to it resumes). */
  #secondaryImage = '';
  /** The session's secondary holds a complete image (no full copy needed, or it is done). */
  #peerHasImage = false;
  /** The session's handshake is processed (divergent blocks merged): groups may be cut. */
  #sessionReady = false;
  /** The secondary does not hold our generation yet (or holds divergent blocks): tell it after a group. */
  #adoptPending = false;
  #adopting: Promise<void> | null = null;
  /** Writes acknowledged while the secondary could not get them (link down, paused, refusing). */
  #divergentWrites = 0;
  #lastCut: CutInfo | null = null;
  /** The peer's current generation at the last handshake or MarkSynced ('' unknown). */
  peerGeneration = '';
  lastConsistencyPointTimeMs = 0;
  bytesReplicated = 0;
  bytesOnWire = 0;
  /** Bytes the application wrote (the coordinator compares its rate with the link's). */
  bytesWritten = 0;
  /** Groups abandoned because their copy-aside budget ran out. */
  groupsAbandoned = 0;
  /** The consistency group joined (options.group); left at close. */
  #membership: { groups: ConsistencyGroups; name: string; group: ConsistencyGroup } | null = null;

  constructor(o: AsyncReplicatorOptions) {
    this.#o = o;
    this.#paused = o.paused ?? false;
    this.#bs = o.tracker.layout.blockSize;
    // Dirty after a crash or an earlier run: unknown on the secondary, so in the next group.
    this.#recording = o.tracker.dirtyBitmap();
    const onSession = guardedSession((s) => this.#onSession(s), (why) => this.#link.fail(why), o.logger);
    this.#link = o.link ? o.link(onSession) : pairLink(o, onSession, 'async');
    // Last: the group may look at its members at once.
    if (o.group !== undefined) this.#membership = { groups: o.group.groups, name: o.group.settings.name, group: o.group.groups.join(o.group.settings, this) };
  }

  /** Tells whoever forms groups that there is something to do (see onWork). */
  #onWork(): void {
    this.#o.onWork?.();
    this.#membership?.group.notify();
  }

  start(): void {
    this.#link.start();
  }

  peerSeen(): void {
    this.#link.redialSoon();
  }

  close(): void {
    // Out of its group first (the group's stats stay readable in status()).
    const m = this.#membership;
    if (m !== null && !this.#closed) m.groups.leave(m.name, this);
    this.#closed = true;
    this.#link.close();
    this.#releaseHold();
  }

  /** True while running; throws once closed (a wait for shipping must end with the pair). */
  #open(): boolean {
    if (this.#closed) throw new ClosedError('the pair stopped');
    return true;
  }

  setPaused(paused: boolean): void {
    this.#paused = paused;
    if (!paused) this.#onWork();
  }

  get state(): AsyncState {
    // Connected but refused (a full or failing secondary): retrying, never suspended.
    if (!this.#link.connected || this.#fault.active) return 'Retrying';
    return this.#fullSync || !this.#peerHasImage ? 'Initializing' : 'Replicating';
  }

  get outOfSyncBytes(): number {
    return Math.min((this.#recording.count + this.#groupOnly) * this.#bs, this.#o.volume.size);
  }

  status(): ReplicatorStatus {
    return replicatorStatus(this, { lastConsistencyPointTimeMs: this.lastConsistencyPointTimeMs, group: this.#membership?.group.stats() ?? null });
  }

  /** Progress of the initial copy (100 outside it). */
  get progressPercent(): number {
    if (!this.#fullSync || this.#fullSyncBlocks === 0) return 100;
    const left = this.#recording.count + this.#groupOnly;
    return Math.round((1000 * Math.max(0, this.#fullSyncBlocks - left)) / this.#fullSyncBlocks) / 10;
  }

  /** The secondary held the primary's image as of this time (the last consistency point). */
  get lastInSyncTimeMs(): number {
    return this.lastConsistencyPointTimeMs;
  }

  get retries(): number {
    return this.#link.retries;
  }

  get lastError(): string {
    return this.#link.connected ? this.#fault.error : this.#link.lastError;
  }

  /** Frames and groups the secondary could not apply, since the pair started. */
  get refusals(): number {
    return this.#fault.count;
  }

  /** How long the coordinator should wait before retrying a failed group (backoff). */
  get retryAfterMs(): number {
    return this.#fault.waitMs;
  }

  get sessionId(): string {
    return this.#link.sessionId;
  }

  get remotePair(): string {
    return this.#o.remotePair;
  }

  /** Ready to take part in a group: linked, not paused, with a complete image on the secondary. */
  get ready(): boolean {
    return this.#link.connected && this.#sessionReady && !this.#paused && !this.#closed && !this.#fullSync && this.#peerHasImage;
  }

  get hasChanges(): boolean {
    return this.#recording.count > 0;
  }

  /** Needs an initial full copy before it can join groups (run by the coordinator, alone). */
  get needsFullSync(): boolean {
    return this.#fullSync && this.#sessionReady && this.#link.connected && !this.#paused && !this.#closed;
  }

  beforeLocalWrite(offset: number, length: number): Promise<number> | number {
    const [first, last] = this.#blocks(offset, length);
    const epoch = this.#epoch;
    this.#inflight.set(epoch, (this.#inflight.get(epoch) ?? 0) + 1);
    const wasEmpty = this.#recording.count === 0;
    this.bytesWritten += length;
    const d = this.#drain;
    for (let b = first; b <= last; b++) {
      if (d !== null && d.blocks.test(b) && !this.#recording.test(b)) this.#groupOnly--;
      this.#recording.set(b);
    }
    if (wasEmpty) this.#onWork();
    if (d === null || d.abandoned !== null) return epoch;
    // The group's version of these blocks must be captured before this newer write lands.
    const captures: Promise<Buffer>[] = [];
    for (let b = first; b <= last; b++) {
      const c = this.#capture(d, b, true);
      if (d.abandoned !== null) return epoch;
      if (c) captures.push(c);
    }
    // A capture that fails (the old version unreadable) fails the write, which then never
    // reaches afterLocalWrite or abandon: it leaves its epoch here, or every later group
    // would wait for it to land.
    return captures.length === 0
      ? epoch
      : Promise.all(captures).then(
          () => epoch,
          (err: unknown) => {
            this.#leave(epoch);
            throw err;
          },
        );
  }

  afterLocalWrite(ticket: number): Promise<void> {
    this.#leave(ticket);
    // Coordination: no write is answered between the cut of the first member and the
    // last, so no write acknowledged after the cut can be in a group without its cause.
    const hold = this.#hold;
    // A write the secondary cannot get now (no session, paused, refused) is acknowledged
    // only under a generation the secondary does not hold (see PairMeta.diverge). One
    // acknowledged during a session is in flight: the RPO of async mode.
    if (this.#link.connected && !this.#paused && !this.#fault.active) return hold ?? Promise.resolve();
    this.#divergentWrites++;
    const diverged = this.#o.meta.diverge();
    if (diverged === undefined) return hold ?? Promise.resolve();
    return hold === null ? diverged : Promise.all([hold, diverged]).then(() => undefined);
  }

  abandon(ticket: number): void {
    this.#leave(ticket);
  }

  /** Async mode: a FLUSH is about the local volume only (the export flushes it). */
  flushBarrier(): Promise<void> {
    return Promise.resolve();
  }

  holdAcknowledgements(): void {
    let release!: () => void;
    this.#hold = new Promise<void>((r) => (release = r));
    this.#releaseHoldFn = release;
  }

  #releaseHoldFn: (() => void) | null = null;

  releaseHold(): void {
    this.#releaseHold();
  }

  /** The cut: the recorded blocks become group `id`; new writes record afresh. */
  cut(id: number): void {
    this.#lastCut = { id, generations: this.#o.meta.generations, divergentWrites: this.#divergentWrites };
    const blocks = this.#recording;
    this.#recording = new BlockBitmap(blocks.bits);
    this.#drain = { id, blocks, unread: blocks.clone(), aside: new Map(), reading: new Map(), epoch: this.#epoch, asideBytes: 0, heldForWrites: new Set(), abandoned: null };
    this.#groupOnly = blocks.count;
    this.#epoch++;
  }

  /**
   * Sends the group's blocks, staged on the secondary (group 0: written directly, for the
   * initial copy). Resolves with the number of frames the secondary acknowledged.
   */
  async drain(signal: AbortSignal): Promise<number> {
    const d = this.#drain;
    if (d === null) return 0;
    await this.#epochLanded(d.epoch, signal);
    const inflight = new Set<Promise<void>>();
    let frames = 0;
    let failure: Error | null = null;
    // All-zero frames in a row go as one zero run (see MAX_JOINED_ZERO_RUN); the count
    // of frames the group commit carries is of the frames sent, as the secondary staged them.
    let held: DrainFrame | null = null;
    /** Sends a frame once the window has room; false when the drain is failing. */
    const send = async (frame: DrainFrame): Promise<boolean> => {
      while (inflight.size >= FRAMES_IN_FLIGHT) await Promise.race(inflight);
      if (failure !== null) return false;
      this.bytesOnWire += frame.payload.length;
      const p = this.#link
        .send('resync', { runs: frame.runs, payload: frame.payload, crc32c: frame.crc32c, durable: false, group: d.id })
        .then(
          () => {
            frames++;
            this.bytesReplicated += frame.bytes;
          },
          (err: Error) => {
            failure ??= err;
          },
        )
        .finally(() => inflight.delete(p));
      inflight.add(p);
      return true;
    };
    // Reads ahead, in block order: each block is captured by one frame only, so a write
    // waiting on one of them finds its read under way (or its copy aside) as before. A
    // drain that stops leaves the rest read and unsent, which is safe: a failed group
    // gives all its blocks back to the recording bitmap.
    const reading: Promise<DrainFrame>[] = [];
    let b = d.blocks.nextSet(0);
    for (;;) {
      if (signal.aborted) throw new GroupAbortedError(`group ${d.id}: ${String(signal.reason)}`);
      if (failure !== null || d.abandoned !== null) break;
      while (reading.length < READ_AHEAD_FRAMES && b !== -1) {
        const frameBlocks: number[] = [];
        while (b !== -1 && frameBlocks.length * this.#bs < FRAME_BYTES) {
          frameBlocks.push(b);
          b = d.blocks.nextSet(b + 1);
        }
        const read = this.#frame(d, frameBlocks);
        // Awaited in order below; one the drain never reaches must not go unhandled.
        read.catch(() => undefined);
        reading.push(read);
      }
      const next = reading.shift();
      if (next === undefined) break;
      let frame: DrainFrame;
      try {
        frame = await next;
      } catch (err) {
        // Abandoned or unreadable: stop here, but let the frames on the wire settle first.
        failure ??= err as Error;
        break;
      }
      if (isZeroFrame(frame) && held !== null && extendsZeroFrame(held, frame)) {
        held = { ...joinZeroFrames(held, frame), bytes: held.bytes + frame.bytes };
        continue;
      }
      if (held !== null && !(await send(held))) break;
      held = null;
      if (isZeroFrame(frame)) held = frame;
      else if (!(await send(frame))) break;
    }
    if (held !== null && failure === null && d.abandoned === null) await send(held);
    await Promise.all(inflight);
    if (failure !== null) {
      this.#noteRefusal(failure);
      throw failure;
    }
    if (d.abandoned !== null) throw new GroupAbortedError(`group ${d.id}: ${d.abandoned}`);
    if (signal.aborted) throw new GroupAbortedError(`group ${d.id}: ${String(signal.reason)}`);
    return frames;
  }

  commitGroup(req: Parameters<PeerLink['commitGroup']>[0], signal: AbortSignal): Promise<void> {
    return this.#link.commitGroup(req, signal).catch((err: Error) => {
      this.#noteRefusal(err);
      throw err;
    });
  }

  /** A refusal by a live secondary (not a lost session) starts or extends the fault. */
  #noteRefusal(err: Error): void {
    if (!(err instanceof BlockmirrorError) || err.code !== 'PEER_REFUSED') return;
    if (!this.#fault.active) this.#o.logger.warn('the secondary cannot apply what it is sent; retrying with backoff', { error: err.message });
    this.#fault.fail(err.message);
  }

  /** The group is applied on the secondary (ok) or failed: forget it or give its blocks back. */
  groupDone(ok: boolean, timeMs: number): void {
    const d = this.#drain;
    if (d === null) return;
    this.#drain = null;
    this.#groupOnly = 0;
    if (!ok) this.#recording.union(d.blocks);
    else {
      this.#fault.clear();
      // Clean only if no newer write is recorded for it (one in flight is recorded too).
      for (let b = d.blocks.nextSet(0); b !== -1; b = d.blocks.nextSet(b + 1)) if (!this.#recording.test(b)) this.#o.tracker.markClean(b);
      // The initial copy (group 0) cleaned every block.
      if (d.id === 0) void this.#checkpointAfterCopy();
    }
    if (ok && timeMs > 0) this.lastConsistencyPointTimeMs = timeMs;
    else this.#onWork();
    const cut = this.#lastCut;
    if (ok && cut !== null && cut.id === d.id && d.id !== 0 && this.#adoptPending) {
      // One after the other, each group's attempt after the previous one's.
      const p: Promise<void> = (this.#adopting ?? Promise.resolve())
        .then(() => (this.#adoptPending ? this.#adoptCut(cut) : undefined))
        .catch((err: Error) => {
          this.#o.logger.warn('could not tell the secondary it holds our generation; after the next group', { error: err.message });
        });
      this.#adopting = p;
      void p.finally(() => {
        if (this.#adopting === p) this.#adopting = null;
      });
    }
  }

  /**
   * After group `cut` is applied on the secondary: it holds our data as of the cut, so it
   * holds the generation we had then — unless a write was acknowledged without it since
   * the cut (that write is under that generation and not in the group; a later group
   * brings it). The flag that makes such writes take a new generation is durable before
   * the check, which runs in the same tick as the call.
   */
  async #adoptCut(cut: CutInfo, opts: { primaryDemoting?: boolean } = {}): Promise<void> {
    await this.#o.meta.markShared();
    if (this.#divergentWrites !== cut.divergentWrites || !this.#link.connected) return;
    await this.#link.markSynced(cut.generations, opts);
    await this.#o.meta.peerAdopted(cut.generations.current);
    this.#adoptPending = false;
    this.peerGeneration = cut.generations.current;
  }

  /**
   * Demotion: resolves once every write this primary acknowledged is applied on the
   * secondary in a committed group, and the secondary holds our generation and has been
   * told we demote. The export is fenced by then. Rejects when `signal` aborts first.
   */
  async shipEverything(signal: AbortSignal): Promise<void> {
    for (;;) {
      await waitUntil(() => this.#open() && this.ready && this.#recording.count === 0 && this.#drain === null && this.#inflight.size === 0 && this.#adopting === null, signal, () => this.#onWork());
      await this.#o.meta.markShared();
      // Everything is applied (no block recorded, none draining): the secondary holds our data.
      if (this.#recording.count > 0 || this.#drain !== null || !this.#link.connected) continue;
      const generations = this.#o.meta.generations;
      try {
        await this.#link.markSynced(generations, { primaryDemoting: true });
      } catch (err) {
        if (signal.aborted) throw err;
        this.#o.logger.warn('telling the secondary we demote failed; trying again', { error: (err as Error).message });
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      await this.#o.meta.peerAdopted(generations.current);
      this.#adoptPending = false;
      this.peerGeneration = generations.current;
      return;
    }
  }

  /** The initial copy completed: the secondary holds a full image of this generation. */
  async fullSyncDone(): Promise<void> {
    // Group 0 was written straight to the secondary's volume, not durably: a durable
    // barrier makes the whole copy survive a power cut there before the secondary is
    // told its image is complete and the primary forgets the blocks.
    await this.#link.send('resync', emptyFrame(true)).catch((err: Error) => {
      this.#noteRefusal(err);
      throw err;
    });
    // The copy holds our data as of its cut (writes since are recorded for the first
    // group): the secondary takes the generation we had then.
    const cut = this.#lastCut;
    await this.#o.meta.markShared();
    if (cut === null || cut.id !== 0 || this.#divergentWrites !== cut.divergentWrites) throw new GroupAbortedError('a write was acknowledged without the secondary during the copy: copying again');
    // A secondary that cannot record it (a full state disk) is asked again, paced, rather
    // than having the whole copy sent again.
    for (;;) {
      try {
        await this.#link.markSynced(cut.generations);
        break;
      } catch (err) {
        this.#noteRefusal(err as Error);
        if (!(err instanceof BlockmirrorError) || err.code !== 'PEER_REFUSED' || this.#closed) throw err;
        await new Promise((r) => setTimeout(r, Math.max(50, this.#fault.waitMs)));
        if (!this.#link.connected) throw err;
      }
    }
    this.#fault.clear();
    await this.#o.meta.peerAdopted(cut.generations.current);
    await this.#o.meta.setPeerImage(this.#secondaryImage);
    this.#adoptPending = false;
    this.#peerHasImage = true;
    this.peerGeneration = cut.generations.current;
    this.#fullSync = false;
    this.#o.logger.info('full sync complete');
  }

  /** After the copy's group is done (its blocks clean): see DirtyTracker.checkpoint. */
  async #checkpointAfterCopy(): Promise<void> {
    await this.#o.tracker.checkpoint().catch((err: Error) => this.#o.logger.warn('could not write the dirty log after the copy (a crash now resends more)', { error: err.message }));
  }

  failSession(reason: string): void {
    this.#link.fail(reason);
  }

  async #onSession(s: HandshakeResponse__Output | null): Promise<void> {
    this.#sessionReady = false;
    if (s === null) return;
    this.#secondaryImage = s.secondaryGeneration;
    const plan = peerPlan(this.#o.meta.generations, s, this.#o.tracker.layout.blocks);
    this.peerGeneration = plan.peerGeneration;
    if (plan.kind === 'refuse') {
      // The secondary's answer and our own reading of its ids disagree: never ship.
      this.#o.logger.error('the secondary answered a session its generation ids do not allow; dropping it', { reason: plan.reason });
      this.#link.fail(plan.reason);
      return;
    }
    this.#adoptPending = plan.adopt;
    this.#peerHasImage = plan.kind === 'delta';
    if (plan.kind === 'full') {
      // No usable image there: everything goes, durably recorded first so a crash
      // during the copy resumes it.
      await this.#o.tracker.markAllDirty();
      this.#recording.setRange(0, this.#recording.bits - 1);
      this.#fullSync = true;
      this.#fullSyncBlocks = this.#recording.count;
      this.#o.logger.info('full sync started', { blocks: this.#recording.count });
    } else {
      this.#fullSync = false;
    }
    if (plan.kind === 'delta' && plan.divergent !== null) {
      // The secondary's divergent blocks (what it wrote as a primary that we never got)
      // go in the next group too, durably recorded first: the union of both sides' changes.
      await this.#o.tracker.mergeDirty(plan.divergent);
      this.#recording.union(plan.divergent);
      this.#o.logger.info('resync started', { divergentBlocks: plan.divergent.count, recordedBlocks: this.#recording.count });
    }
    // Only now may a group be cut: one cut before the merge would be followed by a
    // MarkSynced telling the secondary its divergent blocks were overwritten.
    this.#sessionReady = this.#link.connected;
    this.#onWork();
  }

  /**
   * Starts capturing block `b`'s group version, unless captured or not in the group.
   * `forWrite`: a newer write is waiting to overwrite it; such copies count against the
   * budget, and past it the group is abandoned (nothing captured) rather than let a
   * drain that cannot keep up copy the whole volume aside.
   */
  #capture(d: Drain, b: number, forWrite = false): Promise<Buffer> | undefined {
    const under = d.reading.get(b);
    if (under) return under;
    if (!d.unread.test(b)) return undefined;
    const size = Math.min(this.#bs, this.#o.volume.size - b * this.#bs);
    if (forWrite) {
      if (d.asideBytes + size > (this.#o.asideBudgetBytes ?? DEFAULT_ASIDE_BUDGET_BYTES)) {
        this.#abandon(d, 'copy-aside budget exhausted: the drain fell behind the writes');
        return undefined;
      }
      d.asideBytes += size;
      d.heldForWrites.add(b);
    }
    d.unread.clear(b);
    const offset = b * this.#bs;
    const p = this.#o.volume.read(offset, size).then((buf) => {
      d.aside.set(b, buf);
      d.reading.delete(b);
      return buf;
    });
    d.reading.set(b, p);
    return p;
  }

  async #frame(d: Drain, blocks: number[]): Promise<DrainFrame> {
    const bufs = await Promise.all(blocks.map((b) => this.#capture(d, b) ?? Promise.resolve(d.aside.get(b))));
    // Abandoned meanwhile: the copies aside are gone, and the group will not be committed.
    if (d.abandoned !== null) throw new GroupAbortedError(`group ${d.id}: ${d.abandoned}`);
    // drain() keeps a frame within FRAME_BYTES, or one block when blocks are larger.
    const builder = new FrameBuilder({ maxPayloadBytes: Math.max(FRAME_BYTES, this.#bs) });
    let bytes = 0;
    blocks.forEach((b, i) => {
      const buf = bufs[i]!;
      d.aside.delete(b);
      if (d.heldForWrites.delete(b)) d.asideBytes -= buf.length;
      builder.addBlock(b * this.#bs, buf);
      bytes += buf.length;
    });
    return { ...builder.takeOne(), bytes };
  }

  /**
   * Gives up the draining group: it will fail, its blocks go back to the recording
   * bitmap, and the secondary stays at the previous group (it commits only whole groups).
   */
  #abandon(d: Drain, why: string): void {
    if (d.abandoned !== null) return;
    d.abandoned = why;
    d.aside.clear();
    d.heldForWrites.clear();
    d.asideBytes = 0;
    this.groupsAbandoned++;
    this.#o.logger.warn('consistency group abandoned', { group: d.id, reason: why });
  }

  #epochLanded(epoch: number, signal: AbortSignal): Promise<void> {
    if ((this.#inflight.get(epoch) ?? 0) === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = (): void => reject(new GroupAbortedError(String(signal.reason)));
      signal.addEventListener('abort', onAbort, { once: true });
      this.#epochWaiters.push({
        epoch,
        resolve: () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
      });
    });
  }

  #leave(epoch: number): void {
    const n = (this.#inflight.get(epoch) ?? 1) - 1;
    if (n > 0) {
      this.#inflight.set(epoch, n);
      return;
    }
    this.#inflight.delete(epoch);
    const ready = this.#epochWaiters.filter((w) => w.epoch === epoch);
    if (ready.length === 0) return;
    this.#epochWaiters = this.#epochWaiters.filter((w) => w.epoch !== epoch);
    for (const w of ready) w.resolve();
  }

  #releaseHold(): void {
    const release = this.#releaseHoldFn;
    this.#releaseHoldFn = null;
    this.#hold = null;
    release?.();
  }

  #blocks(offset: number, length: number): [number, number] {
    return [Math.floor(offset / this.#bs), Math.floor((offset + Math.max(length, 1) - 1) / this.#bs)];
  }
}
