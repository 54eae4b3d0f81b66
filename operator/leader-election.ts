import type { Logger } from 'winston';
import type { KubeClient, LeaseRecord } from './kube/kube-client.js';

export interface LeaderElectionOptions {
  client: Pick<KubeClient, 'getLease' | 'writeLease'>;
  namespace: string;
  name: string;
  identity: string;
  leaseSeconds?: number;
  retryMs?: number;
  logger: Logger;
  signal: AbortSignal;
}

/** The last lease record a candidate saw, and when (monotonic) it first saw it so. */
interface Observed {
  record: string;
  atMs: number;
}

/**
 * Lease-based leader election, as client-go does it: acquire the Lease when it is free
 * or expired, renew it every `retryMs`; every write carries the resourceVersion read,
 * so two candidates can never both win a round. Resolves when this process leads;
 * `lost` then resolves once renewals have failed for the lease duration minus one retry
 * period (at once if one hangs that long), so it stops before another can take over.
 *
 * No host's wall clock is compared with another's: the holder's renewTime is only a
 * label. A candidate counts the lease as expired when the record has not changed for
 * its lease duration, measured on the candidate's own monotonic clock from when it
 * first observed that record; the leader measures its renewals on its own. A clock
 * that is off or steps can then neither displace a live leader nor keep a dead one.
 */
export async function acquireLeadership(opts: LeaderElectionOptions): Promise<{ lost: Promise<void> }> {
  const leaseSeconds = opts.leaseSeconds ?? 15;
  const retryMs = opts.retryMs ?? 2000;
  const observed: Observed = { record: '', atMs: 0 };
  let waiting = false;
  let renewedAt = 0;
  for (;;) {
    if (opts.signal.aborted) throw opts.signal.reason;
    const started = performance.now();
    const won = await tryAcquireOrRenew(opts, leaseSeconds, observed).catch((err: unknown) => {
      opts.logger.warn('leader election attempt failed', { error: (err as Error).message });
      return false;
    });
    if (won) {
      renewedAt = started;
      break;
    }
    if (!waiting) opts.logger.info('waiting for leadership', { lease: `${opts.namespace}/${opts.name}` });
    waiting = true;
    await sleep(retryMs, opts.signal);
  }
  opts.logger.info('became leader', { lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });
  // Measured from the start of the last successful attempt: the write landed after it,
  // and another candidate can first observe it only then, so it waits at least the
  // lease duration from here. One retry period of margin to stop acting before that.
  const keepMs = leaseSeconds * 1000 - retryMs;
  const lost = (async () => {
    for (;;) {
      const left = (): number => renewedAt + keepMs - performance.now();
      if (left() <= 0) return;
      const slept = await sleep(Math.min(retryMs, left()), opts.signal).then(
        () => true,
        () => false,
      );
      if (!slept || left() <= 0) return;
      const started = performance.now();
      // A request that hangs past the deadline must not keep us leading.
      if (await within(tryAcquireOrRenew(opts, leaseSeconds, observed), left(), opts.signal)) renewedAt = started;
    }
  })();
  return { lost };
}

async function tryAcquireOrRenew(opts: LeaderElectionOptions, leaseSeconds: number, observed: Observed): Promise<boolean> {
  // Wall time only as a label in the record (for people and tools); never compared.
  const now = new Date();
  const current = await opts.client.getLease(opts.namespace, opts.name);
  if (current !== undefined && current.holder !== opts.identity && current.holder !== undefined && current.holder !== '') {
    const seenAt = observe(observed, current);
    if (performance.now() - seenAt < (current.leaseDurationSeconds ?? leaseSeconds) * 1000) return false;
  }
  const lease: LeaseRecord = {
    name: opts.name,
    namespace: opts.namespace,
    holder: opts.identity,
    leaseDurationSeconds: leaseSeconds,
    renewTime: now,
    acquireTime: current?.holder === opts.identity ? (current.acquireTime ?? now) : now,
    labels: current?.labels ?? {},
    annotations: current?.annotations ?? {},
    resourceVersion: current?.resourceVersion,
  };
  // A 409 (someone else wrote first) surfaces as an error: this round is lost.
  await opts.client.writeLease(lease);
  return true;
}

/** When the record was first seen as it is now; a changed record is seen now. */
function observe(observed: Observed, lease: LeaseRecord): number {
  const record = JSON.stringify([lease.holder, lease.renewTime?.getTime(), lease.acquireTime?.getTime(), lease.leaseDurationSeconds, lease.resourceVersion]);
  if (record !== observed.record) {
    observed.record = record;
    observed.atMs = performance.now();
  }
  return observed.atMs;
}

/** True if `attempt` succeeds within `ms` (false on failure, timeout or abort). */
function within(attempt: Promise<boolean>, ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      clearTimeout(t);
      signal.removeEventListener('abort', onAbort);
      resolve(ok);
    };
    const onAbort = (): void => done(false);
    const t = setTimeout(onAbort, ms);
    signal.addEventListener('abort', onAbort, { once: true });
    attempt.then(done, () => done(false));
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
