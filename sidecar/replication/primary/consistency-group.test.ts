import { afterEach, describe, expect, it } from '@jest/globals';
import winston from 'winston';
import { fakeWallClock, type FakeWallClock } from '../../../test/helpers/fake-wall-clock.js';
import { waitFor } from '../../../test/helpers/wait-for.js';
import { ConsistencyGroup, type GroupMember } from './consistency-group.js';

const logger = winston.createLogger({ silent: true });

/**
 * A member whose drain ships `groupBytes` at `linkBytesPerSecond`, and whose application
 * writes `writeBytesPerTick` every 10 ms while `writing` is set.
 */
class FakeMember implements GroupMember {
  readonly remotePair = 'p';
  readonly sessionId = 's';
  readonly needsFullSync = false;
  readonly ready = true;
  readonly retryAfterMs = 0;
  bytesOnWire = 0;
  bytesWritten = 0;
  cuts = 0;
  readonly groupIds: number[] = [];
  committed = 0;
  writing = false;
  readonly #timer: NodeJS.Timeout;

  constructor(
    readonly groupBytes: number,
    readonly linkBytesPerSecond: number,
    readonly writeBytesPerTick: number,
  ) {
    this.#timer = setInterval(() => {
      if (this.writing) this.bytesWritten += this.writeBytesPerTick;
    }, 10);
  }

  get hasChanges(): boolean {
    return true;
  }

  holdAcknowledgements(): void {}
  releaseHold(): void {}
  cut(id: number): void {
    this.cuts++;
    this.groupIds.push(id);
  }

  /** Longest drain as the member itself timed it (a loaded machine stretches the timer). */
  longestDrainMs = 0;

  async drain(): Promise<number> {
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, (1000 * this.groupBytes) / this.linkBytesPerSecond));
    this.longestDrainMs = Math.max(this.longestDrainMs, performance.now() - t0);
    this.bytesOnWire += this.groupBytes;
    return 1;
  }

  async commitGroup(): Promise<void> {}
  groupDone(ok: boolean): void {
    if (ok) this.committed++;
  }

  async fullSyncDone(): Promise<void> {}
  failSession(): void {}

  stop(): void {
    clearInterval(this.#timer);
  }
}

describe('ConsistencyGroup: application writes faster than the link', () => {
  const cleanups: (() => void)[] = [];
  afterEach(() => cleanups.splice(0).forEach((f) => f()));

  function start(member: FakeMember, maxDrainMs: number): ConsistencyGroup {
    const g = new ConsistencyGroup({ name: 'g', intervalMs: 50, maxCoordinationMs: 50, maxDrainMs, logger });
    g.add(member);
    cleanups.push(() => {
      g.close();
      member.stop();
    });
    return g;
  }

  it('measures the link from its drains, defers group starts while writes outpace it, and resumes when they stop', async () => {
    // Link: 4 MiB in 40 ms (~100 MB/s). Writes: 4 MiB per 10 ms (~400 MB/s) while on.
    const m = new FakeMember(4 << 20, 100e6, 4 << 20);
    const g = start(m, 60_000);
    await waitFor('a first group, which measures the link', () => m.committed >= 1);
    await waitFor('a measured link rate', () => g.stats().linkBytesPerSecond > 0);
    // About the link's rate: never above it, and not far below what the drains took by
    // the member's own timing (the fixed 50 MB/s floor failed at load 18: 21 MB/s, the
    // timers stretched).
    expect(g.stats().linkBytesPerSecond).toBeLessThan(110e6);
    expect(g.stats().linkBytesPerSecond).toBeGreaterThan((0.5 * m.groupBytes) / (m.longestDrainMs / 1000));

    m.writing = true;
    await waitFor('group starts deferred under the burst', () => g.stats().deferred >= 3);
    // Deferring means no new cut while the burst lasts (one may have been under way).
    const cutsInBurst = m.cuts;
    await waitFor('more deferrals', () => g.stats().deferred >= 6);
    expect(m.cuts).toBeLessThanOrEqual(cutsInBurst + 1);

    m.writing = false;
    const committed = m.committed;
    await waitFor('groups again once the burst is over', () => m.committed >= committed + 2);
  });

  it('never defers past maxDrainMs since the last applied group', async () => {
    const m = new FakeMember(4 << 20, 100e6, 4 << 20);
    const g = start(m, 600);
    await waitFor('a first group, which measures the link', () => m.committed >= 1 && g.stats().linkBytesPerSecond > 0);
    m.writing = true;
    await waitFor('a deferral', () => g.stats().deferred >= 1);
    const committed = m.committed;
    // Writes never stop, yet groups keep being applied, about every maxDrainMs.
    await waitFor('a group despite the burst', () => m.committed >= committed + 2, { timeoutMs: 10_000 });
    expect(m.writing).toBe(true);
  });

  it('does not defer while the link is unmeasured', async () => {
    // Every drain is below the 1 MiB needed to measure the link.
    const m = new FakeMember(64 << 10, 100e6, 4 << 20);
    m.writing = true;
    const g = start(m, 60_000);
    await waitFor('several groups', () => m.committed >= 5);
    expect(g.stats().deferred).toBe(0);
    expect(g.stats().linkBytesPerSecond).toBe(0);
  });
});

describe('ConsistencyGroup: the wall clock steps back', () => {
  const HOUR = 3_600_000;
  const cleanups: (() => void)[] = [];
  let clock: FakeWallClock;
  afterEach(() => {
    cleanups.splice(0).forEach((f) => f());
    clock.restore();
  });

  function start(member: FakeMember, o: { intervalMs: number; maxDrainMs: number }): ConsistencyGroup {
    clock = fakeWallClock();
    const g = new ConsistencyGroup({ name: 'g', maxCoordinationMs: 50, logger, ...o });
    g.add(member);
    cleanups.push(() => {
      g.close();
      member.stop();
    });
    return g;
  }

  it('forms the next group about one interval later, with a larger group id', async () => {
    const intervalMs = 300;
    const m = new FakeMember(64 << 10, 100e6, 0);
    start(m, { intervalMs, maxDrainMs: 60_000 });
    await waitFor('a first group', () => m.committed >= 1);
    const committed = m.committed;
    clock.step(-HOUR);
    const t0 = performance.now();
    // waitFor's own deadline is on the (stepped) wall clock: it must be set after the step.
    await waitFor('a group after the step', () => m.committed > committed, { timeoutMs: 5_000, intervalMs: 10 });
    expect(performance.now() - t0).toBeLessThan(intervalMs + 700);
    // Group ids stay unique and increasing although the clock that seeds them went back.
    for (let i = 1; i < m.groupIds.length; i++) expect(m.groupIds[i]!).toBeGreaterThan(m.groupIds[i - 1]!);
  });

  it('still never defers past maxDrainMs since the last applied group', async () => {
    const m = new FakeMember(4 << 20, 100e6, 4 << 20);
    const g = start(m, { intervalMs: 50, maxDrainMs: 600 });
    await waitFor('a first group, which measures the link', () => m.committed >= 1 && g.stats().linkBytesPerSecond > 0);
    m.writing = true;
    await waitFor('a deferral', () => g.stats().deferred >= 1);
    clock.step(-HOUR);
    const committed = m.committed;
    await waitFor('groups despite the burst and the step', () => m.committed >= committed + 2, { timeoutMs: 10_000 });
    expect(m.writing).toBe(true);
  });
});
