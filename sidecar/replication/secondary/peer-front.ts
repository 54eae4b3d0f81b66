import { ServerCredentials, type Server as GrpcServer } from '@grpc/grpc-js';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { TlsMaterial } from '../../grpc/grpc-credentials.js';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from 'winston';
import { parseHostPort } from '../../net/host-port.js';
import { onePeerIdentity, sanIdentities } from '../../identity/identity.js';

export interface PeerFrontOptions {
  /** Mutual TLS, terminated here (so a refused certificate is logged and counted). */
  tls?: TlsMaterial;
  logger: Logger;
  onRefused(reason: string): void;
  /** A TCP connection was accepted (before any vetting). */
  onAccepted?(): void;
  /**
   * CA bundles (PEM) trusted in addition to `tls.ca`: the CAs of the secondary pairs'
   * own peer TLS, i.e. of their primaries' sites. Read at each connection, so a pair
   * created with a new CA is trusted from its primary's next connection on.
   */
  extraCas?(): readonly string[];
  /** How long a connection may stay silent before its first bytes. */
  firstBytesTimeoutMs?: number;
}

const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const TLS_HANDSHAKE_RECORD = 0x16;

/**
 * The peer port's TCP listener, in front of gRPC. Plaintext (loopback only): the first
 * bytes must be the HTTP/2 preface. TLS: mutual TLS is terminated here and only
 * connections with a certificate from the CA reach gRPC. Anything else is logged,
 * counted and closed — gRPC alone would drop it silently.
 */
export class PeerFront {
  readonly #net: Server;
  readonly address: string;

  private constructor(net: Server, address: string) {
    this.#net = net;
    this.address = address;
  }

  static async listen(address: string, grpc: GrpcServer, opts: PeerFrontOptions): Promise<PeerFront> {
    // gRPC gets plaintext HTTP/2: TLS, when on, ends here after the client's certificate
    // has been verified against the CA.
    const injector = grpc.createConnectionInjector(ServerCredentials.createInsecure());
    const { host, port } = parseHostPort(address, 'peer listen address');
    // TLS: a tls.Server that never listens is handed the raw connections, as Node's own
    // HTTP/2 secure server does; the handshake is the vetting (garbage fails it).
    const tlsServer = opts.tls
      ? createTlsServer(
          { cert: opts.tls.cert, key: opts.tls.key, ca: opts.tls.ca, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'], handshakeTimeout: opts.firstBytesTimeoutMs ?? 10_000 },
          (secure) => {
            // Only the peer link's identity gets to gRPC: an operator's or a control
            // server's certificate from a trusted CA has no business on this port.
            const san = secure.getPeerCertificate().subjectaltname;
            if (onePeerIdentity(san) === undefined) {
              const ids = sanIdentities(san);
              opts.logger.warn('peer connection refused', { reason: 'identity', detail: `not one peer identity: ${ids.map((id) => id.uri).join(', ') || 'no blockmirror identity'}`, remote: `${secure.remoteAddress}:${secure.remotePort}` });
              opts.onRefused('identity');
              secure.destroy();
              return;
            }
            injector.injectConnection(secure);
          },
        )
      : undefined;
    let trusted = '';
    const trustCurrentCas = (): void => {
      if (tlsServer === undefined || opts.tls === undefined || opts.extraCas === undefined) return;
      const extra = [...new Set(opts.extraCas())].sort();
      const key = extra.join('\n');
      if (key === trusted) return;
      trusted = key;
      tlsServer.setSecureContext({ cert: opts.tls.cert, key: opts.tls.key, ca: [opts.tls.ca, ...extra] });
      opts.logger.info('peer port trusts the CAs of its pairs', { extraCas: extra.length });
    };
    tlsServer?.on('tlsClientError', (err: Error, s: TLSSocket) => {
      opts.logger.warn('peer connection refused', { reason: 'tls', detail: err.message, remote: `${s.remoteAddress}:${s.remotePort}` });
      opts.onRefused('tls');
      s.destroy();
    });
    // No Nagle: acknowledgements are small and pipelined; held back behind earlier
    // unacknowledged ones they would wait for the peer's delayed ACK (~40 ms).
    const net = createServer({ noDelay: true }, (socket) => {
      opts.onAccepted?.();
      if (tlsServer === undefined) return vet(socket, opts, (s) => injector.injectConnection(s));
      socket.on('error', () => undefined);
      try {
        trustCurrentCas();
      } catch (err) {
        // A pair's CA that does not parse: keep the CAs trusted so far, say why.
        opts.logger.warn("a pair's peer CA cannot be used; the peer port keeps its previous CAs", { error: (err as Error).message });
      }
      tlsServer.emit('connection', socket);
    });
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
    const n = Math.min(head.length, HTTP2_PREFACE.length);
    if (!head.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n))) return refuse(head[0] === TLS_HANDSHAKE_RECORD ? 'tls' : 'garbage', 'not an HTTP/2 connection preface');
    if (head.length < HTTP2_PREFACE.length) return;
    cleanup();
    socket.pause();
    socket.unshift(head);
    accept(socket);
  };
  socket.on('data', onData);
  socket.on('error', () => undefined);
}
