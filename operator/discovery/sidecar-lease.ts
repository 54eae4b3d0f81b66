/**
 * How a sidecar announces itself: a coordination.k8s.io Lease per node, renewed while
 * the sidecar runs, whose annotations carry its endpoints. It works the same in a real
 * cluster (the DaemonSet's sidecar registers its pod address) and in the test bed,
 * where sidecars are plain processes and there is no kubelet to ask.
 */
export const SIDECAR_LEASE_PREFIX = 'blockmirror-sidecar-';
export const SIDECAR_LABEL = 'app.kubernetes.io/component';
export const SIDECAR_LABEL_VALUE = 'sidecar';
export const NODE_LABEL = 'blockmirror.io/node';
export const CONTROL_ANNOTATION = 'blockmirror.io/control-endpoint';
export const PEER_ANNOTATION = 'blockmirror.io/peer-endpoint';
export const SIDECAR_LEASE_SECONDS = 40;
/**
 * The secondary pairs the sidecar holds, comma-separated (pair names have no commas): the
 * site's other sidecars redirect a primary's handshake for one of them to PEER_ANNOTATION.
 */
export const SECONDARY_PAIRS_ANNOTATION = 'blockmirror.io/secondary-pairs';

/** The annotation value for `pairs` (sorted, so an unchanged set writes the same value). */
export function secondaryPairsValue(pairs: readonly string[]): string {
  return [...new Set(pairs)].sort().join(',');
}

/** The secondary pairs a Lease registers. */
export function readSecondaryPairs(annotations: Readonly<Record<string, string>>): string[] {
  const v = annotations[SECONDARY_PAIRS_ANNOTATION] ?? '';
  return v === '' ? [] : v.split(',');
}

export function sidecarLeaseName(node: string): string {
  return SIDECAR_LEASE_PREFIX + node;
}

/** "true" or "false": whether the node can splice (select with -l blockmirror.io/splice-capable=false). */
export const SPLICE_CAPABLE_LABEL = 'blockmirror.io/splice-capable';
/** What the node lacks to splice, and what to do; only while it cannot. */
export const SPLICE_MISSING_ANNOTATION = 'blockmirror.io/splice-missing';

/** A node's splice capability as its sidecar registered it. */
export type NodeSplice = { capable: true } | { capable: false; reason: string };

/** The labels and annotations that register `splice` (a missing reason is removed with `undefined`). */
export function spliceLeaseFields(splice: NodeSplice): { labels: Record<string, string>; annotations: Record<string, string | undefined> } {
  return {
    labels: { [SPLICE_CAPABLE_LABEL]: String(splice.capable) },
    annotations: { [SPLICE_MISSING_ANNOTATION]: splice.capable ? undefined : splice.reason },
  };
}

/** The capability a Lease registers; a sidecar that registers none (older) cannot be trusted to splice. */
export function readNodeSplice(labels: Readonly<Record<string, string>>, annotations: Readonly<Record<string, string>>): NodeSplice {
  const label = labels[SPLICE_CAPABLE_LABEL];
  if (label === 'true') return { capable: true };
  if (label === 'false') return { capable: false, reason: annotations[SPLICE_MISSING_ANNOTATION] || 'the sidecar gave no reason' };
  return { capable: false, reason: `the sidecar registers no ${SPLICE_CAPABLE_LABEL} label (a blockmirror older than the operator?)` };
}
