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

/**
 * Lease-based leader election, as client-go does it: acquire the Lease when it is free
 * or expired, renew it every `retryMs`; every write carries the resourceVersion read,
 * so two candidates can never both win a round. Resolves when this process leads;
 * `lost` then resolves if a renewal fails for a whole lease period.
 */
export async function acquireLeadership(opts: LeaderElectionOptions): Promise<{ lost: Promise<void> }> {
  const leaseSeconds = opts.leaseSeconds ?? 15;
  const retryMs = opts.retryMs ?? 2000;
  let waiting = false;
  for (;;) {
    if (opts.signal.aborted) throw opts.signal.reason;
    const won = await tryAcquireOrRenew(opts, leaseSeconds).catch((err: unknown) => {
      opts.logger.warn('leader election attempt failed', { error: (err as Error).message });
      return false;
    });
    if (won) break;
    if (!waiting) opts.logger.info('waiting for leadership', { lease: `${opts.namespace}/${opts.name}` });
    waiting = true;
    await sleep(retryMs, opts.signal);
  }
  opts.logger.info('became leader', { lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });
  const lost = (async () => {
    let lastRenew = Date.now();
    while (!opts.signal.aborted) {
      await sleep(retryMs, opts.signal).catch(() => undefined);
      if (opts.signal.aborted) return;
      const ok = await tryAcquireOrRenew(opts, leaseSeconds).catch(() => false);
      if (ok) lastRenew = Date.now();
      // Only give up once the lease may have expired for the others.
      else if (Date.now() - lastRenew > leaseSeconds * 1000 - retryMs) return;
    }
  })();
  return { lost };
}

async function tryAcquireOrRenew(opts: LeaderElectionOptions, leaseSeconds: number): Promise<boolean> {
  const now = new Date();
  const current = await opts.client.getLease(opts.namespace, opts.name);
  if (current !== undefined && current.holder !== opts.identity && current.holder !== undefined && current.holder !== '') {
    const expires = (current.renewTime?.getTime() ?? 0) + (current.leaseDurationSeconds ?? leaseSeconds) * 1000;
    if (expires > now.getTime()) return false;
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
