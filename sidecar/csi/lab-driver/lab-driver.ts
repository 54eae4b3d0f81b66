import { Server } from '@grpc/grpc-js';
import type { Logger } from 'winston';
import type { CsiProto, PluginRegistrationProto } from '../../grpc/load-proto.js';
import { csiUnary } from '../csi-unary.js';
import { listenCsi, shutdownServer, type CsiEndpoint } from '../csi-endpoint.js';
import { HostMounts } from '../host-mounts.js';
import { KubeletRegistration } from '../kubelet-registration.js';
import { labControllerHandlers } from './lab-controller.js';
import { labNodeHandlers } from './lab-node.js';
import { LabVolumeStore } from './lab-volume-store.js';
import { LoopDevices } from './loop-devices.js';
import { LAB_DRIVER_NAME } from './lab-driver-name.js';

export interface LabDriverOptions {
  /** The loaded csi.proto (loadCsiProto). */
  csi: CsiProto;
  /** unix:///path/to/csi.sock */
  endpoint: string;
  /** Where the volume images and their records live. */
  dataDir: string;
  nodeId: string;
  /** The name GetPluginInfo reports (default lab.csi.blockmirror.io). */
  name?: string;
  vendorVersion?: string;
  /** Register with the kubelet through its plugin registration directory (as node-driver-registrar would). */
  registration?: LabDriverRegistration;
  logger: Logger;
}

export interface LabDriverRegistration {
  proto: PluginRegistrationProto;
  /** The kubelet's `plugins_registry` directory. */
  dir: string;
  /** The CSI socket as the kubelet sees it (default: the endpoint's own path). */
  kubeletEndpoint?: string;
}

/**
 * A small CSI driver for the lab, the demo and the tests, where no real driver can be
 * had: volumes are sparse image files exposed as loop devices, controller and node in
 * one process on one socket. Production runs the cluster's own driver (behind the
 * blockmirror CSI proxy); nothing here is meant for real data.
 */
export class LabDriver {
  readonly #server: Server;
  readonly endpoint: CsiEndpoint;
  /** The kubelet registration, when the driver registers itself. */
  readonly registration: KubeletRegistration | undefined;

  private constructor(server: Server, endpoint: CsiEndpoint, registration: KubeletRegistration | undefined) {
    this.#server = server;
    this.endpoint = endpoint;
    this.registration = registration;
  }

  static async start(o: LabDriverOptions): Promise<LabDriver> {
    const { logger } = o;
    const store = new LabVolumeStore(o.dataDir);
    const loops = new LoopDevices();
    const v1 = o.csi.grpc.csi.v1;
    const server = new Server();
    server.addService(v1.Identity.service, {
      GetPluginInfo: csiUnary('GetPluginInfo', logger, async () => ({ name: o.name ?? LAB_DRIVER_NAME, vendorVersion: o.vendorVersion ?? '0.1.0' })),
      GetPluginCapabilities: csiUnary('GetPluginCapabilities', logger, async () => ({ capabilities: [{ service: { type: 'CONTROLLER_SERVICE' } }] })),
      Probe: csiUnary('Probe', logger, async () => ({ ready: { value: true } })),
    });
    server.addService(v1.Controller.service, labControllerHandlers(store, loops, logger));
    server.addService(v1.Node.service, labNodeHandlers({ nodeId: o.nodeId, store, loops, mounts: new HostMounts(), logger }));
    const endpoint = await listenCsi(server, o.endpoint);
    // Registered only once CSI is served: the kubelet calls NodeGetInfo as soon as it registers.
    let registration: KubeletRegistration | undefined;
    if (o.registration !== undefined) {
      try {
        registration = await KubeletRegistration.start({
          proto: o.registration.proto,
          registrationDir: o.registration.dir,
          driverName: o.name ?? LAB_DRIVER_NAME,
          endpoint: o.registration.kubeletEndpoint ?? endpoint.socketPath,
          logger,
        });
      } catch (err) {
        await shutdownServer(server, 0);
        throw err;
      }
    }
    logger.info('lab CSI driver ready', { endpoint: endpoint.address, name: o.name ?? LAB_DRIVER_NAME, nodeId: o.nodeId, dataDir: o.dataDir, registration: registration?.socketPath });
    return new LabDriver(server, endpoint, registration);
  }

  /** Deregisters from the kubelet first, then lets running calls finish. */
  async stop(): Promise<void> {
    await this.registration?.stop();
    await shutdownServer(this.#server);
  }
}
