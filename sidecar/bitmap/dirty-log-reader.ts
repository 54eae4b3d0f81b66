import type { FileHandle } from 'node:fs/promises';
import { BITMAP_PAGE_BYTES, BlockBitmap } from './block-bitmap.js';
import { checkHeader, checkPage, DISK_PAGE_BYTES, HEADER_BYTES, layoutForV1, PAGE_HEADER_BYTES, type DirtyLogLayout } from './dirty-log-format.js';

/** A damaged part of a dirty log and what it made dirty. */
export interface DirtyLogDamage {
  region: 'header' | 'intent' | 'fine';
  /** Damaged pages of the region, inclusive, numbered from 0 within it. */
  firstPage: number;
  lastPage: number;
  reason: string;
  /** Blocks counted dirty because of it, inclusive. */
  firstBlock: number;
  lastBlock: number;
  /** One sentence naming the file, the region and the range made dirty. */
  message: string;
}

export type DirtyLogContents =
  | { kind: 'bad-header'; reason: string }
  /** A version 1 log: its dirty set exactly as version 1 recovery computed it. */
  | { kind: 'v1'; dirty: BlockBitmap; intentExtents: number; damage: DirtyLogDamage[] }
  /**
   * A version 2 log. `fine` already counts every block a damaged page might cover
   * (damaged fine pages are flagged changed, so persisting rewrites them); `intent`
   * holds the intent bits of the pages that verified.
   */
  | { kind: 'v2'; fine: BlockBitmap; intent: BlockBitmap; damage: DirtyLogDamage[] };

/**
 * Reads a dirty log whose header is expected to describe `layout`'s geometry. Throws
 * GeometryMismatchError or StateCorruptError for a sound header it must refuse; every
 * other defect becomes either `bad-header` or damage counted dirty.
 */
export async function readDirtyLog(fh: FileHandle, layout: DirtyLogLayout, path: string): Promise<DirtyLogContents> {
  const { buf: header } = await readAt(fh, 0, HEADER_BYTES);
  const h = checkHeader(header, layout, path);
  if (!h.ok) return { kind: 'bad-header', reason: h.reason };
  return h.version === 1 ? readV1(fh, layoutForV1(layout), path) : readV2(fh, layout, path);
}

async function readV2(fh: FileHandle, layout: DirtyLogLayout, path: string): Promise<DirtyLogContents> {
  const damage: DirtyLogDamage[] = [];
  const intentPages = await readPages(fh, layout, 'intent', path, damage);
  const finePages = await readPages(fh, layout, 'fine', path, damage);
  const intent = new BlockBitmap(layout.extents, intentPages.bits);
  const fine = new BlockBitmap(layout.blocks, finePages.bits);
  for (const d of damage) fine.setRange(d.firstBlock, d.lastBlock);
  // Rewritten with a valid checksum when the recovered set is persisted.
  for (const p of finePages.bad) if (p < fine.pageCount) fine.markPageChanged(p);
  return { kind: 'v2', fine, intent, damage };
}

/**
 * Verifies every page of a region and gathers the bits of those that pass. A page that
 * fails contributes no bits but a damage entry (runs of the same defect as one) with
 * every block it might cover, which the caller counts dirty.
 */
async function readPages(
  fh: FileHandle,
  layout: DirtyLogLayout,
  region: 'intent' | 'fine',
  path: string,
  damage: DirtyLogDamage[],
): Promise<{ bits: Buffer; bad: number[] }> {
  const pages = region === 'intent' ? layout.intentPages : layout.finePages;
  const firstPage = region === 'intent' ? layout.intentFirstPage : layout.fineFirstPage;
  const { buf, length } = await readAt(fh, firstPage * DISK_PAGE_BYTES, pages * DISK_PAGE_BYTES);
  const bits = Buffer.alloc(pages * BITMAP_PAGE_BYTES);
  const bad: { page: number; reason: string }[] = [];
  for (let p = 0; p < pages; p++) {
    const page = buf.subarray(p * DISK_PAGE_BYTES, (p + 1) * DISK_PAGE_BYTES);
    const reason = (p + 1) * DISK_PAGE_BYTES > length ? 'missing (the file ends before it)' : checkPage(page, firstPage + p);
    if (reason === null) page.copy(bits, p * BITMAP_PAGE_BYTES, PAGE_HEADER_BYTES);
    else bad.push({ page: p, reason });
  }
  for (let i = 0; i < bad.length; ) {
    let j = i;
    while (j + 1 < bad.length && bad[j + 1]!.page === bad[j]!.page + 1 && bad[j + 1]!.reason === bad[i]!.reason) j++;
    damage.push(describe(layout, region, bad[i]!.page, bad[j]!.page, bad[i]!.reason, path));
    i = j + 1;
  }
  return { bits, bad: bad.map((b) => b.page) };
}

