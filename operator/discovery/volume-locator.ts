import { createHash } from 'node:crypto';
import { REPLICATE_KEY, replicationOptIn } from '../../sidecar/csi/replication-opt-in.js';
import type { KubeClient, VolumeInfo } from '../kube/kube-client.js';

export interface VolumeLocation {
  pvName: string;
  /** The node the volume lives on or is attached to. */
  node: string;
  /** What the sidecar opens: a file, a block device, or a CSI staging directory. */
  path: string;
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

export type LocateResult = { location: VolumeLocation } | { failure: LocateFailure };

/**
 * Resolves PVC → bound PV → node → path on that node:
 * - `local` PVs: the node from their nodeAffinity, the path as given (the test bed's
 *   PVs point at image files);
 * - CSI PVs: the node whose VolumeAttachment is attached, and where the kubelet stages
 *   the volume: the global mount of a Filesystem volume, the staging device of a Block one.
 */
type LocatorClient = Pick<KubeClient, 'getClaim' | 'getVolume' | 'attachmentsOf' | 'storageClassParameters'>;

export class VolumeLocator {
  readonly #client: LocatorClient;
  readonly #kubeletDir: string;

  constructor(client: LocatorClient, kubeletDir = '/var/lib/kubelet') {
    this.#client = client;
    this.#kubeletDir = kubeletDir;
  }

  async locate(namespace: string, pvcName: string): Promise<LocateResult> {
    const claim = await this.#client.getClaim(namespace, pvcName);
    if (claim === undefined) return fail('ClaimNotFound', `PersistentVolumeClaim ${namespace}/${pvcName} not found`, false);
    if (claim.volumeName === undefined) return fail('ClaimPending', `PersistentVolumeClaim ${namespace}/${pvcName} is not bound yet (${claim.phase ?? 'Pending'})`, false);
    const pv = await this.#client.getVolume(claim.volumeName);
    if (pv === undefined) return fail('VolumeNotFound', `PersistentVolume ${claim.volumeName} of claim ${namespace}/${pvcName} not found`, false);
    if (pv.localPath !== undefined) {
      if (pv.affinityNodes.length !== 1) {
        return fail('UnsupportedVolume', `local PersistentVolume ${pv.name} must name exactly one node (kubernetes.io/hostname) in its nodeAffinity`, true);
      }
      return { location: { pvName: pv.name, node: pv.affinityNodes[0]!, path: pv.localPath, ...(await this.#spliceOptIn(pv)) } };
    }
    if (pv.csi !== undefined) {
      const attached = (await this.#client.attachmentsOf(pv.name)).filter((a) => a.attached);
      if (attached.length === 0) return fail('VolumeNotAttached', `CSI volume ${pv.name} is not attached to any node yet`, false);
      const base = `${this.#kubeletDir}/plugins/kubernetes.io/csi`;
      const path =
        pv.volumeMode === 'Block'
          ? `${base}/volumeDevices/staging/${pv.name}`
          : `${base}/${pv.csi.driver}/${createHash('sha256').update(pv.csi.volumeHandle).digest('hex')}/globalmount`;
      return { location: { pvName: pv.name, node: attached[0]!.node, path, ...(await this.#spliceOptIn(pv)) } };
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

function fail(reason: LocateFailure['reason'], message: string, permanent: boolean): LocateResult {
  return { failure: { reason, message, permanent } };
}
