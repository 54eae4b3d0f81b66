import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { lstat, unlink } from 'node:fs/promises';
import type { Logger } from 'winston';
import { FailedPreconditionError, InvalidArgumentError, type BlockmirrorError } from '../errors.js';
import { parseLoopbackHostPort } from '../net/host-port.js';
import { adoptSocket } from './adopt-socket.js';
import { NbdConnection } from './nbd-connection.js';
import { SlabPool } from './slab-pool.js';
import type { NbdExport } from './nbd-export.js';

export interface NbdServerOptions {
  logger: Logger;
  /** Largest READ/WRITE payload; default 32 MiB (what qemu and the kernel send at most). */
  maxPayload?: number;
  maxInFlightPerConnection?: number;
  /** READ/WRITE payload bytes in flight per connection before it stops reading; default 64 MiB. */
  maxInFlightBytesPerConnection?: number;
  onConnectionsChanged?(count: number): void;
  onProtocolError?(reason: string): void;
}

export interface NbdListenOptions {
  /** host:port; the host must be a loopback address (NBD itself has no authentication). */
  tcp?: string;
  /** Unix socket path. */
  socket?: string;
}

/** Serves one export over NBD on a TCP port and/or a Unix socket. */
export class NbdServer {
  readonly #export: NbdExport;
  readonly #opts: NbdServerOptions;
  readonly #servers: Server[] = [];
  readonly #connections = new Set<NbdConnection>();
  readonly #slabs = new SlabPool();
  #tcpAddress = '';
  #socketPath = '';

  constructor(exp: NbdExport, opts: NbdServerOptions) {
    this.#export = exp;
    this.#opts = opts;
  }

  get tcpAddress(): string {
    return this.#tcpAddress;
  }

  get socketPath(): string {
    return this.#socketPath;
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  async listen(where: NbdListenOptions): Promise<void> {
    if (where.tcp) {
      const { host, port } = parseLoopbackHostPort(where.tcp, 'NBD listen address');
      const s = this.#newServer();
      await new Promise<void>((resolve, reject) => {
        s.once('error', (err: NodeJS.ErrnoException) => reject(listenError(err, `NBD listen address ${where.tcp}`)));
        s.listen({ host, port }, () => resolve());
      });
      const a = s.address() as AddressInfo;
      this.#tcpAddress = a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
    }
    if (where.socket) {
      await removeStaleSocket(where.socket);
      const s = this.#newServer();
      await new Promise<void>((resolve, reject) => {
        s.once('error', (err: NodeJS.ErrnoException) => reject(listenError(err, `NBD socket ${where.socket}`)));
        s.listen(where.socket, () => resolve());
      });
      this.#socketPath = where.socket;
    }
  }

  /** Stops accepting, lets in-flight requests finish, closes every connection. */
  async close(timeoutMs = 10_000): Promise<void> {
    const closing = this.#servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    await Promise.all([...this.#connections].map((c) => c.shutdown(timeoutMs)));
    await Promise.all(closing);
    if (this.#socketPath) await unlink(this.#socketPath).catch(() => undefined);
  }

  #newServer(): Server {
    // Half-open: a client may send NBD_CMD_DISC and shut its write side at once; the
    // protocol still owes it the replies of every request in flight. Paused on connect:
    // nothing may be read before the socket is adopted for slab reads.
    const s = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket: Socket) => this.#accept(socket));
    this.#servers.push(s);
    return s;
  }

  #accept(accepted: Socket): void {
    const exp = this.#export;
    let conn: NbdConnection | null = null;
    const { socket } = adoptSocket(accepted, this.#slabs, (chunk, slab) => conn!.feed(chunk, slab), { allowHalfOpen: true });
    conn = new NbdConnection(socket, {
      resolve: (name) => (name === '' || name === exp.name ? exp : undefined),
      list: () => [exp.name],
      logger: this.#opts.logger,
      maxPayload: this.#opts.maxPayload ?? 32 << 20,
      maxInFlight: this.#opts.maxInFlightPerConnection ?? 128,
      maxInFlightBytes: this.#opts.maxInFlightBytesPerConnection ?? 64 << 20,
      onProtocolError: this.#opts.onProtocolError,
    });
    const c = conn;
    this.#connections.add(c);
    this.#opts.onConnectionsChanged?.(this.#connections.size);
    void c.closed.then(() => {
      this.#connections.delete(c);
      this.#opts.onConnectionsChanged?.(this.#connections.size);
    });
  }
}

/**
 * A stale socket file from a crashed run would make listen fail with EADDRINUSE, so one
 * is removed. Anything else at the path (a volume image named by mistake) is refused,
 * never deleted.
 */
async function removeStaleSocket(path: string): Promise<void> {
  const st = await lstat(path).catch(() => null);
  if (st === null) return;
  if (!st.isSocket()) throw new InvalidArgumentError(`NBD socket path ${path} exists and is not a socket (refusing to replace it)`);
  await unlink(path).catch(() => undefined);
}

/**
 * A listener that cannot be bound (address in use, no such directory, path too long) is
 * for the caller to fix: a typed error naming it, which the control API passes on.
 */
function listenError(err: NodeJS.ErrnoException, what: string): BlockmirrorError {
  const message = `cannot listen on ${what}: ${err.message}`;
  return err.code === 'EADDRINUSE' ? new FailedPreconditionError(message) : new InvalidArgumentError(message);
}
