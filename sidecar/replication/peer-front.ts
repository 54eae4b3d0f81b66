import type { Server as GrpcServer, ServerCredentials } from '@grpc/grpc-js';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from 'winston';
import { parseHostPort } from '../net/host-port.js';

export interface PeerFrontOptions {
  /** True when the credentials are TLS: connections must start with a TLS record. */
  tls: boolean;
  logger: Logger;
  onRefused(reason: string): void;
  /** How long a connection may stay silent before its first bytes. */
  firstBytesTimeoutMs?: number;
}

const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const TLS_HANDSHAKE_RECORD = 0x16;

/**
 * The peer port's TCP listener. It looks at the first bytes of each connection before
 * gRPC does: a TLS handshake (with TLS on) or the HTTP/2 preface (plaintext) is handed
 * to the gRPC server; anything else is garbage and is logged, counted and closed —
 * gRPC alone would drop it silently.
 */
export class PeerFront {
  readonly #net: Server;
  readonly address: string;

  private constructor(net: Server, address: string) {
    this.#net = net;
    this.address = address;
  }

  static async listen(address: string, grpc: GrpcServer, creds: ServerCredentials, opts: PeerFrontOptions): Promise<PeerFront> {
    const injector = grpc.createConnectionInjector(creds);
    const { host, port } = parseHostPort(address, 'peer listen address');
    const net = createServer((socket) => vet(socket, opts, (s) => injector.injectConnection(s)));
    await new Promise<void>((resolve, reject) => {
      net.once('error', reject);
      net.listen({ host, port }, () => resolve());
    });
    const bound = (net.address() as AddressInfo).port;
    return new PeerFront(net, address.replace(/:\d+$/, `:${bound}`));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#net.close(() => resolve()));
  }
}

function vet(socket: Socket, opts: PeerFrontOptions, accept: (s: Socket) => void): void {
  let head = Buffer.alloc(0);
  const refuse = (reason: string, detail: string): void => {
    cleanup();
    opts.logger.warn('peer connection refused', { reason, detail, remote: `${socket.remoteAddress}:${socket.remotePort}` });
    opts.onRefused(reason);
    socket.destroy();
  };
  const timer = setTimeout(() => refuse('silent', 'no bytes before the deadline'), opts.firstBytesTimeoutMs ?? 10_000);
  const cleanup = (): void => {
    clearTimeout(timer);
    socket.off('data', onData);
  };
  const onData = (chunk: Buffer): void => {
    head = Buffer.concat([head, chunk]);
    if (opts.tls) {
      if (head[0] !== TLS_HANDSHAKE_RECORD) return refuse(head[0] === HTTP2_PREFACE[0] ? 'plaintext' : 'garbage', 'not a TLS handshake');
    } else {
      const n = Math.min(head.length, HTTP2_PREFACE.length);
      if (!head.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n))) return refuse(head[0] === TLS_HANDSHAKE_RECORD ? 'tls' : 'garbage', 'not an HTTP/2 connection preface');
      if (head.length < HTTP2_PREFACE.length) return;
    }
    cleanup();
    socket.pause();
    socket.unshift(head);
    accept(socket);
  };
  socket.on('data', onData);
  socket.on('error', () => undefined);
}
