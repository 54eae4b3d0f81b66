import { status as GrpcStatus, type sendUnaryData, type ServerErrorResponse } from '@grpc/grpc-js';
import type { Logger } from 'winston';
import type { ControlServiceHandlers } from '../../proto/gen/blockmirror/control/v1/ControlService.js';
import type { PairSpec__Output } from '../../proto/gen/blockmirror/control/v1/PairSpec.js';
import { BlockmirrorError, FailedPreconditionError, NotFoundError } from '../errors.js';
import type { PairManager } from '../pair/pair-manager.js';
import type { PairSpecInput } from '../pair/pair-spec.js';
import type { FenceHold, FenceRecord, FenceStore } from '../fence/fence-store.js';
import { fencedMessage } from '../fence/fenced-message.js';
import type { FencedVolume } from '../../proto/gen/blockmirror/control/v1/FencedVolume.js';
import { toMessage } from './pair-message.js';
import { lineageFromProto, lineageToProto } from './lineage-record.js';
import type { VolumeSplice } from '../splice/volume-splice.js';

export interface ControlServiceOptions {
  /** The node's device-mapper splice; null: the volume calls are refused. */
  splice?: VolumeSplice | null;
  /** Why the node cannot splice, if it cannot: the volume calls are refused with it. */
  spliceRefusal?: string;
  /** The node's fences of secondary volumes (they need no splice); absent: refused. */
  fences?: FenceStore;
  /**
   * The block device a StageVolume or a held ReportFencedVolume names, if the path policy
   * allows it, as the kernel's own node (/dev/loop3): the records keep that, and the
   * policy then trusts them. Absent: taken as given (unit tests of the handlers).
   */
  device?(path: string): Promise<string>;
}

/** The control API's handlers: typed from proto/, so a missing RPC fails to compile. */
export function controlService(pairs: PairManager, logger: Logger, opts: ControlServiceOptions = {}): ControlServiceHandlers {
  const splice = opts.splice ?? null;
  const spliceRefusal = opts.spliceRefusal;
  const device = opts.device ?? ((path: string) => Promise.resolve(path));
  const fenceStore = (): FenceStore => {
    if (opts.fences === undefined) throw new FailedPreconditionError('this sidecar keeps no fences');
    return opts.fences;
  };
  const spliced = (): VolumeSplice => {
    // The CSI proxy passes this on to the kubelet: it ends up in the pod's events.
    if (spliceRefusal !== undefined) throw new FailedPreconditionError(`node cannot splice: ${spliceRefusal}`);
    if (splice === null) throw new FailedPreconditionError('this sidecar has no node splice (start it with --nbd-helper)');
    return splice;
  };
  const unary =
    <Req, Res>(name: string, fn: (req: Req) => Promise<Res> | Res) =>
    (call: { request: Req }, callback: sendUnaryData<Res>): void => {
      Promise.resolve()
        .then(() => fn(call.request))
        .then(
          (res) => callback(null, res),
          (err: unknown) => callback(toGrpcError(err, name, logger)),
        );
    };
  return {
    CreatePair: unary('CreatePair', async (req) => {
      // Checked by continueLineage when the pair is made.
      const lineage = lineageFromProto(req.spec?.lineage ?? null);
      return toMessage(await pairs.create(fromSpec(req.spec), lineage ? { lineage } : {}));
    }),
    GetPair: unary('GetPair', (req) => toMessage(pairs.get(req.name))),
    ListPairs: unary('ListPairs', () => ({ pairs: pairs.list().map(toMessage) })),
    UpdatePair: unary('UpdatePair', async (req) => toMessage(await pairs.update(fromSpec(req.spec)))),
    DeletePair: unary('DeletePair', async (req) => {
      const lineage = await pairs.delete(req.name);
      return lineage ? { lineage: lineageToProto(lineage) } : {};
    }),
    PausePair: unary('PausePair', async (req) => toMessage(await pairs.setPaused(req.name, true))),
    ResumePair: unary('ResumePair', async (req) => toMessage(await pairs.setPaused(req.name, false))),
    DemotePair: unary('DemotePair', async (req) => toMessage(await pairs.demote(req.name, { force: req.force, timeoutMs: req.timeoutMs }))),
    PromotePair: unary('PromotePair', async (req) =>
      toMessage(
        await pairs.promote(req.name, {
          force: req.force,
          ...(req.peerAddress ? { peer: req.peerAddress } : {}),
          ...(req.peerPair ? { peerPair: req.peerPair } : {}),
          ...(req.nbdListen ? { nbdListen: req.nbdListen } : {}),
          ...(req.nbdSocket ? { nbdSocket: req.nbdSocket } : {}),
        }),
      ),
    ),
    DiscardMyData: unary('DiscardMyData', async (req) => toMessage(await pairs.discardMyData(req.name))),
    StageVolume: unary('StageVolume', async (req) => {
      // A secondary's volume is written by its pair only: never put under a filesystem.
      const fence = await opts.fences?.get(req.pv);
      if (fence !== undefined) throw new FailedPreconditionError(fencedMessage(fence));
      // The path first: refused on any node, whether or not it can splice.
      const dev = await device(req.device);
      return spliced().stage(req.pv, dev);
    }),
    AttachVolume: unary('AttachVolume', (req) => spliced().attach(req.pv, req.pair, pairs)),
    DetachVolume: unary('DetachVolume', (req) => spliced().detach(req.pv, pairs)),
    UnstageVolume: unary('UnstageVolume', async (req) => {
      await spliced().unstage(req.pv, pairs);
      return {};
    }),
    ListVolumes: unary('ListVolumes', async () => ({ volumes: await spliced().list() })),
    FenceVolume: unary('FenceVolume', async (req) => {
      const r = await fenceStore().fence(req.pv, req.pair, req.volume);
      logger.info('volume fenced', { pv: r.pv, volume: r.volume, pair: r.pair });
      return fencedVolume(r);
    }),
    UnfenceVolume: unary('UnfenceVolume', async (req) => {
      const had = await fenceStore().get(req.pv);
      await fenceStore().unfence(req.pv);
      if (had !== undefined) logger.info('volume unfenced', { pv: req.pv, pair: had.pair });
      return {};
    }),
    GetFencedVolume: unary('GetFencedVolume', async (req) => {
      const r = await fenceStore().get(req.pv);
      if (r === undefined) throw new NotFoundError(`volume ${req.pv} is not fenced`);
      return fencedVolume(r);
    }),
    ListFencedVolumes: unary('ListFencedVolumes', async () => ({ volumes: (await fenceStore().list()).map(fencedVolume) })),
    ReportFencedVolume: unary('ReportFencedVolume', async (req) => {
      const held = req.hold === 'held' && req.device !== '' ? await device(req.device) : req.device;
      const r = await fenceStore().report(req.pv, req.hold as FenceHold, held);
      logger.info('fenced volume reported', { pv: r.pv, pair: r.pair, hold: r.hold, device: r.device });
      return fencedVolume(r);
    }),
  };
}

