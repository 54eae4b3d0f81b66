import { Server, status as GrpcStatus, type handleUnaryCall, type ServerUnaryCall, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { mkdir, rmdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'winston';
import type { NodeStageVolumeRequest__Output } from '../../proto/gen/csi/v1/NodeStageVolumeRequest.js';
import type { NodePublishVolumeRequest__Output } from '../../proto/gen/csi/v1/NodePublishVolumeRequest.js';
import type { VolumeCapability, VolumeCapability__Output } from '../../proto/gen/csi/v1/VolumeCapability.js';
import { AlreadyExistsError, FailedPreconditionError } from '../errors.js';
import type { FenceHold } from '../fence/fence-store.js';
import { fencedMessage } from '../fence/fenced-message.js';
import type { CsiProto } from '../grpc/load-proto.js';
import { resolveBlockDevice } from './block-device.js';
import { listenCsi, parseCsiEndpoint, shutdownServer, type CsiEndpoint } from './csi-endpoint.js';
import { DriverCallError } from './csi-status.js';
import { DriverConnection, type DriverCallOptions } from './driver-connection.js';
import { HostMounts } from './host-mounts.js';
import { KeyedLock } from './keyed-lock.js';
import type { NodeFences, VolumeFence } from './node-fences.js';
import type { NodeSplicer } from './node-splicer.js';
import { PlaceholderPublisher } from './placeholder-publisher.js';
import { pvNameForVolume } from './pv-name.js';
import { forwardUnary, onBehalfOf, rawUnary, rawUnaryService } from './raw-forwarding.js';
import { replicationOptIn, REPLICATE_KEY } from './replication-opt-in.js';
import { requireAccessType, requireField, type AccessType } from './volume-capability.js';
import { VolumeRecordStore, type VolumeRecord } from './volume-record-store.js';

/** Every unary CSI service is forwarded; Node's volume calls are looked at first. */
const SERVICES = ['csi.v1.Identity', 'csi.v1.Node', 'csi.v1.Controller', 'csi.v1.GroupController'];

export interface NodeProxyOptions {
  /** The loaded csi.proto (loadCsiProto). */
  csi: CsiProto;
  /** The socket the proxy serves (the one the kubelet was told about): unix:///path. */
  endpoint: string;
  /** The driver's own socket: unix:///path. */
  driver: string;
  /**
   * Records of opted-in volumes, and the private paths the driver stages and publishes
   * them at. The driver must see these paths as the proxy does (same host path, mount
   * propagation both ways).
   */
  stateDir: string;
  /** The device-mapper layer. Without one, opted-in volumes are refused (FAILED_PRECONDITION). */
  splicer?: NodeSplicer;
  /** The node's fences of secondary volumes. Without them no volume is treated as fenced. */
  fences?: NodeFences;
  mounts?: HostMounts;
  logger: Logger;
  /** Deadline of the proxy's own driver calls when its caller set none (default 2 min, the kubelet's). */
  callTimeoutMs?: number;
}

/**
 * The CSI node proxy: serves CSI on the kubelet's socket and forwards every call to the
 * driver's socket unchanged, except for volumes that opt in to replication
 * (volume_context `blockmirror.io/replicate: "true"`). Those the driver stages and
 * publishes as a raw block device at the proxy's private paths; the splicer puts
 * /dev/mapper/blockmirror-<pv> over that device, and the kubelet's staging and target
 * paths lead to the spliced device instead (its filesystem mounted, or its node bound).
 * A volume the operator fenced (a replication pair's secondary, whatever its class) is
 * staged as the raw device only, held for the pair, and never published for writing.
 */
export class NodeProxy {
  readonly #server: Server;
  readonly #driver: DriverConnection;
  readonly endpoint: CsiEndpoint;

  private constructor(server: Server, driver: DriverConnection, endpoint: CsiEndpoint) {
    this.#server = server;
    this.#driver = driver;
    this.endpoint = endpoint;
  }

  static async start(o: NodeProxyOptions): Promise<NodeProxy> {
    const driver = new DriverConnection(parseCsiEndpoint(o.driver).address);
    const server = new Server();
    const volumes = new ProxiedVolumes(o, driver);
    for (const service of SERVICES) {
      const def = rawUnaryService(o.csi.definition, service);
      const handlers: UntypedServiceImplementation = {};
      for (const [name, m] of Object.entries(def)) handlers[name] = logCall(o, name, m.path, volumes.handler(name, m.path) ?? forwardUnary(driver, m.path, o.logger));
      server.addService(def, handlers);
    }
    let endpoint: CsiEndpoint;
    try {
      endpoint = await listenCsi(server, o.endpoint);
    } catch (err) {
      driver.close();
      throw err;
    }
    o.logger.info('CSI node proxy ready', { endpoint: endpoint.address, driver: o.driver, splicer: o.splicer !== undefined, fences: o.fences !== undefined, optInKey: REPLICATE_KEY });
    return new NodeProxy(server, driver, endpoint);
  }

  async stop(): Promise<void> {
    await shutdownServer(this.#server);
    this.#driver.close();
  }
}

/** Calls the kubelet makes often, logged at debug only. */
const FREQUENT = new Set(['NodeGetCapabilities', 'NodeGetVolumeStats', 'Probe', 'GetPluginInfo', 'GetPluginCapabilities']);

/**
 * Logs each Node call the proxy receives (method and volume id): the record that the
 * kubelet reaches the driver through the proxy, not around it.
 */
function logCall(o: NodeProxyOptions, method: string, path: string, handler: handleUnaryCall<Buffer, Buffer>): handleUnaryCall<Buffer, Buffer> {
  if (!path.startsWith('/csi.v1.Node/') && !path.startsWith('/csi.v1.Identity/')) return handler;
  const m = (o.csi.grpc.csi.v1.Node.service as unknown as Record<string, { requestDeserialize(b: Buffer): { volumeId?: string } } | undefined>)[method];
  return (call, callback) => {
    let volumeId = '';
    try {
      volumeId = m?.requestDeserialize(call.request).volumeId ?? '';
    } catch {
      // A request the proto cannot read is the handler's to refuse.
    }
    o.logger.log(FREQUENT.has(method) ? 'debug' : 'info', 'CSI call', { method, ...(volumeId !== '' ? { volumeId } : {}) });
    handler(call, callback);
  };
}

/**
 * The Node calls the proxy answers itself: for volumes that opt in (the splice), and for
 * volumes the operator fenced as a replication pair's secondary (the raw device only,
 * never published for writing).
 */
class ProxiedVolumes {
  readonly #o: NodeProxyOptions;
  readonly #driver: DriverConnection;
  readonly #node: CsiProto['grpc']['csi']['v1']['Node']['service'];
  readonly #records: VolumeRecordStore;
  readonly #mounts: HostMounts;
  readonly #placeholders: PlaceholderPublisher;
  readonly #lock = new KeyedLock();
  readonly #timeoutMs: number;
  #driverStages: Promise<boolean> | undefined;

  constructor(o: NodeProxyOptions, driver: DriverConnection) {
    this.#o = o;
    this.#driver = driver;
    this.#node = o.csi.grpc.csi.v1.Node.service;
    this.#records = new VolumeRecordStore(join(o.stateDir, 'volumes'));
    this.#mounts = o.mounts ?? new HostMounts();
    this.#placeholders = new PlaceholderPublisher({ dir: join(o.stateDir, 'placeholders'), mounts: this.#mounts, logger: o.logger });
    this.#timeoutMs = o.callTimeoutMs ?? 120_000;
  }

  /** The handler for a Node method the proxy looks into, or undefined to forward it blindly. */
  handler(method: string, path: string): handleUnaryCall<Buffer, Buffer> | undefined {
    const node = this.#node;
    const log = this.#o.logger;
    const forward = (raw: Buffer, call: ServerUnaryCall<Buffer, Buffer>, signal: AbortSignal): Promise<Buffer> => this.#driver.raw(path, raw, onBehalfOf(call, signal));
    if (!path.startsWith('/csi.v1.Node/')) return undefined;
    switch (method) {
      case 'NodeGetCapabilities':
        return rawUnary(path, log, async (raw, call, signal) => {
          const res = await forward(raw, call, signal);
          const caps = node.NodeGetCapabilities.responseDeserialize(res);
          const stages = caps.capabilities.some((c) => c.rpc?.type === 'STAGE_UNSTAGE_VOLUME');
          this.#driverStages = Promise.resolve(stages);
          // Staging is where the splice (or the fence) goes in: the kubelet must call it, whatever the driver does.
          if (stages) return res;
          return node.NodeGetCapabilities.responseSerialize({ capabilities: [...caps.capabilities, { rpc: { type: 'STAGE_UNSTAGE_VOLUME' } }] });
        });
      case 'NodeStageVolume':
        return rawUnary(path, log, async (raw, call, signal) => {
          const req = node.NodeStageVolume.requestDeserialize(raw);
          const opts = onBehalfOf(call, signal, this.#timeoutMs);
          // Asked first, whatever the volume's class: a secondary is fenced even when it does not opt in.
          const fence = await this.#fenceOf(req.volumeId);
          if (fence !== undefined) return node.NodeStageVolume.responseSerialize(await this.#stageFenced(req, fence, opts));
          const rec = await this.#recordOf(req.volumeId);
          if (rec?.fence !== undefined && !replicationOptIn(req.volumeContext)) {
            // Unfenced since its stage, and not the proxy's to stage otherwise: left as it is (see #unfenceInPlace).
            return node.NodeStageVolume.responseSerialize({});
          }
          if (replicationOptIn(req.volumeContext)) return node.NodeStageVolume.responseSerialize(await this.#stage(req, opts));
          if (await this.#stages(opts)) return forward(raw, call, signal);
          return node.NodeStageVolume.responseSerialize({});
        });
      case 'NodeUnstageVolume':
        return rawUnary(path, log, async (raw, call, signal) => {
          const req = node.NodeUnstageVolume.requestDeserialize(raw);
          const opts = onBehalfOf(call, signal, this.#timeoutMs);
          const rec = await this.#recordOf(req.volumeId);
          let res: Buffer;
          if (rec !== undefined) res = node.NodeUnstageVolume.responseSerialize(await this.#unstage(rec, opts));
          else if (await this.#stages(opts)) res = await forward(raw, call, signal);
          else res = node.NodeUnstageVolume.responseSerialize({});
          // Nothing of the volume is held here any more, whatever it was staged as.
          if (req.volumeId !== '') await this.#report(pvNameForVolume(req.volumeId), '');
          return res;
        });
      case 'NodePublishVolume':
        return rawUnary(path, log, async (raw, call, signal) => {
          const req = node.NodePublishVolume.requestDeserialize(raw);
          const fence = await this.#fenceOf(req.volumeId);
          if (fence !== undefined) return node.NodePublishVolume.responseSerialize(await this.#publishFenced(fence, req));
          let rec = await this.#recordOf(req.volumeId);
          if (rec?.fence !== undefined) rec = await this.#unfenceInPlace(rec, req);
          if (rec !== undefined) return node.NodePublishVolume.responseSerialize(await this.#publish(rec, req));
          if (replicationOptIn(req.volumeContext)) throw new FailedPreconditionError(`volume ${req.volumeId} opts in to replication but was not staged through this proxy`);
          return forward(raw, call, signal);
        });
      case 'NodeUnpublishVolume':
        return rawUnary(path, log, async (raw, call, signal) => {
          const req = node.NodeUnpublishVolume.requestDeserialize(raw);
          const target = requireField(req.targetPath, 'target_path');
          // A placeholder is the proxy's own, whoever staged the volume.
          if (await this.#placeholders.unpublish(target)) return node.NodeUnpublishVolume.responseSerialize({});
          const rec = await this.#recordOf(req.volumeId);
          if (rec === undefined) return forward(raw, call, signal);
          await this.#lock.run(rec.pv, async () => {
            await this.#mounts.unmount(target);
            await this.#mounts.removeTarget(target);
          });
          log.info('opted-in volume unpublished', { volumeId: rec.volumeId, pv: rec.pv, target });
          return node.NodeUnpublishVolume.responseSerialize({});
        });
      default:
        return undefined;
    }
  }

  /** The record of a volume the proxy staged, if any (matched on the full id: names are hashes for odd ids). */
  async #recordOf(volumeId: string): Promise<VolumeRecord | undefined> {
    if (volumeId === '') return undefined;
    const rec = await this.#records.get(pvNameForVolume(volumeId));
    return rec?.volumeId === volumeId ? rec : undefined;
  }

  /** The volume's fence on this node; undefined without fences (no sidecar to ask) or when it has none. */
  async #fenceOf(volumeId: string): Promise<VolumeFence | undefined> {
    if (this.#o.fences === undefined || volumeId === '') return undefined;
    return this.#o.fences.fenceOf(pvNameForVolume(volumeId));
  }

  /**
   * Tells the sidecar what is held of a fenced volume. Best effort: what the operator
   * reads from it only decides what it waits for; the fence itself is not touched.
   */
  async #report(pv: string, hold: FenceHold, device?: string): Promise<boolean> {
    if (this.#o.fences === undefined) return false;
    try {
      return await this.#o.fences.report(pv, hold, device);
    } catch (err) {
      this.#o.logger.warn('could not report a fenced volume to the sidecar', { pv, hold, error: (err as Error).message });
      return false;
    }
  }

  /** Whether the driver has NodeStage/NodeUnstage; asked once (retried after a failure). */
  #stages(opts: DriverCallOptions): Promise<boolean> {
    this.#driverStages ??= this.#driver.call(this.#node.NodeGetCapabilities, {}, opts).then(
      (caps) => caps.capabilities.some((c) => c.rpc?.type === 'STAGE_UNSTAGE_VOLUME'),
      (err: unknown) => {
        this.#driverStages = undefined;
        throw err;
      },
    );
    return this.#driverStages;
  }

  #splicer(): NodeSplicer {
    if (this.#o.splicer === undefined) throw new FailedPreconditionError(`volume opts in to replication (${REPLICATE_KEY}) but this CSI proxy runs without a splicer`);
    return this.#o.splicer;
  }

  /** A new record of a volume the proxy stages, at its private paths. */
  #newRecord(volumeId: string, pv: string, type: AccessType, staging: string): VolumeRecord {
    return { volumeId, pv, accessType: type, stagingTargetPath: staging, privateStagingPath: join(this.#o.stateDir, 'staging', pv), privateTargetPath: join(this.#o.stateDir, 'devices', pv) };
  }

  /**
   * The driver stages and publishes the volume as a raw block device at the proxy's
   * private paths (idempotent, as the driver's calls are); returns the kernel's device.
   */
  async #acquireRaw(rec: VolumeRecord, req: NodeStageVolumeRequest__Output, opts: DriverCallOptions): Promise<string> {
    const { volumeId } = rec;
    const blockCap: VolumeCapability = { accessMode: req.volumeCapability!.accessMode, block: {} };
    const stages = await this.#stages(opts);
    if (stages) {
      await mkdir(rec.privateStagingPath, { recursive: true });
      await this.#driver.call(
        this.#node.NodeStageVolume,
        { volumeId, publishContext: req.publishContext, stagingTargetPath: rec.privateStagingPath, volumeCapability: blockCap, secrets: req.secrets, volumeContext: req.volumeContext },
        opts,
      );
    }
    await mkdir(dirname(rec.privateTargetPath), { recursive: true });
    // NodeStage carries the stage secrets only; they are the ones a publish at stage time can have.
    await this.#driver.call(
      this.#node.NodePublishVolume,
      {
        volumeId,
        publishContext: req.publishContext,
        stagingTargetPath: stages ? rec.privateStagingPath : '',
        targetPath: rec.privateTargetPath,
        volumeCapability: blockCap,
        readonly: false,
        secrets: req.secrets,
        volumeContext: req.volumeContext,
      },
      opts,
    );
    return resolveBlockDevice(rec.privateTargetPath);
  }

  /** Undoes #acquireRaw: the driver unpublishes and unstages its raw device. */
  async #releaseRaw(rec: VolumeRecord, opts: DriverCallOptions): Promise<void> {
    const notFoundIsDone = (err: unknown): void => {
      // The driver no longer knows the volume: nothing of it left to undo there.
      if (!(err instanceof DriverCallError && err.grpcCode === GrpcStatus.NOT_FOUND)) throw err;
    };
    await this.#driver.call(this.#node.NodeUnpublishVolume, { volumeId: rec.volumeId, targetPath: rec.privateTargetPath }, opts).catch(notFoundIsDone);
    if (await this.#stages(opts)) {
      await this.#driver.call(this.#node.NodeUnstageVolume, { volumeId: rec.volumeId, stagingTargetPath: rec.privateStagingPath }, opts).catch(notFoundIsDone);
    }
    await this.#mounts.removeTarget(rec.privateTargetPath);
    await rmdir(rec.privateStagingPath).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  /**
   * The spliced device over the raw one, and the filesystem (if any) on it at the kubelet's
   * staging path. The sidecar is given the driver's device where the driver published it
   * (the private target path): it stages only devices under its allowed paths, and resolves
   * that to `device` itself.
   */
  async #spliceAndMount(rec: VolumeRecord, device: string, cap: VolumeCapability__Output): Promise<VolumeRecord> {
    const { dmDevice } = await this.#splicer().stage(rec.pv, rec.privateTargetPath);
    const next: VolumeRecord = { ...rec, device, dmDevice };
    await this.#records.put(next);
    if (rec.accessType === 'mount') {
      const mount = cap.mount!;
      const fs = await this.#mounts.ensureFilesystem(dmDevice, mount.fsType || 'ext4');
      await this.#mounts.mount(dmDevice, rec.stagingTargetPath, fs, mount.mountFlags);
    }
    return next;
  }

  async #stage(req: NodeStageVolumeRequest__Output, opts: DriverCallOptions): Promise<object> {
    const volumeId = requireField(req.volumeId, 'volume_id');
    const staging = requireField(req.stagingTargetPath, 'staging_target_path');
    const type = requireAccessType(req.volumeCapability);
    const splicer = this.#splicer();
    await splicer.check?.();
    const pv = pvNameForVolume(volumeId);
    return this.#lock.run(pv, async () => {
      let rec = await this.#records.get(pv);
      if (rec !== undefined && rec.volumeId !== volumeId) throw new FailedPreconditionError(`volume name ${pv} is already used by volume ${rec.volumeId}`);
      if (rec !== undefined && (rec.stagingTargetPath !== staging || rec.accessType !== type)) {
        throw new AlreadyExistsError(`volume ${volumeId} is already staged at ${rec.stagingTargetPath} as ${rec.accessType}`);
      }
      if (rec === undefined) {
        rec = this.#newRecord(volumeId, pv, type, staging);
        // Recorded before anything is done: an unstage after a crash half-way still
        // knows the volume went through the proxy and what to undo.
        await this.#records.put(rec);
      } else if (rec.fence !== undefined) {
        // Staged as a fenced secondary, unfenced since: from here on an ordinary opted-in volume.
        rec = withoutFence(rec);
        await this.#records.put(rec);
      }
      // The driver always gives the proxy a raw device; the filesystem (if any) goes on
      // the spliced device, so that every write passes through it.
      const device = await this.#acquireRaw(rec, req, opts);
      rec = await this.#spliceAndMount(rec, device, req.volumeCapability!);
      this.#o.logger.info('opted-in volume staged', { volumeId, pv, device, dmDevice: rec.dmDevice, type });
      return {};
    });
  }

  /**
   * A fenced volume: the driver's raw device at the proxy's private paths, held for the
   * secondary pair's sidecar (reported to it: the operator creates the pair on it). No
   * splice and no filesystem: nothing at the kubelet's staging path to publish.
   */
  async #stageFenced(req: NodeStageVolumeRequest__Output, fence: VolumeFence, opts: DriverCallOptions): Promise<object> {
    const volumeId = requireField(req.volumeId, 'volume_id');
    const staging = requireField(req.stagingTargetPath, 'staging_target_path');
    const type = requireAccessType(req.volumeCapability);
    const pv = pvNameForVolume(volumeId);
    return this.#lock.run(pv, async () => {
      let rec = await this.#records.get(pv);
      if (rec !== undefined && rec.volumeId !== volumeId) throw new FailedPreconditionError(`volume name ${pv} is already used by volume ${rec.volumeId}`);
      // Staged for writing before the fence was registered (through the splice, or by the
      // driver itself): left as it is, its pods write to it; the operator waits for them
      // to go and the kubelet to unstage it.
      if ((rec !== undefined && rec.fence === undefined && rec.dmDevice !== undefined) || (rec === undefined && (await this.#mounts.isMountPoint(staging)))) {
        await this.#report(pv, 'staged-unfenced');
        this.#o.logger.warn('fenced volume was staged for writing before its fence', { volumeId, pv, pair: fence.pair });
        return {};
      }
      if (rec !== undefined && (rec.stagingTargetPath !== staging || rec.accessType !== type)) {
        throw new AlreadyExistsError(`volume ${volumeId} is already staged at ${rec.stagingTargetPath} as ${rec.accessType}`);
      }
      // New, or a stage the fence overtook before its splice (nothing was mounted yet).
      rec = { ...(rec ?? this.#newRecord(volumeId, pv, type, staging)), fence: { pair: fence.pair, volume: fence.volume } };
      await this.#records.put(rec);
      const device = await this.#acquireRaw(rec, req, opts);
      rec = { ...rec, device };
      await this.#records.put(rec);
      // As for a stage: the published path, which the sidecar checks and resolves.
      const fenced = await this.#report(pv, 'held', rec.privateTargetPath);
      this.#o.logger.info('fenced volume staged', { volumeId, pv, device, type, pair: fence.pair, reported: fenced });
      return {};
    });
  }

  /**
   * NodePublish of a fenced volume: never for writing, and read-only only as a harmless
   * placeholder, never the device its pair writes under.
   */
  async #publishFenced(fence: VolumeFence, req: NodePublishVolumeRequest__Output): Promise<object> {
    const target = requireField(req.targetPath, 'target_path');
    const type = requireAccessType(req.volumeCapability);
    if (!req.readonly) {
      this.#o.logger.warn('publish for writing refused: the volume is fenced', { volumeId: req.volumeId, pair: fence.pair, target });
      throw new FailedPreconditionError(fencedMessage(fence));
    }
    return this.#lock.run(fence.pv, async () => {
      const rec = await this.#records.get(fence.pv);
      // Staged for writing before the fence: the operator must know before it creates the pair.
      if (rec?.fence === undefined) await this.#report(fence.pv, 'staged-unfenced');
      await this.#placeholders.publish(target, type);
      return {};
    });
  }

  /**
   * A volume staged as a fenced secondary whose fence is gone (its pair deleted) while a
   * pod waited for it on this node: the kubelet will not stage it again while that pod
   * needs it, so the stage is finished here, as an opted-in volume's. One that does not
   * opt in was the driver's to stage, which the proxy cannot redo in its place.
   */
  async #unfenceInPlace(rec: VolumeRecord, req: NodePublishVolumeRequest__Output): Promise<VolumeRecord> {
    const pair = rec.fence?.pair ?? '';
    if (!replicationOptIn(req.volumeContext)) {
      throw new FailedPreconditionError(
        `volume ${rec.volumeId} was staged on this node as the fenced secondary of replication pair ${pair}, which is gone: delete this pod; the kubelet stages the volume afresh once no pod on this node uses it`,
      );
    }
    const type = requireAccessType(req.volumeCapability);
    const splicer = this.#splicer();
    await splicer.check?.();
    return this.#lock.run(rec.pv, async () => {
      let cur = await this.#records.get(rec.pv);
      if (cur === undefined || cur.fence === undefined) return cur ?? rec;
      if (cur.device === undefined) throw new FailedPreconditionError(`volume ${rec.volumeId} is not fully staged`);
      if (type !== cur.accessType) throw new FailedPreconditionError(`volume ${rec.volumeId} is staged as ${cur.accessType}, not ${type}`);
      // Recorded first: an unstage from here on removes the splice too.
      cur = withoutFence(cur);
      await this.#records.put(cur);
      cur = await this.#spliceAndMount(cur, cur.device!, req.volumeCapability!);
      this.#o.logger.info('unfenced volume staged in place', { volumeId: rec.volumeId, pv: rec.pv, pair, dmDevice: cur.dmDevice });
      return cur;
    });
  }

  async #publish(rec: VolumeRecord, req: NodePublishVolumeRequest__Output): Promise<object> {
    const target = requireField(req.targetPath, 'target_path');
    const type = requireAccessType(req.volumeCapability);
    return this.#lock.run(rec.pv, async () => {
      const cur = await this.#records.get(rec.pv);
      if (cur?.dmDevice === undefined) throw new FailedPreconditionError(`volume ${rec.volumeId} is not fully staged`);
      if (type !== cur.accessType) throw new FailedPreconditionError(`volume ${rec.volumeId} is staged as ${cur.accessType}, not ${type}`);
      if (type === 'mount') {
        if (!(await this.#mounts.isMountPoint(cur.stagingTargetPath))) throw new FailedPreconditionError(`volume ${rec.volumeId} is not mounted at ${cur.stagingTargetPath}`);
        await this.#mounts.ensureDirectory(target);
        await this.#mounts.bind(cur.stagingTargetPath, target, { readonly: req.readonly });
      } else {
        await this.#mounts.ensureFile(target);
        await this.#mounts.bind(cur.dmDevice, target, { readonly: req.readonly });
      }
      this.#o.logger.info('opted-in volume published', { volumeId: rec.volumeId, pv: rec.pv, target, type });
      return {};
    });
  }

  async #unstage(rec: VolumeRecord, opts: DriverCallOptions): Promise<object> {
    return this.#lock.run(rec.pv, async () => {
      const cur = (await this.#records.get(rec.pv)) ?? rec;
      if (cur.fence === undefined) {
        // Reverse order of #stage. The filesystem holds the spliced device open: unmount first.
        if (cur.accessType === 'mount') await this.#mounts.unmount(cur.stagingTargetPath);
        // Refuses while replication is attached; everything after it stays as it is, so a
        // retry later finds the volume still usable.
        await this.#splicer().unstage(cur.pv);
      }
      await this.#releaseRaw(cur, opts);
      await this.#records.delete(cur.pv);
      this.#o.logger.info(cur.fence === undefined ? 'opted-in volume unstaged' : 'fenced volume unstaged', { volumeId: cur.volumeId, pv: cur.pv });
      return {};
    });
  }
}

function withoutFence(rec: VolumeRecord): VolumeRecord {
  const next = { ...rec };
  delete next.fence;
  return next;
}
