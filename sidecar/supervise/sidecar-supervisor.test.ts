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
});
