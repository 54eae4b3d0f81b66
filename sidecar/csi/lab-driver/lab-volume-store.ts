import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { StateCorruptError } from '../../errors.js';
import { writeFileAtomic } from '../../fs/write-file-atomic.js';

/** One provisioned lab volume: a sparse image file and what CreateVolume was asked. */
export interface LabVolume {
  id: string;
  name: string;
  capacityBytes: number;
  /** CreateVolume's parameters, returned as the volume's volume_context. */
  parameters: Record<string, string>;
}

/**
 * The lab driver's volumes under `<dataDir>/volumes`: `<id>.img` (sparse, the volume's
 * bytes) and `<id>.json` (written after the image, so a listed volume always has one).
 */
export class LabVolumeStore {
  readonly #dir: string;

  constructor(dataDir: string) {
    this.#dir = join(dataDir, 'volumes');
  }

  /**
   * The id for a CreateVolume name: the name itself when it is a safe file name (a
   * PVC's pvc-<uid> stays readable all the way to /dev/mapper), else a hash of it.
   */
  static idFor(name: string): string {
    if (/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(name)) return name;
    return `h-${createHash('sha256').update(name, 'utf8').digest('hex').slice(0, 40)}`;
  }

  /** Ids come from callers: only ones idFor could have made name files here. */
  static #valid(id: string): boolean {
    return /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(id);
  }

  imagePath(id: string): string {
    return join(this.#dir, `${id}.img`);
  }

  async get(id: string): Promise<LabVolume | undefined> {
    if (!LabVolumeStore.#valid(id)) return undefined;
    let text: string;
    try {
      text = await readFile(join(this.#dir, `${id}.json`), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      return JSON.parse(text) as LabVolume;
    } catch (err) {
      throw new StateCorruptError(`lab volume ${id} has a damaged record`, { cause: err });
    }
  }

  /** Creates the sparse image, then the record. */
  async create(volume: LabVolume): Promise<void> {
    await mkdir(this.#dir, { recursive: true });
    const fh = await open(this.imagePath(volume.id), 'w');
    try {
      await fh.truncate(volume.capacityBytes);
    } finally {
      await fh.close();
    }
    await writeFileAtomic(join(this.#dir, `${volume.id}.json`), JSON.stringify(volume, null, 2) + '\n');
  }

  /** Removes the record, then the image (a crash in between leaves an orphan image, never a record without one). */
  async delete(id: string): Promise<void> {
    for (const f of [`${id}.json`, `${id}.img`]) {
      await unlink(join(this.#dir, f)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    }
  }

  async list(): Promise<LabVolume[]> {
    const names = await readdir(this.#dir).catch(() => [] as string[]);
    const out: LabVolume[] = [];
    for (const n of names.filter((n) => n.endsWith('.json')).sort()) {
      const v = await this.get(n.slice(0, -'.json'.length));
      if (v !== undefined) out.push(v);
    }
    return out;
  }
}
