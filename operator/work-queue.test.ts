import { describe, expect, it } from '@jest/globals';
import { WorkQueue } from './work-queue.js';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('WorkQueue', () => {
  it('never runs one key twice at once, and runs it again when added meanwhile', async () => {
    const gate = deferred();
    let running = 0;
    let maxRunning = 0;
    let runs = 0;
    const q = new WorkQueue(
      async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        runs++;
        if (runs === 1) await gate.promise;
        running--;
      },
      { concurrency: 4 },
    );
    q.add('a');
    q.add('a');
    await Promise.resolve();
    q.add('a');
    q.add('a');
    gate.resolve();
    await q.idle();
    expect(maxRunning).toBe(1);
    // The adds during the first run collapse into exactly one more run.
    expect(runs).toBe(2);
    q.shutdown();
  });

  it('runs different keys in parallel up to the concurrency', async () => {
    const gate = deferred();
    let running = 0;
    let maxRunning = 0;
    const q = new WorkQueue(
      async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await gate.promise;
        running--;
      },
      { concurrency: 2 },
    );
    for (const k of ['a', 'b', 'c']) q.add(k);
    await new Promise((r) => setImmediate(r));
    expect(running).toBe(2);
    gate.resolve();
    await q.idle();
    expect(maxRunning).toBe(2);
    q.shutdown();
  });

  it('retries a failing key with growing backoff and reports each failure', async () => {
    const delays: number[] = [];
    let calls = 0;
    const done = deferred();
    const q = new WorkQueue(
      () => {
        calls++;
        if (calls < 4) return Promise.reject(new Error('temporary'));
        done.resolve();
        return Promise.resolve();
      },
      { concurrency: 1, baseBackoffMs: 5, maxBackoffMs: 15, onError: (_k, _e, ms) => delays.push(ms) },
    );
    q.add('a');
    await done.promise;
    expect(delays).toEqual([5, 10, 15]);
    q.shutdown();
  });

  it('requeues after the delay a handler asks for, and shutdown aborts the signal', async () => {
    let calls = 0;
    const second = deferred();
    let seen: AbortSignal | undefined;
    const q = new WorkQueue(
      (_key, signal) => {
        seen = signal;
        calls++;
        if (calls === 2) second.resolve();
        return Promise.resolve({ requeueAfterMs: 5 });
      },
      { concurrency: 1 },
    );
    q.add('a');
    await second.promise;
    q.shutdown();
    expect(seen?.aborted).toBe(true);
  });
});
