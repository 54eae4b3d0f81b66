/**
 * A fixed-size in-memory bitmap, one bit per block, with a running count of set bits
 * and a record of which pages of its byte image changed since they were last persisted
 * (so persistence writes only what changed).
 *
 * The byte image is the little-endian view of 32-bit words: bit b is bit (b % 8) of
 * byte (b / 8) on the little-endian machines Node runs on here (x86-64, arm64).
 */

/**
 * Bytes of bits per persisted page: a 4 KiB on-disk page of the dirty log less its
 * 16-byte self-check header (dirty-log-format.ts), so each page is one aligned 4 KiB
 * write. A multiple of 4, so no 32-bit word straddles two pages.
 */
export const BITMAP_PAGE_BYTES = 4096 - 16;
const PAGE_BITS = BITMAP_PAGE_BYTES * 8;

export class BlockBitmap {
  readonly bits: number;
  readonly #bytes: Uint8Array;
  readonly #words: Uint32Array;
  readonly #changedPages: Uint8Array;
  #count = 0;

  constructor(bits: number, image?: Uint8Array) {
    if (!Number.isSafeInteger(bits) || bits < 0) throw new RangeError(`invalid bitmap size ${bits}`);
    this.bits = bits;
    const pageCount = Math.ceil(bits / PAGE_BITS);
    const buffer = new ArrayBuffer(Math.max(pageCount, 1) * BITMAP_PAGE_BYTES);
    this.#bytes = new Uint8Array(buffer);
    this.#words = new Uint32Array(buffer);
    this.#changedPages = new Uint8Array(pageCount);
    if (image !== undefined) {
      this.#bytes.set(image.subarray(0, Math.min(image.length, this.#bytes.length)));
      this.#clearTail();
      this.#count = this.#recount();
    }
  }

  get count(): number {
    return this.#count;
  }

  /** Size in bytes of the byte image: whole pages of BITMAP_PAGE_BYTES. */
  get imageBytes(): number {
    return this.#changedPages.length * BITMAP_PAGE_BYTES;
  }

  get pageCount(): number {
    return this.#changedPages.length;
  }

  test(bit: number): boolean {
    return (this.#words[bit >>> 5]! & (1 << (bit & 31))) !== 0;
  }

  set(bit: number): void {
    const w = bit >>> 5;
    const mask = 1 << (bit & 31);
    const old = this.#words[w]!;
    if ((old & mask) === 0) {
      this.#words[w] = old | mask;
      this.#count++;
      this.#changedPages[Math.floor(bit / PAGE_BITS)] = 1;
    }
  }

  clear(bit: number): void {
    const w = bit >>> 5;
    const mask = 1 << (bit & 31);
    const old = this.#words[w]!;
    if ((old & mask) !== 0) {
      this.#words[w] = old & ~mask;
      this.#count--;
      this.#changedPages[Math.floor(bit / PAGE_BITS)] = 1;
    }
  }

  /** Sets bits [first, last] inclusive. */
  setRange(first: number, last: number): void {
    for (let b = first; b <= last; b++) {
      // Whole words at a time in the middle of long ranges.
      if ((b & 31) === 0 && b + 31 <= last) {
        const w = b >>> 5;
        const old = this.#words[w]!;
        if (old !== 0xffffffff) {
          this.#count += 32 - popcount(old);
          this.#words[w] = 0xffffffff;
          this.#changedPages[Math.floor(b / PAGE_BITS)] = 1;
        }
        b += 31;
        continue;
      }
      this.set(b);
    }
  }

  /** True when any bit in [first, last] is set. */
  anyInRange(first: number, last: number): boolean {
    const b = this.nextSet(first);
    return b !== -1 && b <= last;
  }

  /** Index of the first set bit at or after `from`, or -1. */
  nextSet(from: number): number {
    if (from >= this.bits) return -1;
    let w = from >>> 5;
    let word = this.#words[w]! & (0xffffffff << (from & 31));
    const lastWord = (this.bits - 1) >>> 5;
    while (word === 0) {
      if (++w > lastWord) return -1;
      word = this.#words[w]!;
    }
    const bit = (w << 5) + (31 - Math.clz32(word & -word));
    return bit < this.bits ? bit : -1;
  }

  /** Marks every page changed, so the next persistence writes the whole image. */
  markAllChanged(): void {
    this.#changedPages.fill(1);
  }

  /** Indexes of pages changed since `takeChangedPage` last returned them. */
  changedPages(): number[] {
    const out: number[] = [];
    for (let p = 0; p < this.#changedPages.length; p++) if (this.#changedPages[p] === 1) out.push(p);
    return out;
  }

  /**
   * A copy of page `p` of the byte image, and the page's changed flag cleared. The copy
   * is what gets written, so later updates cannot tear the write.
   */
  takePage(p: number): Buffer {
    this.#changedPages[p] = 0;
    return Buffer.from(this.#bytes.subarray(p * BITMAP_PAGE_BYTES, (p + 1) * BITMAP_PAGE_BYTES));
  }

  /**
   * Copies page `p` of the byte image into `target` at `offset` (where its on-disk page
   * is being assembled) and clears the page's changed flag, as takePage does.
   */
  takePageInto(p: number, target: Uint8Array, offset: number): void {
    this.#changedPages[p] = 0;
    target.set(this.#bytes.subarray(p * BITMAP_PAGE_BYTES, (p + 1) * BITMAP_PAGE_BYTES), offset);
  }

  /** Re-flags page `p` as changed (after a failed write of it). */
  markPageChanged(p: number): void {
    this.#changedPages[p] = 1;
  }

  /** The bits as bytes, ceil(bits / 8) of them (bit b is bit b % 8 of byte b / 8): the wire form. */
  toBytes(): Uint8Array {
    return this.#bytes.slice(0, Math.ceil(this.bits / 8));
  }

  /** Clears every bit. */
  clearAll(): void {
    for (let b = this.nextSet(0); b !== -1; b = this.nextSet(b + 1)) this.clear(b);
  }

  /** An independent copy with the same bits set. */
  clone(): BlockBitmap {
    return new BlockBitmap(this.bits, this.#bytes);
  }

  /** Sets every bit that is set in `other` (same size). */
  union(other: BlockBitmap): void {
    for (let b = other.nextSet(0); b !== -1; b = other.nextSet(b + 1)) this.set(b);
  }

  #clearTail(): void {
    for (let b = this.bits; b < this.#bytes.length * 8 && (b & 7) !== 0; b++) this.#bytes[b >>> 3]! &= ~(1 << (b & 7));
    const firstFullByte = Math.ceil(this.bits / 8);
    this.#bytes.fill(0, firstFullByte);
  }

  #recount(): number {
    let n = 0;
    for (let w = 0; w < this.#words.length; w++) if (this.#words[w] !== 0) n += popcount(this.#words[w]!);
    return n;
  }
}

function popcount(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return ((((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24);
}
