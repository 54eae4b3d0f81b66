/**
 * What the CSI node proxy needs from the device-mapper layer. The sidecar's volume
 * splice implements it; tests pass a fake.
 */
export interface NodeSplicer {
  /**
   * Creates (idempotently) /dev/mapper/blockmirror-<pv> over the block device at `device`
   * (the driver's published path: the sidecar resolves it to the kernel's device).
   */
  stage(pv: string, device: string): Promise<{ dmDevice: string }>;
  /**
   * Refuses (FailedPreconditionError, with the reason) when the node cannot splice: asked
   * before the driver stages anything, so a refused volume leaves nothing behind.
   */
  check?(): Promise<void>;
  /** Removes it; refuses (FailedPreconditionError) while replication is attached. */
  unstage(pv: string): Promise<void>;
}
