import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from '@jest/globals';
import winston from 'winston';
import { fakeWallClock, type FakeWallClock } from '../../test/helpers/fake-wall-clock.js';
import { waitFor } from '../../test/helpers/wait-for.js';
import { superviseSidecar } from './sidecar-supervisor.js';

const HOUR = 3_600_000;

/** A logger that calls `onLine` with each formatted line. */
function hookedLogger(onLine: (line: string) => void): winston.Logger {
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      onLine(chunk.toString('utf8'));
      cb();
    },
  });
  return winston.createLogger({ transports: [new winston.transports.Stream({ stream })] });
}

describe('superviseSidecar', () => {
  let clock: FakeWallClock | undefined;
  const stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const s of stops.splice(0)) await s();
    clock?.restore();
    clock = undefined;
  });

  it('falls back about fallbackAfterMs after the sidecar went down, though the wall clock stepped back an hour meanwhile', async () => {
    const fallbackAfterMs = 500;
    const wall = fakeWallClock();
    clock = wall;
    let downAt: number | undefined;
    let fellBackAt: number | undefined;
    const logger = hookedLogger((line) => {
      // Right after the first exit has been recorded as the start of the outage.
      if (downAt === undefined && line.includes('sidecar exited: restarting')) {
        downAt = performance.now();
        wall.step(-HOUR);
      }
    });
    const abort = new AbortController();
    const done = superviseSidecar({
      // A sidecar that crashes at once, every time.
      command: '/bin/sh',
      args: ['-c', 'exit 3'],
      fallback: () => {
        fellBackAt ??= performance.now();
        return Promise.resolve();
      },
      fallbackAfterMs,
      restartDelayMs: 20,
      maxRestartDelayMs: 40,
      logger,
      signal: abort.signal,
      output: new Writable({ write: (_c, _e, cb) => cb() }),
    });
    stops.push(async () => {
      abort.abort();
      await done;
    });
    await waitFor('the first exit', () => downAt !== undefined);
    // waitFor's deadline is on the wall clock, read after the step.
    await waitFor('the fallback', () => fellBackAt !== undefined, { timeoutMs: 5_000, intervalMs: 10 });
    const afterMs = fellBackAt! - downAt!;
    expect(afterMs).toBeGreaterThan(fallbackAfterMs - 50);
    expect(afterMs).toBeLessThan(fallbackAfterMs + 1_000);
  });

  it('kills a ready sidecar that stops answering its health check, and restarts it', async () => {
    let starts = 0;
    let checks = 0;
    let healthy = true;
    const abort = new AbortController();
    const done = superviseSidecar({
      // Ready at once, then alive but (as the check says) not answering.
      command: '/bin/sh',
      args: ['-c', 'echo \'{"message":"sidecar ready"}\'; exec sleep 600'],
      fallback: () => Promise.resolve(),
      fallbackAfterMs: 60_000,
      restartDelayMs: 20,
      logger: hookedLogger(() => undefined),
      signal: abort.signal,
      output: new Writable({
        write: (c: Buffer, _e, cb) => {
          if (c.toString('utf8').includes('sidecar ready')) starts++;
          cb();
        },
      }),
      childHealth: {
        check: () => {
          checks++;
          return Promise.resolve(healthy);
        },
        intervalMs: 20,
        hungAfterMs: 200,
      },
    });
    stops.push(async () => {
      abort.abort();
      await done;
    });
    await waitFor('the first start', () => starts === 1);
    // Healthy: checked again and again, never killed.
    await waitFor('a few checks', () => checks >= 5, { timeoutMs: 5_000, intervalMs: 10 });
    expect(starts).toBe(1);
    healthy = false;
    const failedAt = performance.now();
    await waitFor('the restart of the hung sidecar', () => starts === 2, { timeoutMs: 5_000, intervalMs: 10 });
    expect(performance.now() - failedAt).toBeGreaterThanOrEqual(150);
  });
});
