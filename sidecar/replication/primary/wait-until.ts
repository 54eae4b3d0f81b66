import { ClosedError } from '../../errors.js';

const POLL_MS = 20;

/**
 * Resolves once `ready()` holds, checking every 20 ms (the conditions are in-memory
 * counters of a replicator, cheap to read); `nudge` runs at each check that fails (to
 * restart work that may have stopped). Rejects with the abort reason when `signal` aborts.
 */
export async function waitUntil(ready: () => boolean, signal: AbortSignal, nudge?: () => void): Promise<void> {
  while (!ready()) {
    if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new ClosedError(String(signal.reason));
    nudge?.();
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        signal.removeEventListener('abort', done);
        resolve();
      }, POLL_MS);
      const done = (): void => {
        clearTimeout(t);
        resolve();
      };
      signal.addEventListener('abort', done, { once: true });
    });
  }
}
