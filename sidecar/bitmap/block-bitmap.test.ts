import { describe, expect, it } from '@jest/globals';
import { BITMAP_PAGE_BYTES, BlockBitmap } from './block-bitmap.js';

describe('BlockBitmap', () => {
  it('sets, clears and counts bits, idempotently', () => {
    const b = new BlockBitmap(100);
    b.set(3);
    b.set(3);
    b.set(99);
    expect(b.count).toBe(2);
    expect(b.test(3)).toBe(true);
    expect(b.test(4)).toBe(false);
    b.clear(3);
    b.clear(3);
    expect(b.count).toBe(1);
    expect(b.test(3)).toBe(false);
  });

  it('setRange covers partial and whole words exactly', () => {
    const b = new BlockBitmap(1000);
    b.setRange(5, 200);
    expect(b.count).toBe(196);
    expect(b.test(4)).toBe(false);
    expect(b.test(5)).toBe(true);
    expect(b.test(200)).toBe(true);
    expect(b.test(201)).toBe(false);
    b.setRange(0, 999);
    expect(b.count).toBe(1000);
  });

  it('nextSet walks set bits in order and stops at the end', () => {
    const b = new BlockBitmap(70_000);
    const bits = [0, 31, 32, 64, 4095, 40_000, 69_999];
    for (const x of bits) b.set(x);
    const seen: number[] = [];
    for (let x = b.nextSet(0); x !== -1; x = b.nextSet(x + 1)) seen.push(x);
    expect(seen).toEqual(bits);
    expect(b.anyInRange(41, 63)).toBe(false);
    expect(b.anyInRange(41, 64)).toBe(true);
  });

  it('tracks changed pages and round-trips through its byte image', () => {
    const b = new BlockBitmap(BITMAP_PAGE_BYTES * 8 * 3);
    expect(b.pageCount).toBe(3);
    b.set(5);
    b.set(BITMAP_PAGE_BYTES * 8 * 2 + 7);
    expect(b.changedPages()).toEqual([0, 2]);
    const pages = b.changedPages().map((p) => [p, b.takePage(p)] as const);
    expect(b.changedPages()).toEqual([]);
    const image = Buffer.alloc(b.imageBytes);
    for (const [p, data] of pages) data.copy(image, p * BITMAP_PAGE_BYTES);
    const restored = new BlockBitmap(b.bits, image);
    expect(restored.count).toBe(2);
    expect(restored.test(5)).toBe(true);
    expect(restored.test(BITMAP_PAGE_BYTES * 8 * 2 + 7)).toBe(true);
  });

  it('ignores stray bits past the end of an image', () => {
    const restored = new BlockBitmap(10, Buffer.from([0xff, 0xff, 0xff]));
    expect(restored.count).toBe(10);
  });
});
