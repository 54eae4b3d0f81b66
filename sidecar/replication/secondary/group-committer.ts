import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'winston';
import type { CommitGroupRequest__Output } from '../../../proto/gen/blockmirror/replication/v1/CommitGroupRequest.js';
import { StateCorruptError } from '../../errors.js';
import { syncDir, writeFileAtomic } from '../../fs/write-file-atomic.js';
import { GroupRejectedError } from './group-journal.js';
import type { SecondaryEndpoint } from './secondary-endpoint.js';

const GROUP_NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;

interface RecordMember {
  pair: string;
  /** Frames staged for the group; 0: the member had no changes (no journal file). -1: unknown (a record of format 1). */
  frames: number;
}

/** A group's commit record, STATE/groups/NAME.commit.json. */
interface CommitRecord {
  consistencyGroup: string;
  group: number;
  timeMs: number;
  members: RecordMember[];
}

export interface GroupCommitterOptions {
  /** STATE/groups: one commit record per consistency group while it is being applied. */
  dir: string;
  lookup(pair: string): SecondaryEndpoint | undefined;
  logger: Logger;
  /** Pause before retrying a committed group whose apply failed (a full disk). Default 5 s. */
  retryMs?: number;
}

/**
 * The secondary's side of a consistency group's commit, for one pair or several
 * volumes together: every member's staged group is made durable and checked whole,
 * then one commit record is written — the instant the group counts as applied — then
 * the members' volumes are written from their journals. A crash before the record
 * leaves every volume at the previous group; after it, the apply is finished on the
 * next start (or, when it failed on a full disk, retried until it succeeds: a volume
 * left between two groups is never handed to a newer group).
 *
 * Order after the apply: the record is cleared first, then the journal files removed.
 * So while a record exists, every member with frames still has its file, and a missing
 * file can only mean it was lost — never "already applied".
 */
export class GroupCommitter {
  readonly #o: GroupCommitterOptions;
  // One commit at a time per sidecar: records and applies never interleave.
  #queue: Promise<unknown> = Promise.resolve();
  /** Committed groups whose apply failed: finished before anything newer of that consistency group. */
  readonly #unfinished = new Map<string, CommitRecord>();
  #retryTimer: NodeJS.Timeout | undefined;

  constructor(o: GroupCommitterOptions) {
    this.#o = o;
  }

  commitGroup(req: CommitGroupRequest__Output): Promise<void> {
    return this.#serial(() => this.#commit(req));
  }

