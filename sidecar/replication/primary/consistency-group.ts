import type { Logger } from 'winston';
import type { AsyncReplicator } from './async-replicator.js';

/** What the coordinator needs of a member (an AsyncReplicator). */
export type GroupMember = Pick<
  AsyncReplicator,
  | 'needsFullSync' | 'ready' | 'hasChanges' | 'remotePair' | 'sessionId' | 'bytesOnWire' | 'bytesWritten'
  | 'holdAcknowledgements' | 'releaseHold' | 'cut' | 'drain' | 'commitGroup' | 'groupDone' | 'fullSyncDone' | 'failSession' | 'retryAfterMs'
>;

export interface ConsistencyGroupOptions {
  name: string;
  /** Time from one group's start to the next; 0: back to back. */
  intervalMs: number;
  /** Longest a coordination may hold write acknowledgements. */
  maxCoordinationMs: number;
  /** A drain (and commit) taking longer is abandoned and retried. */
  maxDrainMs: number;
  logger: Logger;
}

export interface GroupStats {
  formed: number;
  failed: number;
  /** Group starts put off because the application wrote faster than the link carried. */
  deferred: number;
  /** Drain throughput last measured (payload bytes per second; 0: not yet known). */
  linkBytesPerSecond: number;
  holdP50Ms: number;
  holdP99Ms: number;
  holdMaxMs: number;
}

const HOLD_SAMPLES = 1024;
/**
 * Pause after a failed group before the next attempt (the link may still be down); a
 * secondary that refused the group asks for more (its members' backoff).
 */
const RETRY_MS = 200;
/** How often a deferred group start is reconsidered. */
const DEFER_CHECK_MS = 250;
/** Drains shorter than this (payload) say more about latency than about the link. */
const MIN_PAYLOAD_FOR_RATE = 1 << 20;
/** The foreground write rate is measured over at least this long. */
const MIN_RATE_WINDOW_MS = 100;

/**
 * Forms consistency groups for its members (one pair, or several volumes of one
 * application) and drives them: wait for the interval and for changes, hold
 * acknowledgements, cut every member at once, release, drain every member, commit the
 * group on the secondary in one call. Failures never suspend anything: the blocks go
 * back to the members' recording bitmaps and a later group carries them.
 */
export class ConsistencyGroup {
  readonly name: string;
  readonly #o: ConsistencyGroupOptions;
  readonly #members = new Set<GroupMember>();
  readonly #holds: number[] = [];
  #holdAt = 0;
  #formed = 0;
  #failed = 0;
  #deferred = 0;
  /** Payload bytes per second the drains achieved (smoothed); 0 until measured. */
  #linkBps = 0;
  /** When the last group was applied (or the coordinator started); monotonic, as every interval here. */
  #lastGoodMs = performance.now();
  /** Members' written bytes at the last sample, for the foreground write rate. */
  #written = { atMs: 0, bytes: 0, bps: 0 };
  #nextId = 0;
  #wake: (() => void) | null = null;
  #running = false;
  #closed = false;
  #abort: AbortController | null = null;

  constructor(o: ConsistencyGroupOptions) {
    this.name = o.name;
    this.#o = o;
  }

  get memberCount(): number {
    return this.#members.size;
  }

  add(m: GroupMember): void {
    this.#members.add(m);
    if (!this.#running) {
      this.#running = true;
      void this.#loop();
    }
    this.notify();
  }

