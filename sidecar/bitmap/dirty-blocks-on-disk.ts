import { open } from 'node:fs/promises';
import { DirtyTracker } from './dirty-tracker.js';
import { sealedHeader } from './dirty-log-format.js';

/**
 * How many blocks the dirty log at `path` holds, read without its pair's volume (the
 * geometry is the log's own header's): for a pair that is not running, whose volume may
 * be gone. Undefined when the log cannot tell (missing, a header that is not sound): what
 * it held is unknown. Opening it may write it (a recovery), as the pair's own start would.
 */
export async function dirtyBlocksOnDisk(path: string): Promise<number | undefined> {
  const head = Buffer.alloc(32);
  try {
    const fh = await open(path, 'r');
    try {
      await fh.read(head, 0, head.length, 0);
    } finally {
      await fh.close();
    }
  } catch {
    return undefined;
  }
  const g = sealedHeader(head);
  if (typeof g === 'string') return undefined;
  try {
    const t = await DirtyTracker.open({ path, ...g, sweepIntervalMs: 0 });
    try {
      return t.dirtyBlocks;
    } finally {
      await t.close();
    }
  } catch {
    return undefined;
  }
}
