import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { FailedPreconditionError, VolumeIoError } from '../errors.js';
import { syncDir } from '../fs/write-file-atomic.js';
import { BlockBitmap } from './block-bitmap.js';
import { DISK_PAGE_BYTES, encodeBitmapPage, encodeHeader, type DirtyLogLayout } from './dirty-log-format.js';

/** Pages per write while a whole log is laid down (1 MiB). */
const PAGES_PER_WRITE = 256;

/**
 * Writes a complete version 2 log at `path` whose fine region holds `fine` (its pages
 * taken) and whose intents are clear, and returns it open for reading and writing.
 *
 * Atomic, so a power cut leaves the old file or the whole new one, never a mix or a
 * half-written log: the new log goes to a temp file and is fsync'd (every page on disk
 * with its checksum) before the rename makes it the log, and the directory is fsync'd
 * before anything relies on the rename (a write recorded in a log whose name a power
 * cut can undo would be recorded nowhere). Every page is written, none left a hole: a
 * zeroed page must read as damage, and recording a write later never needs room.
 */
export async function writeDirtyLogFile(path: string, layout: DirtyLogLayout, fine: BlockBitmap): Promise<FileHandle> {
  const tmp = `${path}.tmp`;
  // 'w+' truncates a temp file left by a crash during an earlier attempt.
  const fh = await open(tmp, 'w+');
  try {
    await writeFully(fh, encodeHeader(layout), 0);
    await writeRegion(fh, new BlockBitmap(layout.extents), layout.intentFirstPage, layout.intentPages);
    await writeRegion(fh, fine, layout.fineFirstPage, layout.finePages);
    await fh.sync();
    await rename(tmp, path);
    await syncDir(dirname(path));
    return fh;
  } catch (err) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      throw new FailedPreconditionError(
        `${path}: no room for the dirty log (${layout.fileBytes} bytes, all written now so that recording a write never needs room later): free space on the state filesystem`,
      );
    }
    throw err;
  }
}

async function writeRegion(fh: FileHandle, bitmap: BlockBitmap, firstPage: number, pages: number): Promise<void> {
  for (let p = 0; p < pages; p += PAGES_PER_WRITE) {
    const n = Math.min(PAGES_PER_WRITE, pages - p);
    const chunk = Buffer.concat(Array.from({ length: n }, (_, i) => encodeBitmapPage(bitmap, p + i, firstPage + p + i)));
    await writeFully(fh, chunk, (firstPage + p) * DISK_PAGE_BYTES);
  }
}

/**
 * pwrite of all of `buf` at `offset`. A short write (a filling disk) is continued
 * rather than taken for the whole: the caller's next step treats the page as durable.
 */
export async function writeFully(fh: Pick<FileHandle, 'write'>, buf: Buffer, offset: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, offset + done);
    if (bytesWritten === 0) throw new VolumeIoError(`dirty log: no progress writing at offset ${offset + done}`, { errno: 'EIO' });
    done += bytesWritten;
  }
}

/**
 * Writes `pages` of `bitmap` sealed at their place in the region starting at file page
 * `firstPage`, then fdatasync. Taking a page clears its changed flag, so on any failure
 * (the fdatasync's too) every page is flagged again: Linux reports a writeback error to
 * one fdatasync only, and a retry that found nothing to write would sync nothing, return
 * 0, and let intents be retired over fine bits that never reached the disk.
 */
export async function writePagesDurably(fh: Pick<FileHandle, 'write' | 'datasync'>, bitmap: BlockBitmap, firstPage: number, pages: number[]): Promise<void> {
  try {
    for (const p of pages) await writeFully(fh, encodeBitmapPage(bitmap, p, firstPage + p), (firstPage + p) * DISK_PAGE_BYTES);
    await fh.datasync();
  } catch (err) {
    for (const p of pages) bitmap.markPageChanged(p);
    throw err;
  }
}
