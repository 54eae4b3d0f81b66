import { Metadata, type ServiceError } from '@grpc/grpc-js';
import type { ControlServiceClient } from '../../proto/gen/blockmirror/control/v1/ControlService.js';
import type { Pair__Output } from '../../proto/gen/blockmirror/control/v1/Pair.js';
import type { DeletePairRequest } from '../../proto/gen/blockmirror/control/v1/DeletePairRequest.js';
import type { DeletePairResponse__Output } from '../../proto/gen/blockmirror/control/v1/DeletePairResponse.js';
import type { ListPairsRequest } from '../../proto/gen/blockmirror/control/v1/ListPairsRequest.js';
import type { ListPairsResponse__Output } from '../../proto/gen/blockmirror/control/v1/ListPairsResponse.js';
import type { PairSpec } from '../../proto/gen/blockmirror/control/v1/PairSpec.js';
import type { PromotePairRequest } from '../../proto/gen/blockmirror/control/v1/PromotePairRequest.js';
import type { ListVolumesRequest } from '../../proto/gen/blockmirror/control/v1/ListVolumesRequest.js';
import type { ListVolumesResponse__Output } from '../../proto/gen/blockmirror/control/v1/ListVolumesResponse.js';
import type { SplicedVolume__Output } from '../../proto/gen/blockmirror/control/v1/SplicedVolume.js';
import type { FencedVolume__Output } from '../../proto/gen/blockmirror/control/v1/FencedVolume.js';
import type { ListFencedVolumesRequest } from '../../proto/gen/blockmirror/control/v1/ListFencedVolumesRequest.js';
import type { ListFencedVolumesResponse__Output } from '../../proto/gen/blockmirror/control/v1/ListFencedVolumesResponse.js';
import { BlockmirrorError } from '../errors.js';
import type { VolumeLineage } from '../replication/lineage/continue-lineage.js';
import { lineageFromProto } from './lineage-record.js';
import { channelCredentials, type ExpectedServer, type TlsFiles } from '../grpc/grpc-credentials.js';
import { loadControlProto } from '../grpc/load-proto.js';

export class ControlCallError extends BlockmirrorError {
  readonly grpcCode: number;
  constructor(message: string, grpcCode: number, cause: unknown) {
    super('UNAVAILABLE', message, { cause });
    this.name = 'ControlCallError';
    this.grpcCode = grpcCode;
  }
}

export interface ControlClientOptions {
  tls?: TlsFiles;
  /**
   * The name the sidecar's certificate must carry, when it is dialled at an address its
   * certificate does not name (a pod or node IP): one certificate then serves every node.
   */
  serverName?: string;
  /**
   * The identity the sidecar's certificate must carry besides its CA and name (the
   * operator: its site's sidecar-control), so a peer certificate of the same CA cannot
   * pose as a sidecar's control port.
   */
  expectServer?: ExpectedServer;
  /** Deadline of each call. */
  timeoutMs?: number;
  /**
   * Deadline of the splice's calls (stage, attach, detach, unstage): they wait for the
   * volume's I/O in flight to drain through a table swap, which on a loaded node takes
   * longer than a bookkeeping call. A caller that gives up early does not stop the work
   * on the node; it only loses the answer. Default 120 s.
   */
  spliceTimeoutMs?: number;
}

type Unary<Req, Res> = (req: Req, md: Metadata, opts: { deadline: Date }, cb: (err: ServiceError | null, res?: Res) => void) => unknown;

/** Promise-returning client for a sidecar's control API; every call has a deadline. */
export class ControlClient {
  readonly #client: ControlServiceClient;
  readonly #timeoutMs: number;
  readonly #spliceTimeoutMs: number;

  constructor(target: string, opts: ControlClientOptions = {}) {
    const Ctor = loadControlProto().blockmirror.control.v1.ControlService;
    const verifyAs = opts.serverName !== undefined && opts.serverName !== '' && opts.tls !== undefined && !target.startsWith('unix:') ? opts.serverName : undefined;
    this.#client = new Ctor(target, channelCredentials(target, opts.tls, opts.expectServer), verifyAs !== undefined ? { 'grpc.ssl_target_name_override': verifyAs, 'grpc.default_authority': verifyAs } : {});
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
    this.#spliceTimeoutMs = opts.spliceTimeoutMs ?? 120_000;
  }

