import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * A loopback TCP proxy that corrupts one chosen byte: once armed with a byte pattern,
 * it XORs `mask` into the byte at `at` within the next occurrence of the pattern in the
 * client→target stream (an occurrence split across two reads is let through). Unlike
 * FaultProxy.corruptNext, which flips a byte wherever it falls, this aims at a field
 * (say, the encoding of a block offset in a replication frame).
 */
export class PatternCorruptProxy {
  readonly address: string;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #armed: { pattern: Buffer; at: number; mask: number } | undefined;
  flips = 0;

  private constructor(server: Server) {
    this.#server = server;
    const a = server.address() as AddressInfo;
    this.address = `${a.address}:${a.port}`;
  }

  static async start(target: string): Promise<PatternCorruptProxy> {
    const port = Number(target.split(':').pop());
    const host = target.replace(/:\d+$/, '');
    const server = createServer({ pauseOnConnect: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const proxy = new PatternCorruptProxy(server);
    server.on('connection', (client: Socket) => {
      const upstream = connect({ host, port });
      for (const s of [client, upstream]) {
        proxy.#sockets.add(s);
        s.setNoDelay(true);
        s.on('error', () => undefined);
        s.on('close', () => {
          proxy.#sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      upstream.once('connect', () => {
        client.on('data', (chunk: Buffer) => {
          if (!upstream.write(proxy.#maybeCorrupt(chunk))) client.pause();
        });
        upstream.on('drain', () => client.resume());
        client.resume();
      });
      upstream.on('data', (chunk: Buffer) => {
        if (!client.write(chunk)) upstream.pause();
      });
      client.on('drain', () => upstream.resume());
    });
    return proxy;
  }

  /** Corrupts the next occurrence of `pattern`: byte `at` of it is XORed with `mask`. */
  arm(pattern: Buffer, at: number, mask = 0x01): void {
    if (at < 0 || at >= pattern.length || mask === 0) throw new Error('bad corruption spec');
    this.#armed = { pattern, at, mask };
  }

  #maybeCorrupt(chunk: Buffer): Buffer {
    const a = this.#armed;
    if (a === undefined) return chunk;
    const i = chunk.indexOf(a.pattern);
    if (i < 0) return chunk;
    this.#armed = undefined;
    this.flips++;
    const out = Buffer.from(chunk);
    out[i + a.at]! ^= a.mask;
    return out;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const s of this.#sockets) s.destroy();
    await closed;
  }
}

/** The protobuf varint encoding of a non-negative integer. */
export function varint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return Buffer.from(out);
}
