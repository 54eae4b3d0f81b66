import type { Logger } from 'winston';
import type { KubeClient, LeaseRecord } from '../kube/kube-client.js';
import {
  CONTROL_ANNOTATION,
  NODE_LABEL,
  PEER_ANNOTATION,
  SECONDARY_PAIRS_ANNOTATION,
  secondaryPairsValue,
  SIDECAR_LABEL,
  SIDECAR_LABEL_VALUE,
  SIDECAR_LEASE_SECONDS,
  sidecarLeaseName,
  spliceLeaseFields,
  type NodeSplice,
} from './sidecar-lease.js';

export interface NodeRegistrationOptions {
  client: Pick<KubeClient, 'getLease' | 'writeLease' | 'deleteLease'>;
  namespace: string;
  node: string;
  controlEndpoint: string;
  peerEndpoint: string;
  /** Whether the node can splice, from the sidecar's start-up probe. */
  splice: NodeSplice;
  logger: Logger;
  /** The secondary pairs this sidecar holds, published for the site's redirects. */
  secondaryPairs?: () => readonly string[];
  /** How often `secondaryPairs` is checked: a change is written at once, not at the next renewal. */
  pairsPollMs?: number;
  /** Renewal period; the lease lasts four of them. */
  renewMs?: number;
  signal: AbortSignal;
}

/**
 * Keeps this sidecar's Lease fresh until `signal` aborts, then deletes it (a clean stop
 * unregisters at once; a crash leaves a lease that expires). API errors are logged and
 * retried at the next renewal: the data path never depends on the API server. A change
 * of the secondary pairs held is written within `pairsPollMs`, so that a primary dialling
 * another node of this site is redirected here soon after the pair is created.
 */
export async function runNodeRegistration(opts: NodeRegistrationOptions): Promise<void> {
  const renewMs = opts.renewMs ?? (SIDECAR_LEASE_SECONDS * 1000) / 4;
  const name = sidecarLeaseName(opts.node);
  const splice = spliceLeaseFields(opts.splice);
  const pollMs = Math.min(opts.pairsPollMs ?? 1000, renewMs);
  const pairs = (): string => secondaryPairsValue(opts.secondaryPairs?.() ?? []);
  let failing = false;
  let written: string | undefined;
  let renewedAt = -Infinity;
  while (!opts.signal.aborted) {
    const held = pairs();
    if (held === written && performance.now() - renewedAt < renewMs) {
      await pause(pollMs, opts.signal);
      continue;
    }
    try {
      const current = await opts.client.getLease(opts.namespace, name);
      const now = new Date();
      const lease: LeaseRecord = {
        name,
        namespace: opts.namespace,
        holder: opts.node,
        leaseDurationSeconds: Math.ceil((renewMs * 4) / 1000),
        renewTime: now,
        acquireTime: current?.acquireTime ?? now,
        labels: { ...(current?.labels ?? {}), [SIDECAR_LABEL]: SIDECAR_LABEL_VALUE, [NODE_LABEL]: opts.node, ...splice.labels },
        annotations: withoutUndefined({
          ...(current?.annotations ?? {}),
          [CONTROL_ANNOTATION]: opts.controlEndpoint,
          [PEER_ANNOTATION]: opts.peerEndpoint,
          [SECONDARY_PAIRS_ANNOTATION]: held === '' ? undefined : held,
          ...splice.annotations,
        }),
        resourceVersion: current?.resourceVersion,
      };
      await opts.client.writeLease(lease);
      if (failing) opts.logger.info('sidecar registration renewed', { lease: name });
      failing = false;
      written = held;
      renewedAt = performance.now();
    } catch (err) {
      if (!failing) opts.logger.warn('sidecar registration failed; retrying', { lease: name, error: (err as Error).message });
      failing = true;
      // Retried at the next renewal, not at the next poll: an API server that refuses
      // should not be asked every second by every node.
      renewedAt = performance.now();
      written = held;
    }
    await pause(pollMs, opts.signal);
  }
  await opts.client.deleteLease(opts.namespace, name).catch((err: unknown) => {
    opts.logger.warn('sidecar registration not removed', { lease: name, error: (err as Error).message });
  });
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** A record without the keys set to undefined (a reason left by an earlier, incapable start). */
function withoutUndefined(r: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(r).filter((e): e is [string, string] => e[1] !== undefined));
}
