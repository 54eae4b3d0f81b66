import type { SitePairLocator } from '../../sidecar/replication/secondary/site-pair-locator.js';
import type { KubeClient } from '../kube/kube-client.js';
import { NODE_LABEL, PEER_ANNOTATION, readSecondaryPairs, SIDECAR_LABEL, SIDECAR_LABEL_VALUE, sidecarLeaseName } from './sidecar-lease.js';

export interface LeasePairLocatorOptions {
  client: Pick<KubeClient, 'listLeases'>;
  /** Namespace of the site's sidecar registration Leases. */
  namespace: string;
  /** This sidecar's node: its own Lease is never a redirect target. */
  node: string;
}

/**
 * Finds the sidecar of this site that holds a secondary pair from the sidecars'
 * registration Leases (SECONDARY_PAIRS_ANNOTATION). A Lease that is no longer renewed
 * still names its holder: the pair's data lives on that node, so the primary is sent
 * there and retries until the sidecar is back; only an unknown pair is refused.
 */
export class LeasePairLocator implements SitePairLocator {
  readonly #opts: LeasePairLocatorOptions;

  constructor(opts: LeasePairLocatorOptions) {
    this.#opts = opts;
  }

  async holderOf(pairId: string): Promise<string | undefined> {
    const leases = await this.#opts.client.listLeases(this.#opts.namespace, `${SIDECAR_LABEL}=${SIDECAR_LABEL_VALUE}`);
    const holders = leases
      // A Lease counts only under its node's name, the one its sidecar alone may write.
      .filter((l) => l.labels[NODE_LABEL] !== this.#opts.node && l.name === sidecarLeaseName(l.labels[NODE_LABEL] ?? '') && (l.annotations[PEER_ANNOTATION] ?? '') !== '' && readSecondaryPairs(l.annotations).includes(pairId))
      // Two holders happen only while a pair moves between nodes: the one renewed last.
      .sort((a, b) => (b.renewTime?.getTime() ?? 0) - (a.renewTime?.getTime() ?? 0));
    return holders[0]?.annotations[PEER_ANNOTATION];
  }
}
