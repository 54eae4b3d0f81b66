/**
 * Why a fenced volume is not published for writing (nor spliced): the CSI proxy refuses
 * NodePublish with it, so the kubelet puts it in the pod's FailedMount event word for word.
 */
export function fencedMessage(fence: { pv: string; pair: string; volume?: string }): string {
  return `volume ${fence.volume || fence.pv} is the secondary of replication pair ${fence.pair}: blocks are written under it, so it cannot be published for writing until it is promoted`;
}
