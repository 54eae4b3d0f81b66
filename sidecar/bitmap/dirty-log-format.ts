import { crc32c } from '@node-rs/crc32';
import { GeometryMismatchError, StateCorruptError } from '../errors.js';
import { BITMAP_PAGE_BYTES, type BlockBitmap } from './block-bitmap.js';

/**
 * On-disk layout of a pair's dirty log (state-dir/pairs/NAME/dirty.log), version 2.
 * Everything is a whole 4 KiB page at a 4 KiB-aligned offset, so every page is one
 * aligned write:
 *
 *   page 0            header: magic "BMDIRTY1", u32 version (2), u32 block size,
 *                     u32 extent size, u64 volume bytes, u32 crc32c of bytes [0, 28);
 *                     the rest zero
 *   pages 1..I        intent region: one bit per extent (default 4 MiB) that may hold
 *                     writes not recorded in the fine region
 *   pages I+1..I+F    fine region: one bit per block, written lazily
 *
 * Every intent and fine page checks itself (all little endian):
 *
 *   [0, 4)      crc32c of bytes [4, 4096)
 *   [4, 8)      page magic "BMPG"
 *   [8, 16)     u64 the page's own number in the file (the header is page 0)
 *   [16, 4096)  4080 bytes of bits (BITMAP_PAGE_BYTES): 32640 blocks or extents
 *
 * The crc catches bit rot and a write torn between old and new sectors; the page
 * number under the crc catches a page written to the wrong place (a misdirected write
 * fails where it landed); the magic makes a zeroed page (a lost or never-written
 * block) fail even where the crc of its zeros happened to be 0. Every page gets a
 * valid checksum when the log is created, so a page that fails was damaged.
 *
 * Recovery rule: dirty = fine ∪ (every block of every extent whose intent bit is set),
 * where a page that fails its check counts as all ones for what it covers — a fine
 * page for its 32640 blocks, an intent page for every block of its 32640 extents.
 * Damage can only widen the resync, never narrow it.
 *
 * Torn writes. A power cut may tear a page write at any 512-byte sector. Every page
 * on disk is then either old (verifies), new (verifies) or a mix (fails: all ones),
 * and each of the three is safe: a new intent page is written and fdatasync'd before
 * the data writes it covers are issued, so while its write is in flight the old page
 * still describes everything on the volume; a fine page is written and fdatasync'd
 * before any intent it relieves is cleared, so while it is in flight the intents still
 * cover what the old page lacks. A disk that acknowledges a flush and then loses the
 * write (an old page that verifies where a new one was promised) is beyond what
 * checksums can see.
 *
 * The header is written once, with the whole file, through a temp file, fsync and
 * rename, and never rewritten: no crash of ours can tear it. A header that fails its
 * magic or checksum therefore means damage from outside, or a file that was never a
 * log. The sidecar does not refuse it: the geometry is known from configuration, and
 * the only safe thing an operator could do by hand is what it does itself — keep the
 * damaged file aside (dirty.log.corrupt-<ms>), write a new log with every block dirty
 * (a full resync) and warn. Refusing would keep the pair down until then, and the
 * obvious manual fix, deleting the file, would create an empty log and forget every
 * dirty bit. (Truncating it to zero length is therefore the documented way to force
 * that rebuild by hand.) A header that verifies but names another geometry, or a version this
 * sidecar does not know, is refused: it is an intact log of something else (another
 * volume size, a newer sidecar), and overwriting it could destroy what that needs.
 *
 * Version 1 (before page checksums) had the same header with version 1 and regions of
 * bare 4096-byte bitmap pages. It is read, its dirty set computed exactly as version 1
 * recovery did, and replaced atomically by a version 2 log holding that set.
 */
export const DISK_PAGE_BYTES = 4096;
export const HEADER_BYTES = DISK_PAGE_BYTES;
/** Self-check header at the start of every intent and fine page. */
export const PAGE_HEADER_BYTES = DISK_PAGE_BYTES - BITMAP_PAGE_BYTES;
export const DIRTY_LOG_VERSION = 2;
const MAGIC = 'BMDIRTY1';
const PAGE_MAGIC = 0x47504d42; // "BMPG" read as u32 LE
const BITS_PER_PAGE = BITMAP_PAGE_BYTES * 8;
const V1_PAGE_BYTES = 4096;

export interface DirtyLogGeometry {
  volumeBytes: number;
  blockSize: number;
  extentSize: number;
}

export interface DirtyLogLayout extends DirtyLogGeometry {
  blocks: number;
  extents: number;
  /** File page number of the first intent page (each region's pages are numbered on). */
  intentFirstPage: number;
  intentPages: number;
  intentOffset: number;
  intentBytes: number;
  fineFirstPage: number;
  finePages: number;
  fineOffset: number;
  fineBytes: number;
  fileBytes: number;
}

/** Version 2: every region page is 4096 bytes on disk with 4080 bytes of bits. */
export function layoutFor(g: DirtyLogGeometry): DirtyLogLayout {
  return layoutWith(g, BITS_PER_PAGE);
}

/** Version 1: bare 4096-byte pages of bits. Read only, to convert. */
export function layoutForV1(g: DirtyLogGeometry): DirtyLogLayout {
  return layoutWith(g, V1_PAGE_BYTES * 8);
}

