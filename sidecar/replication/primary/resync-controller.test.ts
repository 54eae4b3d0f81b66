import { describe, expect, it, jest } from '@jest/globals';
import { fakeWallClock } from '../../../test/helpers/fake-wall-clock.js';
import { waitFor } from '../../../test/helpers/wait-for.js';
import { InvalidArgumentError } from '../../errors.js';
import { DEFAULT_MAX_RESYNC_WINDOW, DEFAULT_MIN_RESYNC_WINDOW, ResyncController, type ResyncControllerOptions } from './resync-controller.js';

const KiB = 1024;
const MiB = 1024 * KiB;

function clocked(options: ResyncControllerOptions = {}): { c: ResyncController; at: (ms: number) => void } {
  let t = 0;
  const c = new ResyncController({ now: () => t, ...options });
  return { c, at: (ms) => void (t = ms) };
}

/**
 * A sender that keeps the controller's window full over a bottleneck link: a FIFO that
 * drains `bytesPerMs`, then `baseRttMs` until the acknowledgement is back.
 */
function simulateLink(c: ResyncController, o: { bytesPerMs: number; baseRttMs: number; frameBytes: number; durationMs: number; measureFromMs: number }) {
  let t = 0;
  let linkFreeAt = 0;
  const pending: { sentAt: number; ackAt: number; bytes: number }[] = [];
  let acked = 0;
  let maxInFlight = 0;
  let inFlightArea = 0;
  let lastT = 0;
  while (t < o.durationMs) {
    while (c.canSend(o.frameBytes, t)) {
      c.onSent(o.frameBytes, t);
      linkFreeAt = Math.max(linkFreeAt, t) + o.frameBytes / o.bytesPerMs;
      pending.push({ sentAt: t, ackAt: linkFreeAt + o.baseRttMs, bytes: o.frameBytes });
    }
    if (t >= o.measureFromMs) maxInFlight = Math.max(maxInFlight, c.inFlightBytes);
    const next = pending.shift()!;
    if (t >= o.measureFromMs) inFlightArea += c.inFlightBytes * (next.ackAt - t);
    lastT = t;
    t = next.ackAt;
    c.onAcked(next.bytes, t - next.sentAt, t);
    if (t >= o.measureFromMs) acked += next.bytes;
  }
  const span = t - o.measureFromMs;
  return { throughput: acked / span, maxInFlight, meanInFlight: inFlightArea / (lastT - o.measureFromMs), endMs: t };
}

