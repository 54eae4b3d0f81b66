import { Server } from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { lstat, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'winston';
import type { RegistrationHandlers } from '../../proto/gen/pluginregistration/Registration.js';
import { FailedPreconditionError, InvalidArgumentError } from '../errors.js';
import type { PluginRegistrationProto } from '../grpc/load-proto.js';
import { listenCsi, parseCsiEndpoint, shutdownServer } from './csi-endpoint.js';

/** The plugin type the kubelet's CSI handler registers (k8s.io/kubelet pluginregistration/v1 CSIPlugin). */
export const CSI_PLUGIN_TYPE = 'CSIPlugin';
/** What node-driver-registrar offers: the kubelet picks the highest major version it knows (1). */
export const DEFAULT_CSI_VERSIONS: readonly string[] = ['1.0.0'];

export interface KubeletRegistrationOptions {
  proto: PluginRegistrationProto;
  /** The kubelet's plugin registration directory (`<kubelet root>/plugins_registry`); it must exist. */
  registrationDir: string;
  /** The CSI driver name the kubelet registers (CSINode, a PV's spec.csi.driver). */
  driverName: string;
  /**
   * The CSI socket the kubelet is to call, as a path on the kubelet's host (`unix://`
   * accepted): the driver's own, or a proxy's registered in its place.
   */
  endpoint: string;
  /** CSI versions offered (default 1.0.0). */
  supportedVersions?: readonly string[];
  /**
   * The socket's file name in the registration directory (default `<driver name>-reg.sock`,
   * node-driver-registrar's). A proxy registering a driver's name beside the driver's own
   * registrar needs another: the kubelet reads the name from GetInfo, not from the file.
   */
  socketName?: string;
  logger: Logger;
}

/** The kubelet's last NotifyRegistrationStatus. */
export interface KubeletRegistrationStatus {
  registered: boolean;
  /** The kubelet's reason when it refused the plugin, else ''. */
  error: string;
  at: Date;
}

/**
 * Registers a CSI driver with the kubelet the way node-driver-registrar does: serves the
 * kubelet's plugin registration API (`pluginregistration.Registration`: GetInfo,
 * NotifyRegistrationStatus) on `<driver name>-reg.sock` in the kubelet's registration
 * directory. The kubelet's plugin watcher finds the socket, asks GetInfo for the driver's
 * name, endpoint and versions, calls NodeGetInfo on that endpoint, records the driver in
 * its CSINode, and reports the outcome. Removing the socket deregisters the driver.
 */
export class KubeletRegistration {
  readonly #server: Server;
  readonly #logger: Logger;
  readonly socketPath: string;
  readonly #ino: number;
  #status: KubeletRegistrationStatus | undefined;
  readonly #waiters: (() => void)[] = [];

  private constructor(server: Server, socketPath: string, ino: number, logger: Logger) {
    this.#server = server;
    this.socketPath = socketPath;
    this.#ino = ino;
    this.#logger = logger;
  }

  static async start(o: KubeletRegistrationOptions): Promise<KubeletRegistration> {
    const { logger, driverName } = o;
    // The kubelet dials a bare path (its CSI client prepends nothing).
    const endpoint = parseCsiEndpoint(o.endpoint).socketPath;
    const versions = [...(o.supportedVersions ?? DEFAULT_CSI_VERSIONS)];
    if (!/^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/.test(driverName)) throw new InvalidArgumentError(`driver name ${JSON.stringify(driverName)} is not a CSI driver name`);
    if (versions.length === 0) throw new InvalidArgumentError('at least one supported CSI version is needed');
    // Not created here: a wrong kubelet root would otherwise register with no one, silently.
    const dir = await stat(o.registrationDir).catch(() => undefined);
    if (dir?.isDirectory() !== true) throw new FailedPreconditionError(`no kubelet plugin registration directory at ${o.registrationDir}`);

    const server = new Server();
    // The kubelet may call before start() returns: its notification waits here until then.
    let early: KubeletRegistrationStatus | undefined;
    let notify = (status: KubeletRegistrationStatus): void => {
      early = status;
    };
    const handlers: RegistrationHandlers = {
      GetInfo: (_call, callback) => {
        logger.debug('kubelet asked for plugin info', { driverName });
        callback(null, { type: CSI_PLUGIN_TYPE, name: driverName, endpoint, supportedVersions: versions });
      },
      NotifyRegistrationStatus: (call, callback) => {
        const status = { registered: call.request.pluginRegistered, error: call.request.error, at: new Date() };
        if (status.registered) logger.info('registered with the kubelet', { driverName, endpoint });
        else logger.error('the kubelet refused the registration', { driverName, endpoint, error: status.error });
        notify(status);
        callback(null, {});
      },
    };
    server.addService(o.proto.pluginregistration.Registration.service, handlers);
    const socketName = o.socketName ?? `${driverName}-reg.sock`;
    if (socketName.includes('/') || socketName.startsWith('.')) throw new InvalidArgumentError(`registration socket name ${JSON.stringify(socketName)} must be a plain, visible file name`);
    const socket = join(o.registrationDir, socketName);
    const existing = await lstat(socket).catch(() => undefined);
    if (existing !== undefined && !existing.isSocket()) throw new InvalidArgumentError(`${socket} exists and is not a socket`);
    // Bound under a hidden name (the kubelet's watcher skips dot files), then renamed into
    // place: a stale socket is replaced atomically, and since Node unlinks the path it
    // bound when the server closes, closing never removes a socket bound there since.
    // Random: registrars in other containers share the directory, and their pids.
    const hidden = join(o.registrationDir, `.${socketName}.${randomBytes(4).toString('hex')}`);
    // sun_path: 108 bytes with its NUL; Node's error for a longer one says only EINVAL.
    if (Buffer.byteLength(hidden) > 107) throw new InvalidArgumentError(`registration socket path ${hidden} is longer than a Unix socket path may be (107 bytes)`);
    await listenCsi(server, `unix://${hidden}`);
    let ino: number;
    try {
      await rename(hidden, socket);
      ino = (await lstat(socket)).ino;
    } catch (err) {
      await shutdownServer(server, 0);
      throw err;
    }
    const self = new KubeletRegistration(server, socket, ino, logger);
    notify = (status) => self.#notified(status);
    if (early !== undefined) self.#notified(early);
    logger.info('kubelet registration socket ready', { socket, driverName, endpoint, versions });
    return self;
  }

  /** The kubelet's last word on the registration (undefined until it has called). */
  get status(): KubeletRegistrationStatus | undefined {
    return this.#status;
  }

  /** Resolves at the kubelet's next NotifyRegistrationStatus (now, if it has called already). */
  notified(): Promise<KubeletRegistrationStatus> {
    if (this.#status !== undefined) return Promise.resolve(this.#status);
    return new Promise((resolve) => this.#waiters.push(() => resolve(this.#status!)));
  }

  #notified(status: KubeletRegistrationStatus): void {
    this.#status = status;
    for (const w of this.#waiters.splice(0)) w();
  }

  /**
   * Deregisters: removes the socket first (the kubelet's watcher then drops the driver),
   * then stops serving. A socket another process has bound since is left alone.
   */
  async stop(): Promise<void> {
    const st = await lstat(this.socketPath).catch(() => undefined);
    if (st?.isSocket() === true && st.ino === this.#ino) {
      await unlink(this.socketPath).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      this.#logger.info('kubelet registration socket removed', { socket: this.socketPath });
    }
    await shutdownServer(this.#server, 1000);
  }
}