function layoutWith(g: DirtyLogGeometry, bitsPerPage: number): DirtyLogLayout {
  const blocks = Math.ceil(g.volumeBytes / g.blockSize);
  const extents = Math.ceil(g.volumeBytes / g.extentSize);
  const intentPages = Math.max(1, Math.ceil(extents / bitsPerPage));
  const finePages = Math.max(1, Math.ceil(blocks / bitsPerPage));
  const intentFirstPage = HEADER_BYTES / DISK_PAGE_BYTES;
  const fineFirstPage = intentFirstPage + intentPages;
  return {
    ...g,
    blocks,
    extents,
    intentFirstPage,
    intentPages,
    intentOffset: intentFirstPage * DISK_PAGE_BYTES,
    intentBytes: intentPages * DISK_PAGE_BYTES,
    fineFirstPage,
    finePages,
    fineOffset: fineFirstPage * DISK_PAGE_BYTES,
    fineBytes: finePages * DISK_PAGE_BYTES,
    fileBytes: (fineFirstPage + finePages) * DISK_PAGE_BYTES,
  };
}

export function encodeHeader(g: DirtyLogGeometry, version = DIRTY_LOG_VERSION): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  h.write(MAGIC, 0, 'latin1');
  h.writeUInt32LE(version, 8);
  h.writeUInt32LE(g.blockSize, 12);
  h.writeUInt32LE(g.extentSize, 16);
  h.writeBigUInt64LE(BigInt(g.volumeBytes), 20);
  h.writeUInt32LE(crc32c(h.subarray(0, 28)), 28);
  return h;
}

export type HeaderCheck = { ok: true; version: 1 | 2 } | { ok: false; reason: string };

/** The geometry a header records, or why it cannot be trusted (no magic, a bad checksum). */
export function sealedHeader(h: Buffer): DirtyLogGeometry | string {
  if (h.length < 32 || h.toString('latin1', 0, 8) !== MAGIC) return 'no dirty log magic';
  if (h.readUInt32LE(28) !== crc32c(h.subarray(0, 28))) return 'header checksum mismatch';
  return { blockSize: h.readUInt32LE(12), extentSize: h.readUInt32LE(16), volumeBytes: Number(h.readBigUInt64LE(20)) };
}

/**
 * Checks a header against the geometry the pair expects. A header that fails its own
 * check is reported (the caller rebuilds the log); a sound one of another geometry or
 * an unknown version is refused.
 */
export function checkHeader(h: Buffer, expected: DirtyLogGeometry, path: string): HeaderCheck {
  const sealed = sealedHeader(h);
  if (typeof sealed === 'string') return { ok: false, reason: sealed };
  const version = h.readUInt32LE(8);
  if (version !== 1 && version !== 2) {
    throw new StateCorruptError(
      `${path}: dirty log version ${version} is not one this sidecar reads (1, 2); run a blockmirror release that reads it, or truncate the file to zero length to have it rebuilt with every block dirty (a full resync of the pair)`,
    );
  }
  const found = sealed;
  for (const k of ['volumeBytes', 'blockSize', 'extentSize'] as const) {
    if (found[k] !== expected[k]) {
      throw new GeometryMismatchError(
        `${path}: ${k} is ${found[k]} on disk but ${expected[k]} is configured; if that change is meant, truncate the file to zero length to have it rebuilt with every block dirty (a full resync of the pair)`,
      );
    }
  }
  return { ok: true, version };
}

/**
 * Page `p` of `bitmap` as its 4 KiB on-disk page at file page `filePage`, sealed. Takes
 * the page (clears its changed flag), so later updates cannot tear what is written.
 */
export function encodeBitmapPage(bitmap: BlockBitmap, p: number, filePage: number): Buffer {
  const page = Buffer.allocUnsafe(DISK_PAGE_BYTES);
  if (p < bitmap.pageCount) bitmap.takePageInto(p, page, PAGE_HEADER_BYTES);
  else page.fill(0, PAGE_HEADER_BYTES);
  sealPage(page, filePage);
  return page;
}

/** Writes the self-check header of a page whose bits are in place at [16, 4096). */
export function sealPage(page: Buffer, filePage: number): void {
  page.writeUInt32LE(PAGE_MAGIC, 4);
  page.writeUInt32LE(filePage >>> 0, 8);
  page.writeUInt32LE(Math.floor(filePage / 2 ** 32), 12);
  page.writeUInt32LE(crc32c(page.subarray(4, DISK_PAGE_BYTES)), 0);
}

/** Why the page at file page `filePage` fails its check, or null when it verifies. */
export function checkPage(page: Buffer, filePage: number): string | null {
  if (page.length < DISK_PAGE_BYTES) return 'missing (the file ends before it)';
  if (page.readUInt32LE(4) !== PAGE_MAGIC) return 'no page magic (zeroed or overwritten)';
  if (page.readUInt32LE(0) !== crc32c(page.subarray(4, DISK_PAGE_BYTES))) return 'checksum mismatch';
  const found = page.readUInt32LE(8) + page.readUInt32LE(12) * 2 ** 32;
  if (found !== filePage) return `holds page ${found} of the file (a misdirected write)`;
  return null;
}
