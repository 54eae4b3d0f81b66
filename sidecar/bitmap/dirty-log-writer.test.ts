import { describe, expect, it } from '@jest/globals';
import { BlockBitmap } from './block-bitmap.js';
import { writePagesDurably } from './dirty-log-writer.js';

describe('writePagesDurably', () => {
  it('flags every page it took again when the fdatasync fails, so the retry writes them and syncs again', async () => {
    const bitmap = new BlockBitmap(1 << 16);
    bitmap.set(5);
    bitmap.set(40_000);
    const pages = bitmap.changedPages();
    expect(pages.length).toBe(2);
    const written: number[] = [];
    let failSync = true;
    const fh = {
      write: (buf: Buffer, _at: number, length: number, position: number) => {
        written.push(position);
        return Promise.resolve({ bytesWritten: length, buffer: buf });
      },
      // A writeback error is reported to one fdatasync; the next one returns 0.
      datasync: () => (failSync ? ((failSync = false), Promise.reject(new Error('EIO: i/o error, fdatasync'))) : Promise.resolve()),
    };
    await expect(writePagesDurably(fh as unknown as Parameters<typeof writePagesDurably>[0], bitmap, 3, bitmap.changedPages())).rejects.toThrow('EIO');
    expect(bitmap.changedPages()).toEqual(pages);
    written.length = 0;
    await writePagesDurably(fh as unknown as Parameters<typeof writePagesDurably>[0], bitmap, 3, bitmap.changedPages());
    expect(written).toEqual(pages.map((p) => (3 + p) * 4096));
    expect(bitmap.changedPages()).toEqual([]);
  });
});