  /**
   * At start, before the peer port opens: finishes recorded commits and drops unrecorded
   * groups. A record that cannot be finished affects its own pairs only: a corrupt or
   * lost journal is quarantined and reported on those pairs (the primary resends the
   * group: it was never told it was applied); an apply that fails (a full disk) is
   * retried in the background.
   */
  async recover(endpoints: SecondaryEndpoint[]): Promise<void> {
    for (const rec of await this.#records()) {
      try {
        await this.#check(rec);
      } catch (err) {
        await this.#abandon(rec, err as Error);
        continue;
      }
      try {
        await this.#finish(rec);
        this.#o.logger.warn('finished applying a committed group after a restart', { consistencyGroup: rec.consistencyGroup, group: rec.group });
      } catch (err) {
        this.#keepUnfinished(rec, err as Error);
      }
    }
    // What is left was never committed: the primary resends it in a later group. Files
    // of groups still to be finished stay.
    for (const ep of endpoints) {
      const keep = new Set([...this.#unfinished.values()].filter((r) => r.members.some((m) => m.pair === ep.name)).map((r) => r.group));
      await ep.journal.discardAll(keep);
    }
  }

  close(): void {
    clearTimeout(this.#retryTimer);
  }

  /**
   * Waits until no group is being committed or applied; false when a committed group
   * naming `pair` could not be applied yet (its volume is between two groups).
   */
  async settled(pair: string): Promise<boolean> {
    await this.#serial(() => Promise.resolve());
    return ![...this.#unfinished.values()].some((r) => r.members.some((m) => m.pair === pair));
  }

  async #commit(req: CommitGroupRequest__Output): Promise<void> {
    if (req.members.length === 0) throw new GroupRejectedError('a group needs at least one member');
    if (!GROUP_NAME.test(req.consistencyGroup)) throw new GroupRejectedError(`consistency group name ${JSON.stringify(req.consistencyGroup)} is not valid`);
    const eps = req.members.map((m) => {
      const ep = this.#o.lookup(m.pairId);
      if (!ep) throw new GroupRejectedError(`no secondary pair ${m.pairId} here`);
      if (!ep.isSession(m.sessionId)) throw new GroupRejectedError(`pair ${m.pairId}: unknown session`);
      return ep;
    });
    // A group committed earlier whose apply failed goes first: the volumes are between
    // it and the one before, and a newer group must never land on that.
    const earlier = this.#unfinished.get(req.consistencyGroup);
    if (earlier !== undefined) await this.#retryUnfinished(earlier);
    // Every member's data durable and checked first: the record must never outlive the
    // data, nor point at a group that cannot be applied whole.
    for (const [i, ep] of eps.entries()) {
      await ep.journal.seal(req.group, req.members[i]!.frames).catch((err: Error) => {
        if (!(err instanceof GroupRejectedError)) ep.noteFailure(`making group ${req.group} durable failed: ${err.message}`);
        throw err;
      });
    }
    const rec: CommitRecord = {
      consistencyGroup: req.consistencyGroup,
      group: req.group,
      timeMs: req.timeMs,
      members: req.members.map((m) => ({ pair: m.pairId, frames: m.frames })),
    };
    try {
      await this.#check(rec);
    } catch (err) {
      // Bad before the record: refuse the group; the primary resends it.
      const why = `group ${rec.group} failed its checks before commit: ${(err as Error).message}`;
      await this.#dropGroup(rec, why);
      throw new GroupRejectedError(why);
    }
    await writeFileAtomic(this.#recordPath(req.consistencyGroup), JSON.stringify(rec) + '\n');
    try {
      await this.#finish(rec);
    } catch (err) {
      this.#keepUnfinished(rec, err as Error);
      throw new GroupRejectedError(`group ${rec.group} is committed but could not be applied yet (retrying): ${(err as Error).message}`);
    }
  }

  /** Checks every member's journal of the record whole; throws on a corrupt or lost one. */
  async #check(rec: CommitRecord): Promise<void> {
    for (const m of rec.members) {
      const ep = this.#o.lookup(m.pair);
      // A pair deleted since: nothing of it to apply.
      if (ep === undefined) continue;
      const found = await ep.journal.verify(rec.group);
      if (found === 'missing' && m.frames > 0) {
        throw new StateCorruptError(`pair ${m.pair}: the journal of committed group ${rec.group} (${m.frames} frames) is missing`);
      }
    }
  }

  /**
   * Applies every member's group (each checked whole before its first write), then
   * clears the record, then removes the journals (see the class comment for why).
   */
  async #finish(rec: CommitRecord): Promise<void> {
    const eps: SecondaryEndpoint[] = [];
    for (const m of rec.members) {
      const ep = this.#o.lookup(m.pair);
      if (ep === undefined) {
        this.#o.logger.warn('commit record names a pair that is not a secondary here; skipped', { consistencyGroup: rec.consistencyGroup, group: rec.group, pair: m.pair });
        continue;
      }
      try {
        await ep.journal.apply(rec.group);
      } catch (err) {
        ep.noteFailure(`applying consistency group ${rec.consistencyGroup} group ${rec.group}: ${(err as Error).message}`);
        throw err;
      }
      eps.push(ep);
    }
    await this.#clear(rec.consistencyGroup);
    for (const ep of eps) {
      ep.noteConsistencyPoint(rec.timeMs);
      ep.noteApplied();
      await ep.journal.remove(rec.group);
    }
    this.#unfinished.delete(rec.consistencyGroup);
  }

  /**
   * A record whose journals cannot be applied (corrupt or lost after a crash): nothing
   * of it is written; its files are quarantined and its pairs say why. The primary was
   * never told the group was applied, so it sends those blocks again.
   */
  async #abandon(rec: CommitRecord, err: Error): Promise<void> {
    const why = `consistency group ${rec.consistencyGroup}: committed group ${rec.group} could not be applied after a restart (${err.message}); its journals are quarantined and the primary resends the group. If a member was partly written before the crash, the members are not at one point in time until the next group is applied.`;
    this.#o.logger.error('committed group abandoned', { consistencyGroup: rec.consistencyGroup, group: rec.group, error: err.message });
    for (const m of rec.members) this.#o.lookup(m.pair)?.noteFailure(why);
    await this.#dropGroup(rec, why);
    await this.#clear(rec.consistencyGroup);
  }

  /** Removes a group's journals that check out and quarantines the ones that do not. */
  async #dropGroup(rec: CommitRecord, why: string): Promise<void> {
    for (const m of rec.members) {
      const ep = this.#o.lookup(m.pair);
      if (ep === undefined) continue;
      const bad = await ep.journal.verify(rec.group).then(
        () => false,
        () => true,
      );
      if (!bad) {
        await ep.journal.remove(rec.group);
        continue;
      }
      const kept = await ep.journal.quarantine(rec.group);
      this.#o.logger.error('journal quarantined', { pair: m.pair, group: rec.group, path: kept });
      ep.noteFailure(`${why} (journal kept at ${kept})`);
    }
  }

