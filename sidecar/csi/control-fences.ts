import { status as GrpcStatus } from '@grpc/grpc-js';
import { ControlCallError, type ControlClient } from '../control/control-client.js';
import { BlockmirrorError } from '../errors.js';
import type { FenceHold } from '../fence/fence-store.js';
import type { NodeFences, VolumeFence } from './node-fences.js';

/** The node's fences could not be read: nothing is staged or published until they can. */
export class FenceUnknownError extends BlockmirrorError {
  constructor(pv: string, cause: unknown) {
    super('UNAVAILABLE', `cannot tell whether volume ${pv} is the fenced secondary of a replication pair (this node's blockmirror sidecar: ${(cause as Error).message}); retried`, { cause });
    this.name = 'FenceUnknownError';
  }
}

/** The fences as the node's sidecar keeps them, asked over its control socket. */
export class ControlFences implements NodeFences {
  readonly #client: ControlClient;

  constructor(client: ControlClient) {
    this.#client = client;
  }

  async fenceOf(pv: string): Promise<VolumeFence | undefined> {
    try {
      const f = await this.#client.getFencedVolume(pv);
      return { pv: f.pv, pair: f.pair, volume: f.volume };
    } catch (err) {
      if (notFound(err)) return undefined;
      throw new FenceUnknownError(pv, err);
    }
  }

  async report(pv: string, hold: FenceHold, device = ''): Promise<boolean> {
    try {
      await this.#client.reportFencedVolume(pv, hold, device);
      return true;
    } catch (err) {
      if (notFound(err)) return false;
      throw err;
    }
  }
}

function notFound(err: unknown): boolean {
  return err instanceof ControlCallError && err.grpcCode === GrpcStatus.NOT_FOUND;
}
