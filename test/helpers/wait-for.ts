export interface WaitForOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /**
   * What to show of the system when the deadline passes (logs, status), appended to the
   * error: a slow acceptance test that times out in CI is otherwise a failure nobody can
   * read afterwards. Its own failure is reported in its place, never instead of the timeout.
   */
  onTimeout?: () => Promise<string>;
}

/** Polls `check` until it returns a value other than undefined/false, or the deadline passes. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, opts: WaitForOptions = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      let shown = '';
      if (opts.onTimeout) shown = await opts.onTimeout().then((s) => `\n${s}`, (err: Error) => `\n(the diagnostics failed too: ${err.message})`);
      throw new Error(`timed out waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}${shown}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
  }
}
