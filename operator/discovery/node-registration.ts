import type { Logger } from 'winston';
import type { KubeClient, LeaseRecord } from '../kube/kube-client.js';
import {
  CONTROL_ANNOTATION,
  NODE_LABEL,
  PEER_ANNOTATION,
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
  /** Renewal period; the lease lasts four of them. */
  renewMs?: number;
  signal: AbortSignal;
}

/**
 * Keeps this sidecar's Lease fresh until `signal` aborts, then deletes it (a clean stop
 * unregisters at once; a crash leaves a lease that expires). API errors are logged and
 * retried at the next renewal: the data path never depends on the API server.
 */
export async function runNodeRegistration(opts: NodeRegistrationOptions): Promise<void> {
  const renewMs = opts.renewMs ?? (SIDECAR_LEASE_SECONDS * 1000) / 4;
  const name = sidecarLeaseName(opts.node);
  const splice = spliceLeaseFields(opts.splice);
  let failing = false;
  while (!opts.signal.aborted) {
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
        annotations: withoutUndefined({ ...(current?.annotations ?? {}), [CONTROL_ANNOTATION]: opts.controlEndpoint, [PEER_ANNOTATION]: opts.peerEndpoint, ...splice.annotations }),
        resourceVersion: current?.resourceVersion,
      };
      await opts.client.writeLease(lease);
      if (failing) opts.logger.info('sidecar registration renewed', { lease: name });
      failing = false;
    } catch (err) {
      if (!failing) opts.logger.warn('sidecar registration failed; retrying', { lease: name, error: (err as Error).message });
      failing = true;
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, renewMs);
      function done(): void {
        clearTimeout(t);
        opts.signal.removeEventListener('abort', done);
        resolve();
      }
      opts.signal.addEventListener('abort', done, { once: true });
    });
  }
  await opts.client.deleteLease(opts.namespace, name).catch((err: unknown) => {
    opts.logger.warn('sidecar registration not removed', { lease: name, error: (err as Error).message });
  });
}

/** A record without the keys set to undefined (a reason left by an earlier, incapable start). */
function withoutUndefined(r: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(r).filter((e): e is [string, string] => e[1] !== undefined));
}
