import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError, StateCorruptError } from '../errors.js';
import { syncDir, writeFileAtomic } from '../fs/write-file-atomic.js';

/**
 * Where a spliced volume's I/O goes. direct: the top device maps the volume itself.
 * attached: through the tap (multipath) to the kernel NBD device served by the sidecar.
 * fallback: the sidecar was gone too long; the tap maps a dm-era device over the volume,
 * which records what is written until replication takes over again.
 */
export type SpliceState = 'direct' | 'attached' | 'fallback';

export interface SpliceRecord {
  pv: string;
  /** The volume's own block device. */
  device: string;
  sectors: number;
  state: SpliceState;
  /** attached/fallback: the primary pair exporting `device`, and its NBD socket. */
  pair?: string;
  socket?: string;
  /** The kernel NBD device in use (attached) or last used (fallback). */
  nbdIndex?: number;
  /** fallback, and direct after a detach: the dm-era device tracking writes meanwhile. */
  era?: { loop: string; metaFile: string; blockBytes: number };
}

const PV_NAME = /^[a-z0-9]([a-z0-9.-]{0,98}[a-z0-9])?$/;

export function validatePvName(pv: string): string {
  if (!PV_NAME.test(pv)) throw new InvalidArgumentError(`volume name ${JSON.stringify(pv)}: lower-case letters, digits, '-' and '.', at most 100`);
  return pv;
}

/** One JSON file per spliced volume under STATE_DIR/splices, replaced atomically. */
export class SpliceRecords {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'splices');
  }

  fileOf(pv: string): string {
    return join(this.dir, `${pv}.json`);
  }

  async list(): Promise<SpliceRecord[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: SpliceRecord[] = [];
    for (const n of names.filter((x) => x.endsWith('.json')).sort()) out.push(await this.#read(join(this.dir, n)));
    return out;
  }

  async get(pv: string): Promise<SpliceRecord | null> {
    try {
      return await this.#read(this.fileOf(pv));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async #read(file: string): Promise<SpliceRecord> {
    const text = await readFile(file, 'utf8');
    try {
      const r = JSON.parse(text) as SpliceRecord;
      if (typeof r.pv !== 'string' || typeof r.device !== 'string' || !['direct', 'attached', 'fallback'].includes(r.state)) throw new Error('unknown format');
      return r;
    } catch (err) {
      throw new StateCorruptError(`${file}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Durable before it returns: every device-mapper change is ordered after its record. */
  save(r: SpliceRecord): Promise<void> {
    return writeFileAtomic(this.fileOf(r.pv), JSON.stringify(r, null, 2) + '\n');
  }

  async remove(pv: string): Promise<void> {
    await rm(this.fileOf(pv), { force: true });
    await syncDir(this.dir).catch(() => undefined);
  }
}
