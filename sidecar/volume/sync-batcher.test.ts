import { describe, expect, it } from '@jest/globals';
import { SyncBatcher } from './sync-batcher.js';

function controllable() {
  const started: (() => void)[] = [];
  const batcher = new SyncBatcher(
    () =>
      new Promise<void>((resolve) => {
        started.push(resolve);
      }),
  );
  return { batcher, started };
}

describe('SyncBatcher', () => {
  it('a caller arriving during a sync waits for the next one, and joins it with others', async () => {
    const { batcher, started } = controllable();
    const first = batcher.sync();
    expect(started).toHaveLength(1);
    let secondDone = false;
    const second = batcher.sync().then(() => (secondDone = true));
    const third = batcher.sync();
    // Still one sync running: the late callers share the next one.
    expect(started).toHaveLength(1);
    started[0]!();
    await first;
    await new Promise((r) => setImmediate(r));
    expect(started).toHaveLength(2);
    expect(secondDone).toBe(false);
    started[1]!();
    await Promise.all([second, third]);
    expect(secondDone).toBe(true);
    expect(started).toHaveLength(2);
  });

  it('propagates a failure to the callers it covers and recovers afterwards', async () => {
    let fail = true;
    const batcher = new SyncBatcher(async () => {
      if (fail) throw new Error('EIO');
    });
    await expect(batcher.sync()).rejects.toThrow('EIO');
    fail = false;
    await expect(batcher.sync()).resolves.toBeUndefined();
  });
});
