import type { FenceHold } from '../fence/fence-store.js';

/** A volume the operator fenced on this node: the secondary of a replication pair. */
export interface VolumeFence {
  pv: string;
  /** namespace/name of the secondary ReplicationPair. */
  pair: string;
  /** The PersistentVolume's name, for messages. */
  volume: string;
}

/**
 * What the CSI node proxy needs from the node's fences of secondary volumes. The
 * sidecar's fence store implements it over the control socket; tests pass a fake.
 */
export interface NodeFences {
  /**
   * The fence of `pv`, or undefined when it has none. Rejects when it cannot tell (the
   * sidecar unreachable): a volume is never staged for writing on a guess.
   */
  fenceOf(pv: string): Promise<VolumeFence | undefined>;
  /**
   * Tells the node's sidecar what the proxy now holds of a fenced volume (when `held`,
   * the device as the driver published it: the sidecar checks and resolves it). Resolves
   * false when the volume is not fenced (any more).
   */
  report(pv: string, hold: FenceHold, device?: string): Promise<boolean>;
}
