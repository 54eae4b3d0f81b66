import { jest } from '@jest/globals';

/** A wall clock a test can step; see fakeWallClock. */
export interface FakeWallClock {
  /** Steps Date by `deltaMs` (negative: back), as NTP or an operator setting the clock would. */
  step(deltaMs: number): void;
  restore(): void;
}

/**
 * Fakes only `Date`: it keeps running at real speed and can be stepped, while timers and
 * `performance` stay real, so code that measures intervals on the wall clock shows it.
 * Call restore() (afterEach) before the next test.
 */
export function fakeWallClock(): FakeWallClock {
  jest.useFakeTimers({
    advanceTimers: true,
    doNotFake: [
      'hrtime',
      'nextTick',
      'performance',
      'queueMicrotask',
      'requestAnimationFrame',
      'cancelAnimationFrame',
      'requestIdleCallback',
      'cancelIdleCallback',
      'setImmediate',
      'clearImmediate',
      'setInterval',
      'clearInterval',
      'setTimeout',
      'clearTimeout',
      'Temporal',
    ],
  });
  return {
    step: (deltaMs) => jest.setSystemTime(Date.now() + deltaMs),
    restore: () => jest.useRealTimers(),
  };
}
