import { describe, expect, it } from '@jest/globals';
import { InvalidArgumentError } from '../../errors.js';
import { Backoff } from './backoff.js';

function delays(b: Backoff, n: number): number[] {
  return Array.from({ length: n }, () => b.next());
}

describe('Backoff', () => {
  it('doubles the ceiling from 200 ms up to 10 s by default', () => {
    const b = new Backoff({ random: () => 0.999999 });
    expect(delays(b, 9)).toEqual([199, 399, 799, 1599, 3199, 6399, 9999, 9999, 9999]);
    expect(b.attempts).toBe(9);
  });

  it('draws each delay uniformly below its ceiling (full jitter)', () => {
    const b = new Backoff({ random: () => 0.5 });
    expect(delays(b, 4)).toEqual([100, 200, 400, 800]);
    expect(delays(new Backoff({ random: () => 0 }), 3)).toEqual([0, 0, 0]);

    // Seeded values spread over [0, ceiling): none at or above it, not all alike.
    let seed = 42;
    const lcg = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const j = new Backoff({ initialMs: 1000, maxMs: 1000, random: lcg });
    const sample = delays(j, 1000);
    expect(Math.min(...sample)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...sample)).toBeLessThan(1000);
    expect(sample.every(Number.isInteger)).toBe(true);
    const mean = sample.reduce((a, x) => a + x, 0) / sample.length;
    expect(mean).toBeGreaterThan(450);
    expect(mean).toBeLessThan(550);
  });

  it('starts over after reset', () => {
    const b = new Backoff({ random: () => 0.999999 });
    delays(b, 5);
    b.reset();
    expect(b.attempts).toBe(0);
    expect(delays(b, 2)).toEqual([199, 399]);
  });

  it('starts over from a lower ceiling when told, never a higher one', () => {
    const b = new Backoff({ random: () => 0.999999 });
    delays(b, 5);
    b.reset(25);
    expect(delays(b, 5)).toEqual([24, 49, 99, 199, 399]);
    b.reset(5000);
    expect(delays(b, 1)).toEqual([199]);
    expect(() => b.reset(0)).toThrow(InvalidArgumentError);
  });

  it('takes its options', () => {
    const b = new Backoff({ initialMs: 50, maxMs: 1000, factor: 3, random: () => 0.999999 });
    expect(delays(b, 5)).toEqual([49, 149, 449, 999, 999]);
    const flat = new Backoff({ initialMs: 300, maxMs: 300, factor: 1, random: () => 0.999999 });
    expect(delays(flat, 3)).toEqual([299, 299, 299]);
  });

  it('stays finite and capped however long the outage', () => {
    const b = new Backoff({ random: () => 0.999999 });
    let last = 0;
    for (let i = 0; i < 100_000; i++) last = b.next();
    expect(last).toBe(9999);
  });

  it('stays below the ceiling when the random source returns 1 or less than 0', () => {
    expect(new Backoff({ random: () => 1 }).next()).toBe(199);
    expect(new Backoff({ random: () => -0.5 }).next()).toBe(0);
  });

  it('refuses bad options', () => {
    expect(() => new Backoff({ initialMs: 0 })).toThrow(InvalidArgumentError);
    expect(() => new Backoff({ initialMs: Number.NaN })).toThrow(InvalidArgumentError);
    expect(() => new Backoff({ initialMs: 500, maxMs: 100 })).toThrow(InvalidArgumentError);
    expect(() => new Backoff({ factor: 0.5 })).toThrow(InvalidArgumentError);
    expect(() => new Backoff({ maxMs: Number.POSITIVE_INFINITY })).toThrow(InvalidArgumentError);
  });
});