describe('ResyncController window', () => {
  it('starts at the minimum, and always lets one send go when nothing is in flight', () => {
    const { c } = clocked();
    expect(c.window()).toBe(DEFAULT_MIN_RESYNC_WINDOW);
    expect(c.canSend(4 * MiB)).toBe(true);
    c.onSent(4 * MiB);
    expect(c.inFlightBytes).toBe(4 * MiB);
    expect(c.canSend(1)).toBe(false);
  });

  it('is twice the measured bandwidth times the RTT', () => {
    const { c, at } = clocked();
    c.onSent(4 * MiB);
    at(50);
    c.onAcked(4 * MiB, 50);
    expect(c.inFlightBytes).toBe(0);
    expect(c.bandwidthBytesPerSecond()).toBeCloseTo(80 * MiB, 3);
    expect(c.window()).toBe(8 * MiB);
    expect(c.canSend(8 * MiB)).toBe(true);
    c.onSent(6 * MiB);
    expect(c.canSend(2 * MiB)).toBe(true);
    expect(c.canSend(2 * MiB + 1)).toBe(false);
  });

  it('averages acknowledged bytes over the sliding window', () => {
    const { c, at } = clocked({ bandwidthWindowMs: 1000 });
    // 1 MiB acknowledged every 10 ms with a 10 ms RTT: 100 MiB/s, BDP 1 MiB.
    for (let t = 0; t <= 3000; t += 10) {
      at(t);
      if (t > 0) c.onAcked(1 * MiB, 10);
      c.onSent(1 * MiB);
    }
    expect(c.bandwidthBytesPerSecond()).toBeCloseTo(100 * MiB, -3);
    expect(c.window()).toBe(2 * MiB);
    // Half the rate for a whole window: the old acknowledgements have left it.
    for (let t = 3020; t <= 5000; t += 20) {
      at(t);
      c.onAcked(1 * MiB, 10);
      c.onSent(1 * MiB);
    }
    expect(c.bandwidthBytesPerSecond()).toBeCloseTo(50 * MiB, -3);
    expect(c.window()).toBe(1 * MiB);
  });

  it('falls back to the minimum after an idle period, and measures afresh', () => {
    const { c, at } = clocked({ bandwidthWindowMs: 1000 });
    c.onSent(16 * MiB);
    at(20);
    c.onAcked(16 * MiB, 20);
    expect(c.window()).toBe(32 * MiB);
    at(1021);
    expect(c.bandwidthBytesPerSecond()).toBe(0);
    expect(c.window()).toBe(DEFAULT_MIN_RESYNC_WINDOW);
    // The new measurement starts at the first send, not at the old one.
    at(5000);
    c.onSent(1 * MiB);
    at(5020);
    c.onAcked(1 * MiB, 20);
    expect(c.bandwidthBytesPerSecond()).toBeCloseTo(50 * MiB, 3);
    expect(c.window()).toBe(2 * MiB);
  });

  it('stays within its bounds', () => {
    const { c, at } = clocked();
    c.onSent(64 * MiB);
    at(10);
    c.onAcked(64 * MiB, 10);
    expect(c.window()).toBe(DEFAULT_MAX_RESYNC_WINDOW);

    const small = clocked({ minWindowBytes: 64 * KiB, maxWindowBytes: 1 * MiB });
    small.c.onSent(64 * MiB);
    small.at(10);
    small.c.onAcked(64 * MiB, 10);
    expect(small.c.window()).toBe(1 * MiB);
    small.c.reset();
    small.c.onSent(100);
    small.at(1000);
    small.c.onAcked(100, 990);
    expect(small.c.window()).toBe(64 * KiB);
  });

  it('keeps a smoothed RTT (EWMA, gain 1/8) and a minimum RTT', () => {
    const { c, at } = clocked();
    expect(c.smoothedRttMs).toBeUndefined();
    expect(c.minRttMs).toBeUndefined();
    c.onSent(3 * MiB);
    at(100);
    c.onAcked(1 * MiB, 100);
    at(200);
    c.onAcked(1 * MiB, 200);
    expect(c.smoothedRttMs).toBe(112.5);
    at(210);
    c.onAcked(1 * MiB, 10);
    expect(c.smoothedRttMs).toBeCloseTo(112.5 - 102.5 / 8, 9);
    expect(c.minRttMs).toBe(10);
  });

  it('sizes the window from the minimum RTT, not from RTTs inflated by its own queue', () => {
    const { c, at } = clocked();
    c.onSent(1 * MiB);
    at(10);
    c.onAcked(1 * MiB, 10);
    // Then the queue builds: later RTTs are longer, the bandwidth stays 100 MiB/s.
    for (let t = 20; t <= 1000; t += 10) {
      at(t);
      c.onSent(1 * MiB);
      c.onAcked(1 * MiB, 40);
    }
    expect(c.smoothedRttMs).toBeGreaterThan(39);
    expect(c.minRttMs).toBe(10);
    expect(c.window()).toBe(2 * MiB);
  });

  it('measures the minimum RTT afresh once it has not been seen for a while', () => {
    const { c, at } = clocked({ minRttWindowMs: 1000 });
    c.onSent(1 * MiB);
    at(10);
    c.onAcked(1 * MiB, 10);
    // The path got longer: 30 ms from now on.
    at(500);
    c.onSent(2 * MiB);
    at(530);
    c.onAcked(2 * MiB, 30);
    expect(c.minRttMs).toBe(10);
    expect(c.probingRtt).toBe(false);
    at(1000);
    c.onSent(4 * MiB);
    at(1011);
    // Probing: the window closes until nothing is in flight...
    expect(c.window()).toBe(0);
    expect(c.probingRtt).toBe(true);
    expect(c.canSend(1)).toBe(false);
    at(1030);
    // ...and a frame sent before the drain says nothing about the empty path.
    c.onAcked(4 * MiB, 30);
    expect(c.probingRtt).toBe(true);
    expect(c.minRttMs).toBe(10);
    expect(c.window()).toBe(DEFAULT_MIN_RESYNC_WINDOW);
    c.onSent(256 * KiB);
    at(1060);
    c.onAcked(256 * KiB, 30);
    expect(c.probingRtt).toBe(false);
    expect(c.minRttMs).toBe(30);
    expect(Math.abs(c.window() - 2 * (c.bandwidthBytesPerSecond() / 1000) * 30)).toBeLessThanOrEqual(1);
    expect(c.window()).toBeGreaterThan(DEFAULT_MIN_RESYNC_WINDOW);
  });

  it('ends a probe at once on an RTT as low as the old minimum', () => {
    const { c, at } = clocked({ minRttWindowMs: 1000 });
    c.onSent(8 * MiB);
    at(10);
    c.onAcked(1 * MiB, 10);
    at(1100);
    expect(c.window()).toBe(0);
    expect(c.probingRtt).toBe(true);
    c.onAcked(1 * MiB, 10);
    expect(c.probingRtt).toBe(false);
  });

  it('keeps about twice the bandwidth-delay product in flight over a bottleneck, at full speed', () => {
    // 125 MB/s, 20 ms: BDP 2.5 MB.
    const bytesPerMs = 125_000;
    const baseRttMs = 20;
    const bdp = bytesPerMs * baseRttMs;
    const c = new ResyncController({ now: () => 0 });
    const r = simulateLink(c, { bytesPerMs, baseRttMs, frameBytes: 256 * KiB, durationMs: 30_000, measureFromMs: 5000 });
    expect(r.throughput).toBeGreaterThan(0.95 * bytesPerMs);
    expect(r.meanInFlight).toBeGreaterThan(1.5 * bdp);
    expect(r.meanInFlight).toBeLessThan(2.5 * bdp);
    // A bounded queue: never near the 64 MiB maximum.
    expect(r.maxInFlight).toBeLessThan(3 * bdp);
  });

  it('reaches full speed within a second from a cold start', () => {
    const bytesPerMs = 125_000;
    const c = new ResyncController({ now: () => 0 });
    const r = simulateLink(c, { bytesPerMs, baseRttMs: 20, frameBytes: 256 * KiB, durationMs: 1500, measureFromMs: 1000 });
    expect(r.throughput).toBeGreaterThan(0.9 * bytesPerMs);
  });

  it('keeps the minimum window when the BDP is smaller than it', () => {
    // 10 MB/s at 1 ms: BDP 10 KB, far below one frame.
    const c = new ResyncController({ now: () => 0 });
    const r = simulateLink(c, { bytesPerMs: 10_000, baseRttMs: 1, frameBytes: 64 * KiB, durationMs: 20_000, measureFromMs: 2000 });
    expect(r.throughput).toBeGreaterThan(0.95 * 10_000);
    expect(r.maxInFlight).toBeLessThanOrEqual(DEFAULT_MIN_RESYNC_WINDOW);
  });

  it('forgets dropped bytes and everything on reset', () => {
    const { c, at } = clocked();
    c.onSent(1 * MiB);
    c.onSent(1 * MiB);
    c.onDropped(1 * MiB);
    expect(c.inFlightBytes).toBe(1 * MiB);
    c.onDropped(5 * MiB);
    expect(c.inFlightBytes).toBe(0);
    c.onSent(8 * MiB);
    at(10);
    c.onAcked(8 * MiB, 10);
    expect(c.window()).toBeGreaterThan(DEFAULT_MIN_RESYNC_WINDOW);
    c.onSent(1 * MiB);
    c.reset();
    expect(c.inFlightBytes).toBe(0);
    expect(c.window()).toBe(DEFAULT_MIN_RESYNC_WINDOW);
    expect(c.smoothedRttMs).toBeUndefined();
    expect(c.minRttMs).toBeUndefined();
    expect(c.bandwidthBytesPerSecond()).toBe(0);
  });

  it('refuses bad options and inputs', () => {
    expect(() => new ResyncController({ minWindowBytes: 0 })).toThrow(InvalidArgumentError);
    expect(() => new ResyncController({ minWindowBytes: 2 * MiB, maxWindowBytes: 1 * MiB })).toThrow(InvalidArgumentError);
    expect(() => new ResyncController({ bandwidthWindowMs: Number.NaN })).toThrow(InvalidArgumentError);
    expect(() => new ResyncController({ rttGain: 0 })).toThrow(InvalidArgumentError);
    expect(() => new ResyncController({ rttGain: 1.5 })).toThrow(InvalidArgumentError);
    expect(() => new ResyncController({ maxBytesPerSecond: -1 })).toThrow(InvalidArgumentError);
    expect(() => new ResyncController({ maxBytesPerSecond: 1000, burstBytes: 0 })).toThrow(InvalidArgumentError);
    const c = new ResyncController({ now: () => 0 });
    expect(() => c.onSent(-1)).toThrow(InvalidArgumentError);
    expect(() => c.onAcked(1, Number.NaN)).toThrow(InvalidArgumentError);
    expect(() => c.onDropped(Number.POSITIVE_INFINITY)).toThrow(InvalidArgumentError);
  });
});

