import { Server, ServerCredentials } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import type { Logger } from 'winston';
import { prepareControlSocket } from './control-socket.js';
import { loadControlProto } from '../grpc/load-proto.js';
import type { PairManager } from '../pair/pair-manager.js';
import { controlService, type ControlServiceOptions } from './control-service.js';
import { controlAuthorizer } from '../identity/control-authorizer.js';

export interface ControlServerOptions extends ControlServiceOptions {
  /**
   * Over TLS, the only client identity admitted (every RPC, health included); local
   * callers (the Unix socket, a loopback plaintext listener) are admitted regardless.
   */
  operatorIdentity?: string;
  /** A call was refused for its caller's identity. */
  onRefused?(): void;
}

const SERVICE = 'blockmirror.control.v1.ControlService';

/** The sidecar's control API on gRPC, with grpc.health.v1 (NOT_SERVING until ready). */
export class ControlServer {
  readonly #server: Server;
  readonly #health = new HealthImplementation({ '': 'NOT_SERVING', [SERVICE]: 'NOT_SERVING' });

  constructor(pairs: PairManager, logger: Logger, opts: ControlServerOptions = {}) {
    this.#server = new Server(opts.operatorIdentity !== undefined ? { interceptors: [controlAuthorizer(opts.operatorIdentity, { logger, ...(opts.onRefused ? { onRefused: opts.onRefused } : {}) })] } : {});
    const proto = loadControlProto();
    this.#server.addService(proto.blockmirror.control.v1.ControlService.service, controlService(pairs, logger, opts));
    this.#health.addToServer(this.#server);
  }

  /** Binds and returns the bound address (port 0 picks a free one). */
  listen(address: string, creds: ServerCredentials): Promise<string> {
    return new Promise((resolve, reject) => {
      this.#server.bindAsync(address, creds, (err, port) => {
        if (err) return reject(err);
        resolve(address.replace(/:\d+$/, `:${port}`));
      });
    });
  }

  /**
   * Also serves on a Unix socket, without TLS: for root on the node and the CSI proxy.
   * Its directory is made root-only (0700) first; that is the authentication.
   */
  async listenUnix(path: string): Promise<string> {
    const address = await prepareControlSocket(path);
    await new Promise<void>((resolve, reject) => this.#server.bindAsync(address, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    return address;
  }

  setServing(serving: boolean): void {
    const s = serving ? 'SERVING' : 'NOT_SERVING';
    this.#health.setStatus('', s);
    this.#health.setStatus(SERVICE, s);
  }

  close(): Promise<void> {
    this.setServing(false);
    return new Promise((resolve) => {
      const t = setTimeout(() => this.#server.forceShutdown(), 5000);
      this.#server.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}
