import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import { jsonStateNames, readJsonState } from '../fs/json-state-file.js';
import { syncDir, writeFileAtomic } from '../fs/write-file-atomic.js';
import { PV_NAME } from './pv-name.js';

/** What the proxy did for one opted-in volume: enough to undo it after a restart. */
export interface VolumeRecord {
  volumeId: string;
  pv: string;
  accessType: 'mount' | 'block';
  /** The kubelet's staging path (mount: where the spliced device's filesystem is mounted). */
  stagingTargetPath: string;
  /** Where the driver staged the volume for the proxy (a directory). */
  privateStagingPath: string;
  /** Where the driver published the volume as block for the proxy (a device node bound on a file). */
  privateTargetPath: string;
  /** The driver's block device, once resolved. */
  device?: string;
  /** The spliced device the kubelet's paths lead to, once created. */
  dmDevice?: string;
  /**
   * Staged as the fenced secondary of this replication pair: the driver's raw device
   * only, held for the pair's sidecar, never spliced or mounted.
   */
  fence?: { pair: string; volume: string };
}

function isRecord(v: unknown): v is VolumeRecord {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  const str = (k: string): boolean => typeof r[k] === 'string';
  const optStr = (k: string): boolean => r[k] === undefined || typeof r[k] === 'string';
  const fence = r.fence as Record<string, unknown> | undefined;
  const fenceOk = fence === undefined || (typeof fence === 'object' && fence !== null && typeof fence.pair === 'string' && typeof fence.volume === 'string');
  return (
    str('volumeId') &&
    str('pv') &&
    (r.accessType === 'mount' || r.accessType === 'block') &&
    str('stagingTargetPath') &&
    str('privateStagingPath') &&
    str('privateTargetPath') &&
    optStr('device') &&
    optStr('dmDevice') &&
    fenceOk
  );
}

/**
 * One JSON file per opted-in volume, `<dir>/<pv>.json`, each replaced atomically: a
 * crash leaves the old record or the new one, so unstage after a restart still knows the
 * volume was opted in and what to undo.
 */
export class VolumeRecordStore {
  readonly #dir: string;

  constructor(dir: string) {
    this.#dir = dir;
  }

  #file(pv: string): string {
    // The name is a path component: only names the splice accepts (no '/', no '..').
    if (!PV_NAME.test(pv)) throw new InvalidArgumentError(`invalid volume name ${JSON.stringify(pv)}`);
    return join(this.#dir, `${pv}.json`);
  }

  async get(pv: string): Promise<VolumeRecord | undefined> {
    return await readJsonState(this.#file(pv), 'volume record', (v): v is VolumeRecord => isRecord(v) && v.pv === pv);
  }

  async put(record: VolumeRecord): Promise<void> {
    await writeFileAtomic(this.#file(record.pv), JSON.stringify(record, null, 2) + '\n');
  }

  async delete(pv: string): Promise<void> {
    try {
      await unlink(this.#file(pv));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    await syncDir(this.#dir);
  }

  async list(): Promise<VolumeRecord[]> {
    const out: VolumeRecord[] = [];
    for (const pv of await jsonStateNames(this.#dir)) {
      const r = await this.get(pv);
      if (r !== undefined) out.push(r);
    }
    return out;
  }
}
