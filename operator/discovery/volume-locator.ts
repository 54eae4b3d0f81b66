import { pvNameForVolume } from '../../sidecar/csi/pv-name.js';
import { REPLICATE_KEY, replicationOptIn } from '../../sidecar/csi/replication-opt-in.js';
import type { KubeClient, VolumeInfo } from '../kube/kube-client.js';

export interface VolumeLocation {
  pvName: string;
  /** The node the volume lives on, is attached to, or is used on. */
  node: string;
  /** A `local` PV: what the sidecar opens (a file or a block device). */
  path?: string;
  /**
   * A CSI PV: reached on its node only through the splice the CSI node proxy staged it
   * on, found by `splicePv` (the proxy's name for the volume id).
   */
  csi?: { driver: string; volumeHandle: string; splicePv: string; volumeMode: 'Filesystem' | 'Block' };
  /** Pods (namespace/name) scheduled with the claim: they write to the volume. */
  usedBy: string[];
  /**
   * Where the volume opts in to the splice (its writes must go through the node's tap),
   * e.g. "StorageClass fast's parameter blockmirror.io/replicate"; absent: it does not.
   */
  spliceOptIn?: string;
}

/** Why a volume cannot be located yet; `permanent` ones will not fix themselves. */
export interface LocateFailure {
  reason: 'ClaimNotFound' | 'ClaimPending' | 'VolumeNotFound' | 'VolumeNotAttached' | 'UnsupportedVolume';
  message: string;
  permanent: boolean;
}

/** A CSI volume not (yet) on any node: enough for a caller that places it itself (a fenced secondary). */
export interface UnplacedCsiVolume {
  pvName: string;
  csi: NonNullable<VolumeLocation['csi']>;
}

export type LocateResult = { location: VolumeLocation } | { failure: LocateFailure; unplaced?: UnplacedCsiVolume };

/**
 * Resolves PVC → bound PV → node:
 * - `local` PVs: the node from their nodeAffinity, the path as given (the test bed's
 *   PVs point at image files);
 * - CSI PVs: the node whose VolumeAttachment is attached, or, for a driver without
 *   attach (no VolumeAttachment is ever made), the node of a pod scheduled with the
 *   claim. Never a kubelet path: what the application writes through there would not
 *   pass the tap; the sidecar finds the device in the splice's record instead.
 */
type LocatorClient = Pick<KubeClient, 'getClaim' | 'getVolume' | 'attachmentsOf' | 'storageClassParameters' | 'podsUsingClaim'>;

export class VolumeLocator {
  readonly #client: LocatorClient;

  constructor(client: LocatorClient) {
    this.#client = client;
  }

  async locate(namespace: string, pvcName: string): Promise<LocateResult> {
    const claim = await this.#client.getClaim(namespace, pvcName);
    if (claim === undefined) return fail('ClaimNotFound', `PersistentVolumeClaim ${namespace}/${pvcName} not found`, false);
    if (claim.volumeName === undefined) return fail('ClaimPending', `PersistentVolumeClaim ${namespace}/${pvcName} is not bound yet (${claim.phase ?? 'Pending'})`, false);
    const pv = await this.#client.getVolume(claim.volumeName);
    if (pv === undefined) return fail('VolumeNotFound', `PersistentVolume ${claim.volumeName} of claim ${namespace}/${pvcName} not found`, false);
    const pods = await this.#client.podsUsingClaim(namespace, pvcName);
    const usedBy = pods.map((p) => `${p.namespace}/${p.name}`);
    if (pv.localPath !== undefined) {
      if (pv.affinityNodes.length !== 1) {
        return fail('UnsupportedVolume', `local PersistentVolume ${pv.name} must name exactly one node (kubernetes.io/hostname) in its nodeAffinity`, true);
      }
      return { location: { pvName: pv.name, node: pv.affinityNodes[0]!, path: pv.localPath, usedBy, ...(await this.#spliceOptIn(pv)) } };
    }
    if (pv.csi !== undefined) {
      const attached = (await this.#client.attachmentsOf(pv.name)).filter((a) => a.attached);
      const node = attached[0]?.node ?? pods.find((p) => p.node !== undefined)?.node;
      const csi = { driver: pv.csi.driver, volumeHandle: pv.csi.volumeHandle, splicePv: pvNameForVolume(pv.csi.volumeHandle), volumeMode: pv.volumeMode };
      if (node === undefined) {
        return { ...fail('VolumeNotAttached', `CSI volume ${pv.name} is neither attached to a node (no VolumeAttachment) nor used by a scheduled pod yet`, false), unplaced: { pvName: pv.name, csi } };
      }
      return { location: { pvName: pv.name, node, csi, usedBy, ...(await this.#spliceOptIn(pv)) } };
    }
    return fail('UnsupportedVolume', `PersistentVolume ${pv.name} is neither a local nor a CSI volume`, true);
  }

  /**
   * The opt-in the CSI node proxy reads (the volume_context, where drivers copy their
   * StorageClass's parameters), else the PV's StorageClass's own parameter: a driver that
   * does not copy parameters, or a `local` PV, opts in through its class.
   */
  async #spliceOptIn(pv: VolumeInfo): Promise<{ spliceOptIn?: string }> {
    if (replicationOptIn(pv.csi?.volumeAttributes)) return { spliceOptIn: `PersistentVolume ${pv.name}'s volume attribute ${REPLICATE_KEY}` };
    if (pv.storageClassName === undefined) return {};
    // A class deleted since the volume was made no longer says anything.
    if (replicationOptIn(await this.#client.storageClassParameters(pv.storageClassName))) return { spliceOptIn: `StorageClass ${pv.storageClassName}'s parameter ${REPLICATE_KEY}` };
    return {};
  }
}

function fail(reason: LocateFailure['reason'], message: string, permanent: boolean): { failure: LocateFailure } {
  return { failure: { reason, message, permanent } };
}
