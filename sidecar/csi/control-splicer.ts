import { status as GrpcStatus } from '@grpc/grpc-js';
import { ControlCallError, type ControlClient } from '../control/control-client.js';
import { FailedPreconditionError } from '../errors.js';
import type { NodeSplicer } from './node-splicer.js';

/**
 * The node splice as the CSI proxy sees it: the sidecar of the same node owns the
 * device-mapper tables and their records (one process swaps them, so its own
 * serialisation holds), and the proxy asks it over the control API.
 */
export class ControlSplicer implements NodeSplicer {
  readonly #client: ControlClient;

  constructor(client: ControlClient) {
    this.#client = client;
  }

  async stage(pv: string, device: string): Promise<{ dmDevice: string }> {
    const v = await this.#client.stageVolume(pv, device).catch(rethrow);
    return { dmDevice: v.dmDevice };
  }

  /** The sidecar refuses its volume calls on a node that cannot splice, with the reason. */
  async check(): Promise<void> {
    await this.#client.listVolumes().catch(rethrow);
  }

  async unstage(pv: string): Promise<void> {
    await this.#client.unstageVolume(pv).catch(rethrow);
  }
}

/** The sidecar's refusal (e.g. replication still attached) stays a refusal for the kubelet. */
function rethrow(err: unknown): never {
  if (err instanceof ControlCallError && err.grpcCode === GrpcStatus.FAILED_PRECONDITION) throw new FailedPreconditionError(err.message);
  throw err;
}