  #keepUnfinished(rec: CommitRecord, err: Error): void {
    this.#o.logger.error('a committed group could not be applied; retrying', { consistencyGroup: rec.consistencyGroup, group: rec.group, error: err.message });
    this.#unfinished.set(rec.consistencyGroup, rec);
    this.#scheduleRetry();
  }

  async #retryUnfinished(rec: CommitRecord): Promise<void> {
    try {
      await this.#finish(rec);
      this.#o.logger.info('finished applying a committed group', { consistencyGroup: rec.consistencyGroup, group: rec.group });
    } catch (err) {
      throw new GroupRejectedError(`group ${rec.group} of consistency group ${rec.consistencyGroup} is committed but still cannot be applied: ${(err as Error).message}`);
    }
  }

  /** Retries unfinished groups on a timer too, so a secondary heals without its primary. */
  #scheduleRetry(): void {
    if (this.#retryTimer !== undefined) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      void this.#serial(async () => {
        for (const rec of [...this.#unfinished.values()]) await this.#finish(rec).catch(() => undefined);
        if (this.#unfinished.size > 0) this.#scheduleRetry();
      });
    }, this.#o.retryMs ?? 5000);
    this.#retryTimer.unref();
  }

  async #records(): Promise<CommitRecord[]> {
    let names: string[];
    try {
      names = await readdir(this.#o.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: CommitRecord[] = [];
    for (const n of names.filter((x) => x.endsWith('.commit.json'))) {
      const path = join(this.#o.dir, n);
      try {
        out.push(parseRecord(JSON.parse(await readFile(path, 'utf8')) as unknown));
      } catch (err) {
        // Unreadable: nothing can be applied from it. Its journals are left to the
        // discard that follows, and the groups it held are resent by the primary.
        this.#o.logger.error('commit record unreadable; ignored', { path, error: (err as Error).message });
        await rm(path, { force: true });
      }
    }
    return out;
  }

  #recordPath(consistencyGroup: string): string {
    // Names are pair-name-like (lowercase, digits, '-', '.'), safe as file names.
    return join(this.#o.dir, `${consistencyGroup}.commit.json`);
  }

  async #clear(consistencyGroup: string): Promise<void> {
    await rm(this.#recordPath(consistencyGroup), { force: true });
    await syncDir(this.#o.dir);
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}

/**
 * A commit record as read back. Format 1 listed members by name only; their frame
 * counts are unknown (-1), and a missing journal is then taken as applied, as format 1
 * did (it removed each journal as it went).
 */
function parseRecord(r: unknown): CommitRecord {
  const o = r as { consistencyGroup?: unknown; group?: unknown; timeMs?: unknown; members?: unknown };
  if (typeof o.group !== 'number' || typeof o.consistencyGroup !== 'string' || !Array.isArray(o.members)) throw new Error('missing fields');
  const members = (o.members as unknown[]).map((m): RecordMember => {
    if (typeof m === 'string') return { pair: m, frames: -1 };
    const x = m as { pair?: unknown; frames?: unknown };
    if (typeof x.pair !== 'string' || typeof x.frames !== 'number') throw new Error('bad member');
    return { pair: x.pair, frames: x.frames };
  });
  return { consistencyGroup: o.consistencyGroup, group: o.group, timeMs: typeof o.timeMs === 'number' ? o.timeMs : 0, members };
}
