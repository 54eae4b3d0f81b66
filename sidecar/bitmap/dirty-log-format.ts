import { crc32c } from '@node-rs/crc32';
import { GeometryMismatchError, StateCorruptError } from '../errors.js';
import { BITMAP_PAGE_BYTES } from './block-bitmap.js';

/**
 * On-disk layout of a pair's dirty log (state-dir/pairs/NAME/dirty.log):
 *
 *   [0, 4096)          header (magic, geometry, crc32c)
 *   [4096, fineOff)    intent region: one bit per extent (default 4 MiB) that may hold
 *                      writes not recorded in the fine region
 *   [fineOff, end)     fine region: one bit per block, written lazily
 *
 * Recovery rule: dirty = fine ∪ (every block of every extent whose intent bit is set).
 */
export const HEADER_BYTES = 4096;
const MAGIC = 'BMDIRTY1';
const VERSION = 1;

export interface DirtyLogGeometry {
  volumeBytes: number;
  blockSize: number;
  extentSize: number;
}

export interface DirtyLogLayout extends DirtyLogGeometry {
  blocks: number;
  extents: number;
  intentOffset: number;
  intentBytes: number;
  fineOffset: number;
  fineBytes: number;
  fileBytes: number;
}

export function layoutFor(g: DirtyLogGeometry): DirtyLogLayout {
  const blocks = Math.ceil(g.volumeBytes / g.blockSize);
  const extents = Math.ceil(g.volumeBytes / g.extentSize);
  const intentBytes = pages(extents) * BITMAP_PAGE_BYTES;
  const fineBytes = pages(blocks) * BITMAP_PAGE_BYTES;
  const intentOffset = HEADER_BYTES;
  const fineOffset = intentOffset + intentBytes;
  return { ...g, blocks, extents, intentOffset, intentBytes, fineOffset, fineBytes, fileBytes: fineOffset + fineBytes };
}

function pages(bits: number): number {
  return Math.max(1, Math.ceil(bits / (BITMAP_PAGE_BYTES * 8)));
}

export function encodeHeader(g: DirtyLogGeometry): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  h.write(MAGIC, 0, 'latin1');
  h.writeUInt32LE(VERSION, 8);
  h.writeUInt32LE(g.blockSize, 12);
  h.writeUInt32LE(g.extentSize, 16);
  h.writeBigUInt64LE(BigInt(g.volumeBytes), 20);
  h.writeUInt32LE(crc32c(h.subarray(0, 28)), 28);
  return h;
}

/** Parses a header and checks it against the geometry the pair expects. */
export function decodeHeader(h: Buffer, expected: DirtyLogGeometry, path: string): void {
  if (h.length < 32 || h.toString('latin1', 0, 8) !== MAGIC) throw new StateCorruptError(`${path}: not a blockmirror dirty log`);
  if (h.readUInt32LE(28) !== crc32c(h.subarray(0, 28))) throw new StateCorruptError(`${path}: header checksum mismatch`);
  const version = h.readUInt32LE(8);
  if (version !== VERSION) throw new StateCorruptError(`${path}: unsupported dirty log version ${version}`);
  const found: DirtyLogGeometry = {
    blockSize: h.readUInt32LE(12),
    extentSize: h.readUInt32LE(16),
    volumeBytes: Number(h.readBigUInt64LE(20)),
  };
  for (const k of ['volumeBytes', 'blockSize', 'extentSize'] as const) {
    if (found[k] !== expected[k]) {
      throw new GeometryMismatchError(`${path}: ${k} is ${found[k]} on disk but ${expected[k]} is configured`);
    }
  }
}