describe('ResyncController rate cap', () => {
  const rate = 1 * MiB; // bytes per second: 256 KiB every 250 ms

  it('has no cap by default', () => {
    const { c } = clocked();
    expect(c.maxBytesPerSecond).toBe(0);
    c.onSent(100 * MiB);
    expect(c.delayMs(100 * MiB)).toBe(0);
  });

  it('delays sends beyond the token bucket until it refills', () => {
    const { c, at } = clocked({ maxBytesPerSecond: rate });
    expect(c.delayMs(256 * KiB)).toBe(0);
    expect(c.canSend(256 * KiB)).toBe(true);
    c.onSent(256 * KiB);
    c.onAcked(256 * KiB, 0);
    expect(c.delayMs(256 * KiB)).toBe(250);
    expect(c.canSend(256 * KiB)).toBe(false);
    expect(c.delayMs(64 * KiB)).toBe(63);
    at(100);
    expect(c.delayMs(256 * KiB)).toBe(150);
    at(250);
    expect(c.delayMs(256 * KiB)).toBe(0);
    expect(c.canSend(256 * KiB)).toBe(true);
    // Time given as an argument, as a sender with its own clock reading does.
    expect(c.delayMs(256 * KiB, 250)).toBe(0);
  });

  it('holds the average rate to the cap', () => {
    const { c, at } = clocked({ maxBytesPerSecond: rate });
    let t = 0;
    let sent = 0;
    while (t < 10_000) {
      const d = c.delayMs(100_000, t);
      if (d > 0) {
        t += d;
        continue;
      }
      at(t);
      c.onSent(100_000);
      c.onAcked(100_000, 0);
      sent += 100_000;
    }
    expect(sent).toBeLessThanOrEqual(rate * 10 + 256 * KiB + 100_000);
    expect(sent).toBeGreaterThan(rate * 10 * 0.98);
  });

  it('lets a send larger than the bucket go when the bucket is full, then makes the rest wait it out', () => {
    const { c } = clocked({ maxBytesPerSecond: rate, burstBytes: 64 * KiB });
    expect(c.delayMs(1 * MiB)).toBe(0);
    c.onSent(1 * MiB);
    expect(c.delayMs(64 * KiB)).toBe(1000);
  });

  it('gates canSend on both the window and the cap', () => {
    const { c, at } = clocked({ maxBytesPerSecond: rate });
    c.onSent(256 * KiB);
    // Window full (256 KiB in flight) and bucket empty.
    expect(c.canSend(1)).toBe(false);
    at(250);
    expect(c.delayMs(1)).toBe(0);
    expect(c.canSend(1)).toBe(false);
    c.onAcked(256 * KiB, 250);
    expect(c.canSend(256 * KiB)).toBe(true);
  });

  it('changes the cap at run time', () => {
    const { c, at } = clocked({ maxBytesPerSecond: rate });
    c.onSent(256 * KiB);
    expect(c.delayMs(256 * KiB)).toBe(250);
    c.setMaxBytesPerSecond(undefined);
    expect(c.maxBytesPerSecond).toBe(0);
    expect(c.delayMs(256 * KiB)).toBe(0);
    // A new cap starts with a full bucket.
    c.setMaxBytesPerSecond(2 * rate);
    expect(c.delayMs(256 * KiB)).toBe(0);
    c.onSent(256 * KiB);
    expect(c.delayMs(256 * KiB)).toBe(125);
    // A changed cap keeps the bucket's debt.
    c.setMaxBytesPerSecond(rate);
    expect(c.delayMs(256 * KiB)).toBe(250);
    at(250);
    expect(c.delayMs(256 * KiB)).toBe(0);
  });

  it('is not stalled by a clock that steps back', () => {
    const { c, at } = clocked({ maxBytesPerSecond: rate });
    at(1_000_000);
    c.onSent(256 * KiB);
    at(1000);
    expect(c.delayMs(256 * KiB)).toBe(250);
    at(1250);
    expect(c.delayMs(256 * KiB)).toBe(0);
  });

  it('reads performance.now by default, the clock senders must pass in', () => {
    let t = 5_000;
    const spy = jest.spyOn(performance, 'now').mockImplementation(() => t);
    try {
      const c = new ResyncController({ maxBytesPerSecond: rate });
      c.onSent(256 * KiB);
      expect(c.delayMs(256 * KiB, performance.now())).toBe(250);
      t += 100;
      expect(c.delayMs(256 * KiB)).toBe(150);
      t += 150;
      expect(c.delayMs(256 * KiB)).toBe(0);
    } finally {
      spy.mockRestore();
    }
  });

  it('keeps the rate cap across reset', () => {
    const { c } = clocked({ maxBytesPerSecond: rate });
    c.onSent(256 * KiB);
    c.reset();
    expect(c.maxBytesPerSecond).toBe(rate);
    expect(c.delayMs(256 * KiB)).toBe(250);
  });
});

