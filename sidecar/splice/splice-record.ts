import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import { jsonStateNames, readJsonState } from '../fs/json-state-file.js';
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
    const out: SpliceRecord[] = [];
    for (const pv of await jsonStateNames(this.dir)) {
      const r = await this.get(pv);
      if (r !== null) out.push(r);
    }
    return out;
  }

  async get(pv: string): Promise<SpliceRecord | null> {
    return (await readJsonState(this.fileOf(pv), 'splice record', isSpliceRecord)) ?? null;
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

function isSpliceRecord(v: unknown): v is SpliceRecord {
  const r = v as Partial<SpliceRecord> | null;
  return typeof r === 'object' && r !== null && typeof r.pv === 'string' && typeof r.device === 'string' && ['direct', 'attached', 'fallback'].includes(r.state ?? '');
}
