import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StateCorruptError } from '../errors.js';
import { writeFileAtomic } from '../fs/write-file-atomic.js';

/**
 * Replication metadata of one pair, as DRBD's data-generation ids: `generation` names
 * this side's data lineage; `syncedPeerGeneration` is the peer generation this side
 * last completed a full sync with (empty: never); `fullSyncTarget` the peer generation a
 * full sync under way copies to (empty: none), so that a new session to the same peer
 * resumes the copy instead of starting it over. Kept in STATE_DIR/pairs/NAME/meta.json.
 */
export interface PairMetaData {
  generation: string;
  syncedPeerGeneration: string;
  fullSyncTarget: string;
}

export class PairMeta {
  readonly #file: string;
  #data: PairMetaData;

  private constructor(file: string, data: PairMetaData) {
    this.#file = file;
    this.#data = data;
  }

  static async open(pairStateDir: string): Promise<PairMeta> {
    const file = join(pairStateDir, 'meta.json');
    try {
      const parsed = JSON.parse(await readFile(file, 'utf8')) as Partial<PairMetaData>;
      if (typeof parsed.generation !== 'string' || typeof parsed.syncedPeerGeneration !== 'string') throw new Error('missing fields');
      // Absent in files written before it existed: no copy to resume.
      const fullSyncTarget = typeof parsed.fullSyncTarget === 'string' ? parsed.fullSyncTarget : '';
      return new PairMeta(file, { generation: parsed.generation, syncedPeerGeneration: parsed.syncedPeerGeneration, fullSyncTarget });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new StateCorruptError(`${file}: ${(err as Error).message}`, { cause: err });
    }
    const meta = new PairMeta(file, { generation: randomUUID(), syncedPeerGeneration: '', fullSyncTarget: '' });
    await meta.#save();
    return meta;
  }

  get generation(): string {
    return this.#data.generation;
  }

  get syncedPeerGeneration(): string {
    return this.#data.syncedPeerGeneration;
  }

  get fullSyncTarget(): string {
    return this.#data.fullSyncTarget;
  }

  async setSyncedPeerGeneration(g: string): Promise<void> {
    await this.#update({ syncedPeerGeneration: g });
  }

  async setFullSyncTarget(g: string): Promise<void> {
    await this.#update({ fullSyncTarget: g });
  }

  async #update(change: Partial<PairMetaData>): Promise<void> {
    const next = { ...this.#data, ...change };
    if (JSON.stringify(next) === JSON.stringify(this.#data)) return;
    // Memory follows the disk: a write that failed (a full disk) must not leave this
    // side believing — and telling its peer — what a restart would not find.
    await this.#save(next);
    this.#data = next;
  }

  #save(data: PairMetaData = this.#data): Promise<void> {
    return writeFileAtomic(this.#file, JSON.stringify(data) + '\n');
  }
}
