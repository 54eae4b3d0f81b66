import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Replaces `file` with `text` so that a crash leaves either the old or the new content:
 * write a temp file and fsync it (the data is on disk before the name points at it),
 * rename over the old one, fsync the directory (the rename itself survives a power cut).
 */
export async function writeFileAtomic(file: string, text: string, opts: { mode?: number } = {}): Promise<void> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true });
  const tmp = `${file}.tmp`;
  // A stale temp file keeps its old mode: start afresh so `mode` holds.
  if (opts.mode !== undefined) await rm(tmp, { force: true });
  const fh = await open(tmp, 'w', opts.mode);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } catch (err) {
    // A full disk: do not leave the partial temp file holding what little room is left.
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await fh.close();
  await rename(tmp, file);
  await syncDir(dir);
}

/** fsync of a directory: makes creations, renames and removals in it durable. */
export async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
