import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StateCorruptError } from '../errors.js';
import { writeFileAtomic } from '../fs/write-file-atomic.js';

/**
 * Replication metadata of one pair, as DRBD's data-generation ids: `generation` names
 * this side's data lineage; `syncedPeerGeneration` is the peer generation this side
 * last completed a full sync with (empty: never). Kept in STATE_DIR/pairs/NAME/meta.json.
 */
export interface PairMetaData {
  generation: string;
  syncedPeerGeneration: string;
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
      return new PairMeta(file, { generation: parsed.generation, syncedPeerGeneration: parsed.syncedPeerGeneration });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new StateCorruptError(`${file}: ${(err as Error).message}`, { cause: err });
    }
    const meta = new PairMeta(file, { generation: randomUUID(), syncedPeerGeneration: '' });
    await meta.#save();
    return meta;
  }

  get generation(): string {
    return this.#data.generation;
  }

  get syncedPeerGeneration(): string {
    return this.#data.syncedPeerGeneration;
  }

  async setSyncedPeerGeneration(g: string): Promise<void> {
    if (this.#data.syncedPeerGeneration === g) return;
    const next = { ...this.#data, syncedPeerGeneration: g };
    // Memory follows the disk: a write that failed (a full disk) must not leave this
    // side believing — and telling its peer — what a restart would not find.
    await this.#save(next);
    this.#data = next;
  }

  #save(data: PairMetaData = this.#data): Promise<void> {
    return writeFileAtomic(this.#file, JSON.stringify(data) + '\n');
  }
}