/** Version 1 recovery, unchanged: dirty = fine ∪ every block of every intent extent. */
async function readV1(fh: FileHandle, layout: DirtyLogLayout, path: string): Promise<DirtyLogContents> {
  const damage: DirtyLogDamage[] = [];
  const intentImage = await readAt(fh, layout.intentOffset, layout.intentBytes);
  const fineImage = await readAt(fh, layout.fineOffset, layout.fineBytes);
  // Version 1 refused a truncated log; converting, the missing part counts as all ones.
  if (fineImage.length < layout.fineBytes) {
    const firstBlock = Math.min(layout.blocks - 1, fineImage.length * 8);
    fineImage.buf.fill(0xff, fineImage.length);
    damage.push({
      region: 'fine',
      firstPage: Math.floor(fineImage.length / DISK_PAGE_BYTES),
      lastPage: layout.finePages - 1,
      reason: 'missing (the file ends before it)',
      firstBlock,
      lastBlock: layout.blocks - 1,
      message: `${path}: version 1 log truncated at ${fineImage.length + layout.fineOffset} bytes: blocks ${firstBlock}-${layout.blocks - 1} counted dirty`,
    });
  }
  if (intentImage.length < layout.intentBytes) {
    intentImage.buf.fill(0xff, intentImage.length);
    // Every extent whose intent bit is missing: from the first missing one to the end.
    const firstExtent = Math.min(layout.extents - 1, intentImage.length * 8);
    const firstBlock = firstExtent * (layout.extentSize / layout.blockSize);
    damage.push({
      region: 'intent',
      firstPage: Math.floor(intentImage.length / DISK_PAGE_BYTES),
      lastPage: layout.intentPages - 1,
      reason: 'missing (the file ends before it)',
      firstBlock,
      lastBlock: layout.blocks - 1,
      message: `${path}: version 1 log truncated at ${intentImage.length + layout.intentOffset} bytes: blocks ${firstBlock}-${layout.blocks - 1} counted dirty`,
    });
  }
  const dirty = new BlockBitmap(layout.blocks, fineImage.buf);
  const intent = new BlockBitmap(layout.extents, intentImage.buf);
  const perExtent = layout.extentSize / layout.blockSize;
  for (let e = intent.nextSet(0); e !== -1; e = intent.nextSet(e + 1)) {
    dirty.setRange(e * perExtent, Math.min(layout.blocks, (e + 1) * perExtent) - 1);
  }
  return { kind: 'v1', dirty, intentExtents: intent.count, damage };
}

function describe(layout: DirtyLogLayout, region: 'intent' | 'fine', first: number, last: number, reason: string, path: string): DirtyLogDamage {
  const bitsPerPage = BITMAP_PAGE_BYTES * 8;
  const firstPage = region === 'intent' ? layout.intentFirstPage : layout.fineFirstPage;
  let firstBlock: number;
  let lastBlock: number;
  let covers: string;
  if (region === 'fine') {
    firstBlock = Math.min(first * bitsPerPage, layout.blocks - 1);
    lastBlock = Math.min((last + 1) * bitsPerPage, layout.blocks) - 1;
    covers = `blocks ${firstBlock}-${lastBlock}`;
  } else {
    const perExtent = layout.extentSize / layout.blockSize;
    const firstExtent = Math.min(first * bitsPerPage, layout.extents - 1);
    const lastExtent = Math.min((last + 1) * bitsPerPage, layout.extents) - 1;
    firstBlock = Math.min(firstExtent * perExtent, layout.blocks - 1);
    lastBlock = Math.min((lastExtent + 1) * perExtent, layout.blocks) - 1;
    covers = `extents ${firstExtent}-${lastExtent}, blocks ${firstBlock}-${lastBlock}`;
  }
  const pages = first === last ? `page ${first}` : `pages ${first}-${last}`;
  const bytes = `volume bytes ${firstBlock * layout.blockSize}-${Math.min((lastBlock + 1) * layout.blockSize, layout.volumeBytes) - 1}`;
  return {
    region,
    firstPage: first,
    lastPage: last,
    reason,
    firstBlock,
    lastBlock,
    message: `${path}: ${region} region ${pages} (file offset ${(firstPage + first) * DISK_PAGE_BYTES}) failed its check (${reason}); ${covers} (${bytes}) counted dirty`,
  };
}

/** Up to `length` bytes at `offset`, zero-filled past the end of the file. */
async function readAt(fh: FileHandle, offset: number, length: number): Promise<{ buf: Buffer; length: number }> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return { buf, length: done };
}