describe('ResyncController default clock', () => {
  const HOUR = 3_600_000;

  it('is monotonic: a wall clock stepped forward neither expires the measurement nor starts a probe', () => {
    const clock = fakeWallClock();
    try {
      const c = new ResyncController();
      c.onSent(8 * MiB);
      c.onAcked(8 * MiB, 10);
      expect(c.window()).toBeGreaterThan(c.minWindowBytes);
      clock.step(HOUR);
      // Still sized from what was measured (expired, or probing, it would be the minimum or 0).
      expect(c.bandwidthBytesPerSecond()).toBeGreaterThan(0);
      expect(c.window()).toBeGreaterThan(c.minWindowBytes);
      expect(c.probingRtt).toBe(false);
    } finally {
      clock.restore();
    }
  });

  it('is monotonic: a wall clock stepped back does not keep a stale minimum RTT for as long', async () => {
    const clock = fakeWallClock();
    try {
      const c = new ResyncController({ minRttWindowMs: 50 });
      c.onSent(1 * MiB);
      c.onAcked(1 * MiB, 10);
      const t0 = performance.now();
      clock.step(-HOUR);
      // What is waited for is time itself: the minimum RTT ageing past its window.
      await waitFor('the minimum RTT window to pass', () => performance.now() - t0 > 60, { intervalMs: 5 });
      c.window();
      expect(c.probingRtt).toBe(true);
    } finally {
      clock.restore();
    }
  });
});
