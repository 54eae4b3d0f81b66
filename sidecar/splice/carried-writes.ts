import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { readJsonState } from '../fs/json-state-file.js';
import { syncDir, writeFileAtomic } from '../fs/write-file-atomic.js';

/** Byte ranges, [offset, length]. */
export type ByteRanges = Array<[offset: number, length: number]>;

/** Beyond this many separate ranges the whole volume is carried: a resync of all of it is safe, a file without bound is not. */
export const MAX_CARRIED_RANGES = 4096;

interface CarriedFile {
  volumeBytes: number;
  ranges: ByteRanges;
}

/**
 * Writes made to a spliced volume while no pair tracked them (staged direct, dm-era
 * recording), kept when the volume is unstaged: the era device is removed with the
 * staging, but a pair attached to a later staging of the volume (the same pair resumed,
 * or a promoted secondary's new primary whose delta claims nobody wrote the volume
 * untracked) must have them out of sync. One file per volume beside its splice record,
 * not `.json` (it is not a record), replaced atomically and durably.
 */
export class CarriedWrites {
  readonly #dir: string;

  constructor(dir: string) {
    this.#dir = dir;
  }

  #file(pv: string): string {
    return join(this.#dir, `${pv}.carried`);
  }

  /** What earlier stagings left, clamped to a volume of `volumeBytes`; none when nothing was. */
  async get(pv: string, volumeBytes: number): Promise<ByteRanges> {
    const f = await readJsonState(this.#file(pv), 'carried writes', isCarriedFile);
    if (f === undefined) return [];
    // A volume grown since: its new end was never written through an older staging, and
    // one shrunk keeps only what is left of it.
    return f.ranges.flatMap(([o, n]): ByteRanges => (o < volumeBytes ? [[o, Math.min(o + n, volumeBytes) - o]] : []));
  }

  /** Adds `ranges` to what is carried; durable when it returns. */
  async add(pv: string, ranges: ByteRanges, volumeBytes: number): Promise<void> {
    const before = await readJsonState(this.#file(pv), 'carried writes', isCarriedFile);
    let merged = union([...(before?.ranges ?? []), ...ranges]);
    const size = Math.max(volumeBytes, before?.volumeBytes ?? 0);
    if (merged.length > MAX_CARRIED_RANGES) merged = [[0, size]];
    if (merged.length === 0 && before === undefined) return;
    await writeFileAtomic(this.#file(pv), JSON.stringify({ volumeBytes: size, ranges: merged } satisfies CarriedFile) + '\n');
  }

  /** Once a pair holds them durably. */
  async drop(pv: string): Promise<void> {
    await rm(this.#file(pv), { force: true });
    await syncDir(this.#dir).catch(() => undefined);
  }
}

/** Sorted, overlapping and touching ranges joined, empty ones gone. */
function union(ranges: ByteRanges): ByteRanges {
  const sorted = ranges.filter(([, n]) => n > 0).sort((a, b) => a[0] - b[0]);
  const out: ByteRanges = [];
  for (const [o, n] of sorted) {
    const last = out.at(-1);
    if (last !== undefined && o <= last[0] + last[1]) last[1] = Math.max(last[1], o + n - last[0]);
    else out.push([o, n]);
  }
  return out;
}

function isCarriedFile(v: unknown): v is CarriedFile {
  const f = v as Partial<CarriedFile> | null;
  return (
    typeof f === 'object' &&
    f !== null &&
    typeof f.volumeBytes === 'number' &&
    Array.isArray(f.ranges) &&
    f.ranges.every((r) => Array.isArray(r) && r.length === 2 && r.every((x) => Number.isSafeInteger(x) && x >= 0))
  );
}
