import type { KubeClient } from '../kube/kube-client.js';
import { CONTROL_ANNOTATION, NODE_LABEL, PEER_ANNOTATION, SIDECAR_LABEL, SIDECAR_LABEL_VALUE } from './sidecar-lease.js';

export interface SidecarEndpoint {
  node: string;
  control: string;
  peer: string;
}

export type SidecarLookup = { found: SidecarEndpoint } | { missing: string };

/** Finds the live sidecar of a node from the registration leases. */
export class SidecarDirectory {
  readonly #client: Pick<KubeClient, 'listLeases'>;
  readonly #namespace: string;
  readonly #now: () => number;

  constructor(client: Pick<KubeClient, 'listLeases'>, namespace: string, now: () => number = Date.now) {
    this.#client = client;
    this.#namespace = namespace;
    this.#now = now;
  }

  async forNode(node: string): Promise<SidecarLookup> {
    const leases = await this.#client.listLeases(this.#namespace, `${SIDECAR_LABEL}=${SIDECAR_LABEL_VALUE},${NODE_LABEL}=${node}`);
    const lease = leases[0];
    if (lease === undefined) return { missing: `no blockmirror sidecar is registered on node ${node}` };
    const control = lease.annotations[CONTROL_ANNOTATION];
    if (control === undefined) return { missing: `the sidecar lease of node ${node} has no ${CONTROL_ANNOTATION} annotation` };
    const renewed = lease.renewTime?.getTime() ?? 0;
    const ttlMs = (lease.leaseDurationSeconds ?? 0) * 1000;
    if (renewed + ttlMs < this.#now()) {
      return { missing: `the sidecar on node ${node} has not renewed its registration since ${lease.renewTime?.toISOString() ?? 'ever'}` };
    }
    return { found: { node, control, peer: lease.annotations[PEER_ANNOTATION] ?? '' } };
  }
}
