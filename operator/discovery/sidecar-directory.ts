import type { KubeClient, LeaseRecord } from '../kube/kube-client.js';
import { CONTROL_ANNOTATION, NODE_LABEL, PEER_ANNOTATION, SIDECAR_LABEL, SIDECAR_LABEL_VALUE, SIDECAR_LEASE_SECONDS, readNodeSplice, sidecarLeaseName, type NodeSplice } from './sidecar-lease.js';

export interface SidecarEndpoint {
  node: string;
  control: string;
  peer: string;
  /** Whether the node can put a volume behind the tap, as its sidecar registered. */
  splice: NodeSplice;
}

export type SidecarLookup = { found: SidecarEndpoint } | { missing: string };

/**
 * Finds the live sidecar of a node from the registration leases.
 *
 * Live means the Lease was seen to change within its duration, on this process's
 * monotonic clock: its renewTime is the node's wall clock, and comparing it with ours
 * would make a node whose clock is behind look dead, and one ahead look alive long
 * after it died. So the directory lives as long as the operator and remembers what it
 * saw; a Lease seen for the first time counts as fresh (as client-go's leader election).
 */
export class SidecarDirectory {
  readonly #client: Pick<KubeClient, 'listLeases'>;
  readonly #namespace: string;
  readonly #now: () => number;
  /** Per node: the registration as last seen, and when it was first seen so. */
  readonly #observed = new Map<string, { record: string; atMs: number }>();

  /** `now`: a monotonic clock in milliseconds. */
  constructor(client: Pick<KubeClient, 'listLeases'>, namespace: string, now: () => number = () => performance.now()) {
    this.#client = client;
    this.#namespace = namespace;
    this.#now = now;
  }

  async forNode(node: string): Promise<SidecarLookup> {
    const leases = await this.#client.listLeases(this.#namespace, `${SIDECAR_LABEL}=${SIDECAR_LABEL_VALUE},${NODE_LABEL}=${node}`);
    // Only the Lease named for the node: the chart's admission policy lets a sidecar write
    // that one alone, while a label is whatever its writer put there.
    const lease = leases.find((l) => l.name === sidecarLeaseName(node));
    if (lease === undefined) {
      this.#observed.delete(node);
      return { missing: `no blockmirror sidecar is registered on node ${node}` };
    }
    return this.#lookup(node, lease);
  }

  /**
   * Every node's sidecar as registered, live or not, by node name: a secondary's fence
   * must reach each node of the site, and a node whose sidecar is gone is one the fence
   * does not reach.
   */
  async all(): Promise<Map<string, SidecarLookup>> {
    const leases = await this.#client.listLeases(this.#namespace, `${SIDECAR_LABEL}=${SIDECAR_LABEL_VALUE}`);
    const out = new Map<string, SidecarLookup>();
    for (const lease of leases) {
      const node = lease.labels[NODE_LABEL];
      if (node !== undefined && node !== '' && lease.name === sidecarLeaseName(node)) out.set(node, this.#lookup(node, lease));
    }
    return out;
  }

  #lookup(node: string, lease: LeaseRecord): SidecarLookup {
    const unchangedMs = this.#now() - this.#observe(node, lease);
    const control = lease.annotations[CONTROL_ANNOTATION];
    if (control === undefined) return { missing: `the sidecar lease of node ${node} has no ${CONTROL_ANNOTATION} annotation` };
    // The sidecar always writes a duration; without one, the default it would have written.
    const ttlMs = (lease.leaseDurationSeconds ?? SIDECAR_LEASE_SECONDS) * 1000;
    if (unchangedMs >= ttlMs) {
      return {
        missing: `the sidecar on node ${node} has not renewed its registration for ${Math.round(unchangedMs / 1000)} s (lease duration ${ttlMs / 1000} s; last renewTime ${lease.renewTime?.toISOString() ?? 'never'} by the node's clock)`,
      };
    }
    return { found: { node, control, peer: lease.annotations[PEER_ANNOTATION] ?? '', splice: readNodeSplice(lease.labels, lease.annotations) } };
  }

  /** When this node's Lease was first seen as it is now (now, if it changed). */
  #observe(node: string, lease: LeaseRecord): number {
    const record = JSON.stringify([lease.name, lease.holder, lease.renewTime?.getTime(), lease.leaseDurationSeconds, lease.resourceVersion]);
    const seen = this.#observed.get(node);
    if (seen?.record === record) return seen.atMs;
    const atMs = this.#now();
    this.#observed.set(node, { record, atMs });
    return atMs;
  }
}
