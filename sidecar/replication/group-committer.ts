import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'winston';
import type { CommitGroupRequest__Output } from '../../proto/gen/blockmirror/replication/v1/CommitGroupRequest.js';
import { StateCorruptError } from '../errors.js';
import { syncDir, writeFileAtomic } from '../fs/write-file-atomic.js';
import { GroupRejectedError } from './group-journal.js';
import type { SecondaryEndpoint } from './secondary-endpoint.js';

const GROUP_NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;

interface CommitRecord {
  consistencyGroup: string;
  group: number;
  timeMs: number;
  members: string[];
}

export interface GroupCommitterOptions {
  /** STATE/groups: one commit record per consistency group while it is being applied. */
  dir: string;
  lookup(pair: string): SecondaryEndpoint | undefined;
  logger: Logger;
}

/**
 * The secondary's side of a consistency group's commit, for one pair or several
 * volumes together: every member's staged group is made durable, then one commit record
 * is written — the instant the group counts as applied — then the members' volumes are
 * written from their journals. A crash before the record leaves every volume at the
 * previous group; after it, `recover` finishes the apply on the next start.
 */
export class GroupCommitter {
  readonly #o: GroupCommitterOptions;
  // One commit at a time per sidecar: records and applies never interleave.
  #queue: Promise<unknown> = Promise.resolve();

  constructor(o: GroupCommitterOptions) {
    this.#o = o;
  }

  commitGroup(req: CommitGroupRequest__Output): Promise<void> {
    const run = this.#queue.then(() => this.#commit(req));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** At start, before the peer port opens: finishes recorded commits, drops unrecorded groups. */
  async recover(endpoints: SecondaryEndpoint[]): Promise<void> {
    for (const rec of await this.#records()) {
      for (const name of rec.members) {
        const ep = this.#o.lookup(name);
        if (!ep) throw new StateCorruptError(`commit record of consistency group ${rec.consistencyGroup} names pair ${name}, which is not a secondary here`);
        const { bytes } = await ep.journal.apply(rec.group);
        ep.noteConsistencyPoint(rec.timeMs);
        this.#o.logger.warn('finished applying a committed group after a restart', { pair: name, consistencyGroup: rec.consistencyGroup, group: rec.group, bytes });
      }
      await this.#clear(rec.consistencyGroup);
    }
    // What is left was never committed: the primary resends it in a later group.
    for (const ep of endpoints) await ep.journal.discardAll();
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
    // Every member's data durable first: the record must never outlive the data.
    for (const [i, ep] of eps.entries()) await ep.journal.seal(req.group, req.members[i]!.frames);
    const rec: CommitRecord = { consistencyGroup: req.consistencyGroup, group: req.group, timeMs: req.timeMs, members: req.members.map((m) => m.pairId) };
    await writeFileAtomic(this.#recordPath(req.consistencyGroup), JSON.stringify(rec) + '\n');
    for (const ep of eps) {
      await ep.journal.apply(req.group);
      ep.noteConsistencyPoint(req.timeMs);
    }
    await this.#clear(req.consistencyGroup);
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
        const r = JSON.parse(await readFile(path, 'utf8')) as CommitRecord;
        if (typeof r.group !== 'number' || !Array.isArray(r.members) || typeof r.consistencyGroup !== 'string') throw new Error('missing fields');
        out.push(r);
      } catch (err) {
        throw new StateCorruptError(`${path}: ${(err as Error).message}`, { cause: err });
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
}
