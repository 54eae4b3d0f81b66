import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from 'winston';

export interface SidecarSupervisorOptions {
  /** The sidecar command line. */
  command: string;
  args: readonly string[];
  /**
   * Runs the node splice's fallback (no sidecar running): spliced volumes' I/O goes to
   * the volumes directly, tracked by dm-era, instead of waiting for the sidecar.
   */
  fallback(): Promise<void>;
  /** How long the application may wait for a dead sidecar before the fallback. */
  fallbackAfterMs: number;
  /** First restart delay; doubled on each quick failure up to maxRestartDelayMs. */
  restartDelayMs?: number;
  maxRestartDelayMs?: number;
  logger: Logger;
  signal: AbortSignal;
  /** Where the child's output goes (it is also scanned for the ready line). */
  output?: NodeJS.WritableStream;
  /**
   * Whether a ready sidecar still answers (its /healthz). One that has not for
   * `hungAfterMs` is killed and handled as a crash: restarted, and the fallback runs if it
   * stays down. The kubelet's liveness probe asks the supervisor instead, so a sidecar
   * that is restarting (slow to start on a busy node) never gets the whole container,
   * and its fallback, killed.
   */
  childHealth?: { check(signal: AbortSignal): Promise<boolean>; intervalMs: number; hungAfterMs: number };
}

const READY = '"message":"sidecar ready"';

/**
 * Keeps a sidecar running and bounds how long applications wait when it is not: the
 * sidecar is restarted when it exits, and if no restarted sidecar is ready within
 * fallbackAfterMs, the supervisor stops the starting one (two processes must never swap
 * the same tables) and runs the fallback, then starts the sidecar again, which attaches
 * the volumes back and records what was written meanwhile.
 */
export async function superviseSidecar(o: SidecarSupervisorOptions): Promise<void> {
  const out = o.output ?? process.stdout;
  let delay = o.restartDelayMs ?? 500;
  const maxDelay = o.maxRestartDelayMs ?? 10_000;
  // Every time here is on the monotonic clock: a wall clock stepped back must not put
  // the fallback off (applications would wait on a dead sidecar for as long).
  let downSince: number | null = null;
  let fellBack = false;
  while (!o.signal.aborted) {
    const child = spawn(o.command, [...o.args], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
    const started = performance.now();
    let ready = false;
    let tail = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out.write(chunk);
      if (ready) return;
      tail = (tail + chunk.toString('utf8')).slice(-65536);
      if (tail.includes(READY)) {
        ready = true;
        downSince = null;
        fellBack = false;
        o.logger.info('sidecar ready under the supervisor', { pid: child.pid });
      }
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code, sig) => resolve(code ?? (sig ? 128 : null))));
    const onAbort = (): void => void killGroup(child, 'SIGTERM');
    o.signal.addEventListener('abort', onAbort, { once: true });
    // While the sidecar is down or not yet ready, the fallback deadline runs.
    let timer: NodeJS.Timeout | null = null;
    const deadline = new Promise<'deadline'>((resolve) => {
      if (downSince === null || fellBack) return;
      timer = setTimeout(() => resolve('deadline'), Math.max(0, downSince + o.fallbackAfterMs - performance.now()));
    });
    const watch = o.childHealth !== undefined ? watchHealth(o.childHealth, () => ready, exited, o.logger, () => killGroup(child, 'SIGKILL')) : undefined;
    const first = await Promise.race([exited.then(() => 'exit' as const), deadline]);
    if (timer) clearTimeout(timer);
    if (first === 'deadline' && !ready) {
      o.logger.warn('sidecar not back in time: stopping it and falling back to the direct path', { downForMs: performance.now() - downSince! });
      killGroup(child, 'SIGKILL');
      await exited;
      await runFallback(o);
      fellBack = true;
      o.signal.removeEventListener('abort', onAbort);
      continue;
    }
    const code = await exited;
    watch?.abort();
    o.signal.removeEventListener('abort', onAbort);
    if (o.signal.aborted) return;
    downSince ??= performance.now();
    // A sidecar that ran for a while before dying restarts quickly; a crash loop backs off.
    delay = performance.now() - started > 60_000 ? (o.restartDelayMs ?? 500) : Math.min(maxDelay, delay * 2);
    o.logger.warn('sidecar exited: restarting', { code, restartInMs: delay });
    // The fallback deadline keeps running through the restart delay.
    const waitFor = Math.min(delay, fellBack ? delay : Math.max(0, downSince + o.fallbackAfterMs - performance.now()));
    await sleep(waitFor, o.signal);
    if (!fellBack && performance.now() >= downSince + o.fallbackAfterMs && !o.signal.aborted) {
      await runFallback(o);
      fellBack = true;
      await sleep(Math.max(0, delay - waitFor), o.signal);
    }
  }
}

/**
 * Checks a ready child now and then; kills it once it has not answered for hungAfterMs.
 * Stops when the child exits (or the returned controller is aborted).
 */
function watchHealth(h: NonNullable<SidecarSupervisorOptions['childHealth']>, isReady: () => boolean, exited: Promise<unknown>, logger: Logger, kill: () => void): AbortController {
  const stop = new AbortController();
  void exited.then(() => stop.abort());
  void (async () => {
    let failingSince: number | null = null;
    while (!stop.signal.aborted) {
      await sleep(h.intervalMs, stop.signal);
      if (stop.signal.aborted) return;
      // A starting sidecar is the restart logic's (its fallback deadline), not a hang.
      if (!isReady()) continue;
      const ok = await h.check(AbortSignal.any([stop.signal, AbortSignal.timeout(h.intervalMs)])).catch(() => false);
      if (stop.signal.aborted) return;
      if (ok) {
        failingSince = null;
        continue;
      }
      failingSince ??= performance.now();
      if (performance.now() - failingSince >= h.hungAfterMs) {
        logger.error('sidecar not answering its health check: killing it, to restart it', { failingForMs: Math.round(performance.now() - failingSince) });
        kill();
        return;
      }
    }
  })();
  return stop;
}

async function runFallback(o: SidecarSupervisorOptions): Promise<void> {
  try {
    await o.fallback();
    o.logger.warn('spliced volumes are on the fallback path until the sidecar is back');
  } catch (err) {
    o.logger.error('fallback failed', { error: (err as Error).message });
  }
}

function killGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  try {
    // The sidecar may run under a wrapper: signal the whole process group.
    process.kill(-child.pid!, sig);
  } catch {
    child.kill(sig);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
