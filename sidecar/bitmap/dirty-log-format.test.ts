import { describe, expect, it } from '@jest/globals';
import { BITMAP_PAGE_BYTES, BlockBitmap } from './block-bitmap.js';
import { checkHeader, checkPage, DISK_PAGE_BYTES, encodeBitmapPage, encodeHeader, layoutFor, PAGE_HEADER_BYTES } from './dirty-log-format.js';

const MiB = 1 << 20;
const SECTOR = 512;
const geometry = { volumeBytes: 2048 * MiB, blockSize: 64 * 1024, extentSize: 4 * MiB };

function pageWith(bits: number[], filePage: number): Buffer {
  const b = new BlockBitmap(BITMAP_PAGE_BYTES * 8);
  for (const x of bits) b.set(x);
  return encodeBitmapPage(b, 0, filePage);
}

describe('dirty log format, version 2', () => {
  it('lays every page out as an aligned 4 KiB page with 4080 bytes of bits', () => {
    expect(PAGE_HEADER_BYTES + BITMAP_PAGE_BYTES).toBe(DISK_PAGE_BYTES);
    const l = layoutFor(geometry);
    // 32768 blocks need two pages of 32640 bits; 512 extents one.
    expect(l.blocks).toBe(32768);
    expect(l.finePages).toBe(2);
    expect(l.intentPages).toBe(1);
    expect(l.intentOffset).toBe(4096);
    expect(l.fineOffset).toBe(8192);
    expect(l.fileBytes).toBe(4 * 4096);
    for (const off of [l.intentOffset, l.fineOffset, l.fileBytes]) expect(off % DISK_PAGE_BYTES).toBe(0);
  });

  it('a sealed page verifies where it belongs and carries its bits after the header', () => {
    const page = pageWith([0, 7, 32639], 5);
    expect(page.length).toBe(DISK_PAGE_BYTES);
    expect(checkPage(page, 5)).toBeNull();
    expect(page[PAGE_HEADER_BYTES]).toBe(0x81);
    expect(page[DISK_PAGE_BYTES - 1]).toBe(0x80);
  });

  it('any single flipped bit anywhere in a page fails its check', () => {
    const page = pageWith([3, 1000, 20000], 2);
    for (let byte = 0; byte < DISK_PAGE_BYTES; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        page[byte]! ^= 1 << bit;
        // (No per-case expect: 32768 of them would swamp jest; count instead.)
        if (checkPage(page, 2) === null) throw new Error(`flip of bit ${bit} of byte ${byte} went unnoticed`);
        page[byte]! ^= 1 << bit;
      }
    }
    expect(checkPage(page, 2)).toBeNull();
  });

  it('a zeroed page, a page from another place and a short page fail', () => {
    expect(checkPage(Buffer.alloc(DISK_PAGE_BYTES), 1)).toMatch(/no page magic/);
    expect(checkPage(pageWith([1], 3), 4)).toMatch(/holds page 3 .*misdirected/);
    expect(checkPage(pageWith([1], 3).subarray(0, 4000), 3)).toMatch(/missing/);
    // A zeroed sector inside the bits: the crc.
    const p = pageWith([1, 30000], 1);
    p.fill(0, 7 * SECTOR, 8 * SECTOR);
    expect(checkPage(p, 1)).toMatch(/checksum/);
  });

  it('a page write torn at sector boundaries verifies only as the old or the new page', () => {
    const filePage = 3;
    const before = pageWith([10, 4000, 30000], filePage);
    const after = pageWith([10, 4001, 30005], filePage);
    const sectors = DISK_PAGE_BYTES / SECTOR;
    let failed = 0;
    // Every way the 8 sectors can land: each old or new.
    for (let mask = 0; mask < 1 << sectors; mask++) {
      const torn = Buffer.alloc(DISK_PAGE_BYTES);
      for (let s = 0; s < sectors; s++) ((mask >> s) & 1 ? after : before).copy(torn, s * SECTOR, s * SECTOR, (s + 1) * SECTOR);
      const verifies = checkPage(torn, filePage) === null;
      expect(verifies).toBe(torn.equals(before) || torn.equals(after));
      if (!verifies) failed++;
    }
    // The pages differ in sectors 0 (the crc), 1 (blocks 4000/4001) and 7 (30000/30005):
    // of the 256 mixes, 32 equal the old page, 32 the new one, and the rest fail.
    expect(failed).toBe(192);
  });

  it('a header verifies, refuses another geometry or version, and reports damage', () => {
    const path = '/state/pairs/p1/dirty.log';
    expect(checkHeader(encodeHeader(geometry), geometry, path)).toEqual({ ok: true, version: 2 });
    expect(checkHeader(encodeHeader(geometry, 1), geometry, path)).toEqual({ ok: true, version: 1 });
    expect(() => checkHeader(encodeHeader({ ...geometry, blockSize: 4096 }), geometry, path)).toThrow(
      expect.objectContaining({ code: 'GEOMETRY_MISMATCH', message: expect.stringMatching(/p1\/dirty.log: blockSize is 4096 on disk but 65536 is configured; .*truncate/) }),
    );
    expect(() => checkHeader(encodeHeader(geometry, 3), geometry, path)).toThrow(
      expect.objectContaining({ code: 'STATE_CORRUPT', message: expect.stringMatching(/p1\/dirty.log: dirty log version 3 .*truncate the file to zero length/) }),
    );
    const flipped = encodeHeader(geometry);
    flipped[13]! ^= 0x10;
    expect(checkHeader(flipped, geometry, path)).toEqual({ ok: false, reason: 'header checksum mismatch' });
    expect(checkHeader(Buffer.alloc(4096), geometry, path)).toEqual({ ok: false, reason: 'no dirty log magic' });
    expect(checkHeader(Buffer.alloc(0), geometry, path)).toEqual({ ok: false, reason: 'no dirty log magic' });
  });
});
