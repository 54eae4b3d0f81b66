import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '../errors.js';
import { jsonStateNames, readJsonState } from '../fs/json-state-file.js';
import { syncDir, writeFileAtomic } from '../fs/write-file-atomic.js';
import { validatePvName } from '../splice/splice-record.js';

/**
 * What the node's CSI proxy holds of a fenced volume: nothing; its raw device, staged for
 * the secondary pair only; or a staging for writing made before the fence was registered.
 */
export type FenceHold = '' | 'held' | 'staged-unfenced';

export const FENCE_HOLDS: readonly FenceHold[] = ['', 'held', 'staged-unfenced'];

/** The fence of one volume on this node. */
export interface FenceRecord {
  /** The CSI proxy's name for the volume (pvNameForVolume of its id). */
  pv: string;
  /** namespace/name of the secondary ReplicationPair. */
  pair: string;
  hold: FenceHold;
  /** held: the raw block device; '' otherwise. */
  device: string;
  /** The PersistentVolume's name, for messages. */
  volume: string;
}

/** namespace/name, as Kubernetes spells them. */
const PAIR_REF = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\/[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

function isRecord(v: unknown): v is FenceRecord {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return typeof r.pv === 'string' && typeof r.pair === 'string' && FENCE_HOLDS.includes(r.hold as FenceHold) && typeof r.device === 'string' && typeof r.volume === 'string';
}

/**
 * The fences of this node's secondary volumes, one JSON file each under
 * STATE_DIR/fences. Each change is written to a temp file, fsynced, renamed over the old
 * one and the directory fsynced before it is acknowledged: a fence lost to a crash or a
 * power cut would let the CSI proxy stage the volume for a pod to write to after the
 * restart, while its pair goes on writing blocks under it. Changes run one at a time, so
 * a report never undoes a concurrent fence or unfence.
 */
export class FenceStore {
  readonly dir: string;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'fences');
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #file(pv: string): string {
    return join(this.dir, `${validatePvName(pv)}.json`);
  }

  /** Registers the fence (idempotent); a volume fenced for another pair is refused. */
  fence(pv: string, pair: string, volume: string): Promise<FenceRecord> {
    return this.#serial(async () => {
      if (!PAIR_REF.test(pair)) throw new InvalidArgumentError(`pair ${JSON.stringify(pair)}: namespace/name`);
      const existing = await this.get(pv);
      if (existing !== undefined) {
        if (existing.pair !== pair) throw new AlreadyExistsError(`volume ${existing.volume || pv} is already fenced as the secondary of replication pair ${existing.pair}`);
        return existing;
      }
      const r: FenceRecord = { pv, pair, hold: '', device: '', volume: volume || pv };
      await this.#save(r);
      return r;
    });
  }

  /** Removes the fence; missing is fine. */
  unfence(pv: string): Promise<void> {
    return this.#serial(async () => {
      await rm(this.#file(pv), { force: true });
      await syncDir(this.dir).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    });
  }

  /** What the CSI proxy holds of a fenced volume now (NotFoundError: the volume is not fenced). */
  report(pv: string, hold: FenceHold, device: string): Promise<FenceRecord> {
    return this.#serial(async () => {
      if (!FENCE_HOLDS.includes(hold)) throw new InvalidArgumentError(`hold ${JSON.stringify(hold)}: one of "", held, staged-unfenced`);
      if (hold === 'held' && device === '') throw new InvalidArgumentError('a held volume names its device');
      const existing = await this.get(pv);
      if (existing === undefined) throw new NotFoundError(`volume ${pv} is not fenced`);
      const r: FenceRecord = { ...existing, hold, device: hold === 'held' ? device : '' };
      if (r.hold !== existing.hold || r.device !== existing.device) await this.#save(r);
      return r;
    });
  }

  async get(pv: string): Promise<FenceRecord | undefined> {
    return await readJsonState(this.#file(pv), 'fence', (v): v is FenceRecord => isRecord(v) && v.pv === pv);
  }

  async list(): Promise<FenceRecord[]> {
    const out: FenceRecord[] = [];
    for (const pv of await jsonStateNames(this.dir)) {
      const r = await this.get(pv);
      if (r !== undefined) out.push(r);
    }
    return out;
  }

  #save(r: FenceRecord): Promise<void> {
    return writeFileAtomic(this.#file(r.pv), JSON.stringify(r, null, 2) + '\n');
  }
}