  /** Removes a member; a group in progress is abandoned (its blocks stay recorded). */
  remove(m: GroupMember): void {
    if (!this.#members.delete(m)) return;
    this.#abort?.abort(new Error('membership changed'));
    if (this.#members.size === 0) this.close();
    this.notify();
  }

  close(): void {
    this.#closed = true;
    this.#abort?.abort(new Error('closed'));
    this.notify();
  }

  /** A member has new changes or a new session. */
  notify(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  stats(): GroupStats {
    const sorted = [...this.#holds].sort((a, b) => a - b);
    const at = (q: number): number => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);
    return { formed: this.#formed, failed: this.#failed, deferred: this.#deferred, linkBytesPerSecond: Math.round(this.#linkBps), holdP50Ms: at(0.5), holdP99Ms: at(0.99), holdMaxMs: sorted.length === 0 ? 0 : sorted[sorted.length - 1]! };
  }

  async #loop(): Promise<void> {
    // Monotonic, so a wall clock stepped back cannot stall the next group; -Infinity:
    // performance.now() starts near 0 with the process, the first group need not wait.
    let lastStart = -Infinity;
    while (!this.#closed) {
      const members = [...this.#members];
      // A member without a complete image on the secondary first gets its full copy.
      const copying = members.filter((m) => m.needsFullSync);
      if (copying.length > 0) {
        await Promise.all(copying.map((m) => this.#fullSync(m)));
        continue;
      }
      const wait = lastStart + this.#o.intervalMs - performance.now();
      if (members.length === 0 || !members.every((m) => m.ready) || !members.some((m) => m.hasChanges) || wait > 0) {
        await this.#sleep(wait > 0 ? wait : 1000);
        continue;
      }
      if (this.#overloaded(members)) {
        this.#deferred++;
        await this.#sleep(DEFER_CHECK_MS);
        continue;
      }
      lastStart = performance.now();
      const ok = await this.#formGroup(members);
      if (!ok) await this.#sleep(retryDelay(members));
    }
  }

  async #formGroup(members: GroupMember[]): Promise<boolean> {
    const id = this.#groupId();
    // Coordination: no acknowledgement between the first member's cut and the last's, so
    // a write that depends on one answered after the cut cannot be in the group. The
    // members are in this process, so the cuts are immediate; the deadline bounds the
    // hold whatever happens.
    const t0 = performance.now();
    for (const m of members) m.holdAcknowledgements();
    const deadline = setTimeout(() => members.forEach((m) => m.releaseHold()), this.#o.maxCoordinationMs);
    // Wall time on purpose: the consistency point users are shown (never an interval here).
    const timeMs = Date.now();
    for (const m of members) m.cut(id);
    for (const m of members) m.releaseHold();
    clearTimeout(deadline);
    this.#recordHold(performance.now() - t0);

    const abort = new AbortController();
    this.#abort = abort;
    const timer = setTimeout(() => abort.abort(new Error(`drain exceeded ${this.#o.maxDrainMs} ms`)), this.#o.maxDrainMs);
    const wire0 = members.reduce((n, m) => n + m.bytesOnWire, 0);
    const drainStart = performance.now();
    // Measured whether the drain completes or not: an abandoned one also ran at link speed.
    const measure = (): void => this.#noteDrainRate(members.reduce((n, m) => n + m.bytesOnWire, 0) - wire0, performance.now() - drainStart);
    const drains = members.map((m) => m.drain(abort.signal));
    try {
      const frames = await Promise.all(drains).finally(measure);
      const members_ = members.map((m, i) => ({ pairId: m.remotePair, sessionId: m.sessionId, frames: frames[i]! }));
      await members[0]!.commitGroup({ consistencyGroup: this.name, group: id, timeMs, members: members_ }, abort.signal);
      for (const m of members) m.groupDone(true, timeMs);
      this.#formed++;
      this.#lastGoodMs = performance.now();
      return true;
    } catch (err) {
      // One member's drain failed (or was abandoned): stop the others and let them settle
      // before the blocks go back, so no frame of this group is still being sent when the
      // next group starts on the same streams.
      // Cut short from outside (the drain deadline, a membership change) before that?
      const cutShort = abort.signal.aborted;
      if (!cutShort) abort.abort(err);
      await Promise.allSettled(drains);
      for (const m of members) m.groupDone(false, timeMs);
      this.#failed++;
      this.#o.logger.warn('consistency group failed, retrying', { consistencyGroup: this.name, group: id, error: (err as Error).message });
      // A drain cut short may have left frames on the wire: a new session starts clean.
      if (cutShort) for (const m of members) m.failSession('group drain abandoned');
      return false;
    } finally {
      clearTimeout(timer);
      this.#abort = null;
    }
  }

  /**
   * True while the application writes faster than the drains carry: a group cut now
   * could not finish before the writes overran it (its blocks would all be copied aside
   * first), and draining would only take CPU from the application. The recording bitmap
   * keeps collecting — rewrites of a block cost nothing more — and the group starts
   * when the burst ends, or once maxDrainMs has passed since the last group was
   * applied, whichever comes first, so deferring alone never lets the RPO grow past it.
   */
  #overloaded(members: GroupMember[]): boolean {
    const now = performance.now();
    const bytes = members.reduce((n, m) => n + m.bytesWritten, 0);
    const w = this.#written;
    if (now - w.atMs >= MIN_RATE_WINDOW_MS) {
      w.bps = w.atMs === 0 ? 0 : ((bytes - w.bytes) * 1000) / (now - w.atMs);
      w.atMs = now;
      w.bytes = bytes;
    }
    if (this.#linkBps === 0 || performance.now() - this.#lastGoodMs >= this.#o.maxDrainMs) return false;
    return w.bps > this.#linkBps;
  }

  #noteDrainRate(payloadBytes: number, ms: number): void {
    if (payloadBytes < MIN_PAYLOAD_FOR_RATE || ms <= 0) return;
    const bps = (payloadBytes * 1000) / ms;
    this.#linkBps = this.#linkBps === 0 ? bps : (this.#linkBps + bps) / 2;
  }

  async #fullSync(m: GroupMember): Promise<void> {
    m.cut(0);
    const abort = new AbortController();
    this.#abort = abort;
    try {
      // Group 0: written directly; the secondary has no consistent image to protect yet.
      await m.drain(abort.signal);
      await m.fullSyncDone();
      // Complete but not yet a consistent point in time (writes went on during the
      // copy): the first group after it is.
      m.groupDone(true, 0);
    } catch (err) {
      m.groupDone(false, 0);
      this.#o.logger.warn('full sync interrupted, resuming when the link is back', { error: (err as Error).message });
      await this.#sleep(retryDelay([m]));
    } finally {
      this.#abort = null;
    }
  }

  /**
   * Unique and increasing across restarts of the primary: the wall clock, then a counter.
   * Within a process the counter alone keeps ids increasing when the wall clock steps back.
   */
  #groupId(): number {
    this.#nextId = Math.max(this.#nextId + 1, Date.now() * 1000);
    return this.#nextId;
  }

  #recordHold(ms: number): void {
    if (this.#holds.length < HOLD_SAMPLES) this.#holds.push(ms);
    else this.#holds[this.#holdAt] = ms;
    this.#holdAt = (this.#holdAt + 1) % HOLD_SAMPLES;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#wake = null;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}

function retryDelay(members: GroupMember[]): number {
  return Math.max(RETRY_MS, ...members.map((m) => m.retryAfterMs));
}