  createPair(spec: PairSpec): Promise<Pair__Output> {
    return this.#call(this.#client.createPair, { spec });
  }

  updatePair(spec: PairSpec): Promise<Pair__Output> {
    return this.#call(this.#client.updatePair, { spec });
  }

  getPair(name: string): Promise<Pair__Output> {
    return this.#call(this.#client.getPair, { name });
  }

  async listPairs(): Promise<Pair__Output[]> {
    return (await this.#call<ListPairsRequest, ListPairsResponse__Output>(this.#client.listPairs, {})).pairs;
  }

  /** Deletes the pair; answers the lineage its volume holds (null: nothing to continue). */
  async deletePair(name: string): Promise<VolumeLineage | null> {
    const r = await this.#call<DeletePairRequest, DeletePairResponse__Output>(this.#client.deletePair, { name });
    return lineageFromProto(r.lineage);
  }

  pausePair(name: string): Promise<Pair__Output> {
    return this.#call(this.#client.pausePair, { name });
  }

  resumePair(name: string): Promise<Pair__Output> {
    return this.#call(this.#client.resumePair, { name });
  }

  /** Waits for the data to be shipped (up to `timeoutMs`, default 60 s): the call's deadline is past that. */
  demotePair(name: string, opts: { force?: boolean; timeoutMs?: number } = {}): Promise<Pair__Output> {
    const wait = opts.timeoutMs ?? 60_000;
    return this.#call(this.#client.demotePair, { name, force: opts.force ?? false, timeoutMs: wait }, Math.max(this.#timeoutMs, wait + 10_000));
  }

  promotePair(req: PromotePairRequest): Promise<Pair__Output> {
    return this.#call(this.#client.promotePair, req);
  }

  discardMyData(name: string): Promise<Pair__Output> {
    return this.#call(this.#client.discardMyData, { name });
  }

  stageVolume(pv: string, device: string): Promise<SplicedVolume__Output> {
    return this.#call(this.#client.stageVolume, { pv, device }, this.#spliceTimeoutMs);
  }

  attachVolume(pv: string, pair: string): Promise<SplicedVolume__Output> {
    return this.#call(this.#client.attachVolume, { pv, pair }, this.#spliceTimeoutMs);
  }

  detachVolume(pv: string): Promise<SplicedVolume__Output> {
    return this.#call(this.#client.detachVolume, { pv }, this.#spliceTimeoutMs);
  }

  async unstageVolume(pv: string): Promise<void> {
    await this.#call(this.#client.unstageVolume, { pv }, this.#spliceTimeoutMs);
  }

  async listVolumes(): Promise<SplicedVolume__Output[]> {
    return (await this.#call<ListVolumesRequest, ListVolumesResponse__Output>(this.#client.listVolumes, {})).volumes;
  }

  fenceVolume(pv: string, pair: string, volume: string): Promise<FencedVolume__Output> {
    return this.#call(this.#client.fenceVolume, { pv, pair, volume });
  }

  async unfenceVolume(pv: string): Promise<void> {
    await this.#call(this.#client.unfenceVolume, { pv });
  }

  getFencedVolume(pv: string): Promise<FencedVolume__Output> {
    return this.#call(this.#client.getFencedVolume, { pv });
  }

  async listFencedVolumes(): Promise<FencedVolume__Output[]> {
    return (await this.#call<ListFencedVolumesRequest, ListFencedVolumesResponse__Output>(this.#client.listFencedVolumes, {})).volumes;
  }

  reportFencedVolume(pv: string, hold: string, device: string): Promise<FencedVolume__Output> {
    return this.#call(this.#client.reportFencedVolume, { pv, hold, device });
  }

  close(): void {
    this.#client.close();
  }

  #call<Req, Res>(method: Unary<Req, Res>, req: Req, timeoutMs = this.#timeoutMs): Promise<Res> {
    return new Promise((resolve, reject) => {
      method.call(this.#client, req, new Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (err, res) => {
        // grpc-js may end its connection errors with an empty "Resolution note:".
        if (err) return reject(new ControlCallError((err.details || err.message).replace(/\s*Resolution note:\s*$/, ''), err.code, err));
        resolve(res as Res);
      });
    });
  }
}
