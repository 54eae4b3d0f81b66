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

export function sidecarLeaseName(node: string): string {
  return SIDECAR_LEASE_PREFIX + node;
}
