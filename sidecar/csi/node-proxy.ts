import { Server, status as GrpcStatus, type handleUnaryCall, type ServerUnaryCall, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { mkdir, rmdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'winston';
import type { NodeStageVolumeRequest__Output } from '../../proto/gen/csi/v1/NodeStageVolumeRequest.js';
import type { NodePublishVolumeRequest__Output } from '../../proto/gen/csi/v1/NodePublishVolumeRequest.js';
import type { VolumeCapability } from '../../proto/gen/csi/v1/VolumeCapability.js';
import { AlreadyExistsError, FailedPreconditionError } from '../errors.js';
import type { CsiProto } from '../grpc/load-proto.js';
import { resolveBlockDevice } from './block-device.js';
import { listenCsi, parseCsiEndpoint, shutdownServer, type CsiEndpoint } from './csi-endpoint.js';
import { DriverCallError } from './csi-status.js';
import { DriverConnection, type DriverCallOptions } from './driver-connection.js';
import { HostMounts } from './host-mounts.js';
import { KeyedLock } from './keyed-lock.js';
import type { NodeSplicer } from './node-splicer.js';
import { pvNameForVolume } from './pv-name.js';
import { forwardUnary, onBehalfOf, rawUnary, rawUnaryService } from './raw-forwarding.js';
import { replicationOptIn, REPLICATE_KEY } from './replication-opt-in.js';
import { requireAccessType, requireField } from './volume-capability.js';
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
    const volumes = new OptedInVolumes(o, driver);
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
    o.logger.info('CSI node proxy ready', { endpoint: endpoint.address, driver: o.driver, splicer: o.splicer !== undefined, optInKey: REPLICATE_KEY });
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

/** The Node calls the proxy answers itself for opted-in volumes. */
class OptedInVolumes {
  readonly #o: NodeProxyOptions;
  readonly #driver: DriverConnection;
  readonly #node: CsiProto['grpc']['csi']['v1']['Node']['service'];
  readonly #records: VolumeRecordStore;
  readonly #mounts: HostMounts;
  readonly #lock = new KeyedLock();
  readonly #timeoutMs: number;
  #driverStages: Promise<boolean> | undefined;

  constructor(o: NodeProxyOptions, driver: DriverConnection) {
    this.#o = o;
    this.#driver = driver;
    this.#node = o.csi.grpc.csi.v1.Node.service;
    this.#records = new VolumeRecordStore(join(o.stateDir, 'volumes'));
    this.#mounts = o.mounts ?? new HostMounts();
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
          // Staging is where the splice goes in: the kubelet must call it, whatever the driver does.
          if (stages) return res;
          return node.NodeGetCapabilities.responseSerialize({ capabilities: [...caps.capabilities, { rpc: { type: 'STAGE_UNSTAGE_VOLUME' } }] });
        });
      case 'NodeStageVolume':
        return rawUnary(path, log, async (raw, call, signal) => {
          const req = node.NodeStageVolume.requestDeserialize(raw);
          const opts = onBehalfOf(call, signal, this.#timeoutMs);
          if (replicationOptIn(req.volumeContext)) return node.NodeStageVolume.responseSerialize(await this.#stage(req, opts));
          if (await this.#stages(opts)) return forward(raw, call, signal);
          return node.NodeStageVolume.responseSerialize({});
        });
      case 'NodeUnstageVolume':
        return rawUnary(path, log, async (raw, call, signal) => {
          const req = node.NodeUnstageVolume.requestDeserialize(raw);
          const opts = onBehalfOf(call, signal, this.#timeoutMs);
          const rec = await this.#recordOf(req.volumeId);
          if (rec !== undefined) return node.NodeUnstageVolume.responseSerialize(await this.#unstage(rec, opts));
          if (await this.#stages(opts)) return forward(raw, call, signal);
          return node.NodeUnstageVolume.responseSerialize({});
        });
      case 'NodePublishVolume':
        return rawUnary(path, log, async (raw, call, signal) => {
          const req = node.NodePublishVolume.requestDeserialize(raw);
          const rec = await this.#recordOf(req.volumeId);
          if (rec !== undefined) return node.NodePublishVolume.responseSerialize(await this.#publish(rec, req));
          if (replicationOptIn(req.volumeContext)) throw new FailedPreconditionError(`volume ${req.volumeId} opts in to replication but was not staged through this proxy`);
          return forward(raw, call, signal);
        });
      case 'NodeUnpublishVolume':
        return rawUnary(path, log, async (raw, call, signal) => {
          const req = node.NodeUnpublishVolume.requestDeserialize(raw);
          const rec = await this.#recordOf(req.volumeId);
          if (rec === undefined) return forward(raw, call, signal);
          const target = requireField(req.targetPath, 'target_path');
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

  /** The record of an opted-in volume, if the proxy staged it (matched on the full id: names are hashes for odd ids). */
  async #recordOf(volumeId: string): Promise<VolumeRecord | undefined> {
    if (volumeId === '') return undefined;
    const rec = await this.#records.get(pvNameForVolume(volumeId));
    return rec?.volumeId === volumeId ? rec : undefined;
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

  async #stage(req: NodeStageVolumeRequest__Output, opts: DriverCallOptions): Promise<object> {
    const volumeId = requireField(req.volumeId, 'volume_id');
    const staging = requireField(req.stagingTargetPath, 'staging_target_path');
    const type = requireAccessType(req.volumeCapability);
    const splicer = this.#splicer();
    await splicer.check?.();
    const pv = pvNameForVolume(volumeId);
    const log = this.#o.logger;
    return this.#lock.run(pv, async () => {
      let rec = await this.#records.get(pv);
      if (rec !== undefined && rec.volumeId !== volumeId) throw new FailedPreconditionError(`volume name ${pv} is already used by volume ${rec.volumeId}`);
      if (rec !== undefined && (rec.stagingTargetPath !== staging || rec.accessType !== type)) {
        throw new AlreadyExistsError(`volume ${volumeId} is already staged at ${rec.stagingTargetPath} as ${rec.accessType}`);
      }
      if (rec === undefined) {
        rec = { volumeId, pv, accessType: type, stagingTargetPath: staging, privateStagingPath: join(this.#o.stateDir, 'staging', pv), privateTargetPath: join(this.#o.stateDir, 'devices', pv) };
        // Recorded before anything is done: an unstage after a crash half-way still
        // knows the volume went through the proxy and what to undo.
        await this.#records.put(rec);
      }
      // The driver always gives the proxy a raw device; the filesystem (if any) goes on
      // the spliced device, so that every write passes through it.
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
      const device = await resolveBlockDevice(rec.privateTargetPath);
      const { dmDevice } = await splicer.stage(pv, device);
      rec = { ...rec, device, dmDevice };
      await this.#records.put(rec);
      if (type === 'mount') {
        const mount = req.volumeCapability!.mount!;
        const fs = await this.#mounts.ensureFilesystem(dmDevice, mount.fsType || 'ext4');
        await this.#mounts.mount(dmDevice, staging, fs, mount.mountFlags);
      }
      log.info('opted-in volume staged', { volumeId, pv, device, dmDevice, type });
      return {};
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
      // Reverse order of #stage. The filesystem holds the spliced device open: unmount first.
      if (rec.accessType === 'mount') await this.#mounts.unmount(rec.stagingTargetPath);
      // Refuses while replication is attached; everything after it stays as it is, so a
      // retry later finds the volume still usable.
      await this.#splicer().unstage(rec.pv);
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
      await this.#records.delete(rec.pv);
      this.#o.logger.info('opted-in volume unstaged', { volumeId: rec.volumeId, pv: rec.pv });
      return {};
    });
  }
}
