import { describe, expect, it } from '@jest/globals';
import { capacityFits, DEFAULT_CAPACITY, labCapacity } from './lab-capacity.js';

const range = (requiredBytes: number, limitBytes: number) => ({ requiredBytes, limitBytes });

describe('labCapacity', () => {
  it('gives the default without a range, rounded sizes within one', () => {
    expect(labCapacity(null)).toBe(DEFAULT_CAPACITY);
    expect(labCapacity(range(0, 0))).toBe(DEFAULT_CAPACITY);
    expect(labCapacity(range(1, 0))).toBe(4096);
    expect(labCapacity(range(64 << 20, 64 << 20))).toBe(64 << 20);
    expect(labCapacity(range(0, 1 << 20))).toBe(1 << 20);
    expect(labCapacity(range(5000, 10000))).toBe(8192);
  });

  it('refuses ranges it cannot meet', () => {
    expect(() => labCapacity(range(2, 1))).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => labCapacity(range(5000, 6000))).toThrow(expect.objectContaining({ code: 'OUT_OF_RANGE' }));
    expect(() => labCapacity(range(-1, 0))).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});

describe('capacityFits', () => {
  it('is the CreateVolume idempotency rule', () => {
    expect(capacityFits(8192, range(5000, 10000))).toBe(true);
    expect(capacityFits(8192, range(0, 0))).toBe(true);
    expect(capacityFits(8192, range(10000, 0))).toBe(false);
    expect(capacityFits(8192, range(0, 4096))).toBe(false);
  });
});