function fencedVolume(r: FenceRecord): FencedVolume {
  return { pv: r.pv, pair: r.pair, hold: r.hold, device: r.device, volume: r.volume };
}

function fromSpec(spec: PairSpec__Output | null): PairSpecInput {
  if (spec === null) return {};
  const role = spec.role === 'ROLE_PRIMARY' ? 'primary' : spec.role === 'ROLE_SECONDARY' ? 'secondary' : undefined;
  const mode = spec.mode === 'MODE_ASYNC' ? 'async' : spec.mode === 'MODE_SYNC' ? 'sync' : undefined;
  return {
    name: spec.name,
    volumePath: spec.volumePath,
    ...(role ? { role } : {}),
    ...(mode ? { mode } : {}),
    ...(spec.peerAddress ? { peer: spec.peerAddress } : {}),
    ...(spec.nbdListen ? { nbdListen: spec.nbdListen } : {}),
    ...(spec.nbdSocket ? { nbdSocket: spec.nbdSocket } : {}),
    ...(spec.blockSize ? { blockSize: spec.blockSize } : {}),
    ...(spec.peerPair ? { peerPair: spec.peerPair } : {}),
    ...(spec.writeTimeoutMs ? { writeTimeoutMs: spec.writeTimeoutMs } : {}),
    ...(spec.resyncBytesPerSecond ? { resyncBytesPerSecond: spec.resyncBytesPerSecond } : {}),
    ...(spec.groupIntervalMs ? { groupIntervalMs: spec.groupIntervalMs } : {}),
    ...(spec.maxCoordinationMs ? { maxCoordinationMs: spec.maxCoordinationMs } : {}),
    ...(spec.maxDrainMs ? { maxDrainMs: spec.maxDrainMs } : {}),
    ...(spec.consistencyGroup ? { consistencyGroup: spec.consistencyGroup } : {}),
    ...(spec.remoteIdentity ? { remoteIdentity: spec.remoteIdentity } : {}),
    ...(spec.peerTls ? { peerTls: { cert: spec.peerTls.certPem, key: spec.peerTls.keyPem, ca: spec.peerTls.caPem } } : {}),
  };
}

const CODES: Partial<Record<BlockmirrorError['code'], GrpcStatus>> = {
  INVALID_ARGUMENT: GrpcStatus.INVALID_ARGUMENT,
  OUT_OF_RANGE: GrpcStatus.OUT_OF_RANGE,
  NOT_FOUND: GrpcStatus.NOT_FOUND,
  ALREADY_EXISTS: GrpcStatus.ALREADY_EXISTS,
  GEOMETRY_MISMATCH: GrpcStatus.FAILED_PRECONDITION,
  STATE_CORRUPT: GrpcStatus.FAILED_PRECONDITION,
  FAILED_PRECONDITION: GrpcStatus.FAILED_PRECONDITION,
  DEVICE_IN_USE: GrpcStatus.FAILED_PRECONDITION,
  // Not INVALID_ARGUMENT: the request is well formed, and another node's sidecar (or this
  // one with other flags) would take it; this node's policy forbids touching that path.
  PATH_NOT_ALLOWED: GrpcStatus.PERMISSION_DENIED,
  UNAVAILABLE: GrpcStatus.UNAVAILABLE,
};

/** Only deliberate errors reach the client with their message; the rest are logged. */
function toGrpcError(err: unknown, method: string, logger: Logger): ServerErrorResponse {
  const code = err instanceof BlockmirrorError ? CODES[err.code] : undefined;
  if (code !== undefined) return Object.assign(new Error((err as Error).message), { code, details: (err as Error).message });
  logger.error('control call failed', { method, error: (err as Error)?.stack ?? String(err) });
  return Object.assign(new Error('internal error'), { code: GrpcStatus.UNKNOWN, details: 'internal error (see sidecar log)' });
}
