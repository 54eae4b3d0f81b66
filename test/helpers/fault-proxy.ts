import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export interface FaultProxyOptions {
  /** host:port (or [v6]:port) the proxy connects to for every accepted connection. */
  target: string;
  /** Defaults to 127.0.0.1; the port is always picked by the kernel. */
  listenHost?: string;
}

export interface ByteCounts {
  clientToTarget: number;
  targetToClient: number;
}

// Delayed chunks beyond this (per direction) make the proxy stop reading from the
// sender, so a long delay cannot pile up an unbounded amount of data in memory.
const MAX_QUEUED_BYTES = 1 << 20;
const DROP_MIN_CHUNK = 1024;
const CORRUPT_MIN_CHUNK = 16 * 1024;

interface Queued {
  /** null is the sender's FIN, delayed like data. */
  chunk: Buffer | null;
  due: number;
}

/** One direction of a proxied connection: what `src` sent that `dst` has not yet been given. */
interface Direction {
  readonly src: Socket;
  readonly dst: Socket;
  readonly key: keyof ByteCounts;
  queue: Queued[];
  queuedBytes: number;
  /** `dst.write` asked us to wait for 'drain'. */
  blocked: boolean;
  /** `src` sent FIN (queued behind its data, then passed on). */
  srcEnded: boolean;
  timer: NodeJS.Timeout | undefined;
}

interface Pair {
  readonly client: Socket;
  readonly target: Socket;
  readonly up: Direction;
  readonly down: Direction;
  connected: boolean;
  /** Torn down (or being torn down): forward nothing more. */
  dead: boolean;
  readonly closed: Promise<void>;
}

function ignore(): void {}

function parseHostPort(s: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(s);
  if (!m) throw new Error(`bad host:port ${JSON.stringify(s)}`);
  return { host: m[1] ?? m[2]!, port: Number(m[3]) };
}

function newDirection(src: Socket, dst: Socket, key: keyof ByteCounts): Direction {
  return { src, dst, key, queue: [], queuedBytes: 0, blocked: false, srcEnded: false, timer: undefined };
}

/**
 * A loopback TCP proxy that tests put between two peers to inject network faults:
 * cuts, stalls, latency, a connection dropped mid-frame and a corrupted byte. It is
 * byte-transparent (works for TLS too) and forwards with backpressure, so it buffers
 * little beyond what the kernel holds.
 */
export class FaultProxy {
  readonly address: string;
  readonly #server: Server;
  readonly #target: { host: string; port: number };
  readonly #pairs = new Set<Pair>();
  readonly #bytes: ByteCounts = { clientToTarget: 0, targetToClient: 0 };
  #accepted = 0;
  #refused = 0;
  #corruptions = 0;
  #drops = 0;
  #cut = false;
  #stalled = false;
  #delayMs = 0;
  #dropArmed = false;
  #corruptMinChunk: number | undefined;
  #closing: Promise<void> | undefined;

  private constructor(server: Server, target: { host: string; port: number }) {
    this.#server = server;
    this.#target = target;
    const a = server.address() as AddressInfo;
    this.address = a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
    server.on('connection', (s: Socket) => this.#onConnection(s));
  }

  static async start(opts: FaultProxyOptions): Promise<FaultProxy> {
    const target = parseHostPort(opts.target);
    // Half-open so a FIN is forwarded as a FIN; paused so nothing is read from a client
    // before its target connection exists.
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
    server.on('error', ignore);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, opts.listenHost ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new FaultProxy(server, target);
  }

  get bytesForwarded(): ByteCounts {
    return { ...this.#bytes };
  }

  get connectionsAccepted(): number {
    return this.#accepted;
  }

  /** Connections closed on arrival because of `cut()`. */
  get connectionsRefused(): number {
    return this.#refused;
  }

  get corruptions(): number {
    return this.#corruptions;
  }

  get drops(): number {
    return this.#drops;
  }

  /** Bytes read but not yet forwarded (held back by a delay or a stall), over all connections. */
  get queuedBytes(): number {
    let n = 0;
    for (const p of this.#pairs) n += p.up.queuedBytes + p.down.queuedBytes;
    return n;
  }

  /** Proxied connections whose sockets are not yet all closed. */
  get connections(): number {
    return this.#pairs.size;
  }

  /** Resets all current connections and refuses new ones until `heal()`. */
  cut(): void {
    this.#cut = true;
    for (const p of this.#pairs) this.#kill(p, true);
  }

  /** Keeps connections open but forwards nothing (data or FIN) either way until `heal()`. */
  stall(): void {
    this.#stalled = true;
    for (const p of this.#pairs) {
      this.#update(p, p.up);
      this.#update(p, p.down);
    }
  }

  /** One-way latency added to every chunk in both directions; 0 removes it. */
  delay(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new Error(`bad delay ${ms}`);
    this.#delayMs = ms;
    if (ms === 0) this.#releaseAll();
  }

  /** The next client→target chunk of at least 1 KiB is cut in half; then the connection pair is torn down. */
  dropMidStream(): void {
    this.#dropArmed = true;
  }

  /** Flips (XOR 0xff) the middle byte of the next client→target chunk of at least `minChunk` bytes, once. */
  corruptNext(opts: { minChunk?: number } = {}): void {
    this.#corruptMinChunk = Math.max(1, opts.minChunk ?? CORRUPT_MIN_CHUNK);
  }

  /** Back to transparent forwarding: ends cut and stall, removes delay, disarms pending drop/corruption. */
  heal(): void {
    this.#cut = false;
    this.#stalled = false;
    this.#delayMs = 0;
    this.#dropArmed = false;
    this.#corruptMinChunk = undefined;
    this.#releaseAll();
  }

  /** Stops listening and destroys every connection; resolves once all sockets are closed. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const serverClosed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      const pairs = [...this.#pairs];
      for (const p of pairs) this.#destroy(p, false);
      await Promise.all([serverClosed, ...pairs.map((p) => p.closed)]);
    })();
    return this.#closing;
  }

  #onConnection(client: Socket): void {
    client.on('error', ignore);
    if (this.#closing) {
      client.destroy();
      return;
    }
    if (this.#cut) {
      this.#refused++;
      client.resetAndDestroy();
      return;
    }
    this.#accepted++;
    const target = connect({ host: this.#target.host, port: this.#target.port, allowHalfOpen: true });
    target.on('error', ignore);
    // The proxy must not add Nagle delays of its own.
    client.setNoDelay(true);
    target.setNoDelay(true);
    let open = 2;
    let resolveClosed = ignore;
    const pair: Pair = {
      client,
      target,
      up: newDirection(client, target, 'clientToTarget'),
      down: newDirection(target, client, 'targetToClient'),
      connected: false,
      dead: false,
      closed: new Promise<void>((resolve) => (resolveClosed = resolve)),
    };
    this.#pairs.add(pair);
    target.once('connect', () => {
      pair.connected = true;
      this.#update(pair, pair.up);
    });
    for (const d of [pair.up, pair.down]) {
      d.src.on('data', (chunk: Buffer) => {
        if (pair.dead) return;
        d.queue.push({ chunk, due: Date.now() + this.#delayMs });
        d.queuedBytes += chunk.length;
        this.#flush(pair, d);
      });
      d.src.on('end', () => {
        d.srcEnded = true;
        if (pair.dead) return;
        d.queue.push({ chunk: null, due: Date.now() + this.#delayMs });
        this.#flush(pair, d);
      });
      d.dst.on('drain', () => {
        d.blocked = false;
        this.#update(pair, d);
      });
      d.src.on('close', (hadError: boolean) => {
        // A socket that closed without a clean FIN from its peer (reset or error)
        // resets its partner: an abrupt failure must not look like a clean end.
        if (hadError || !d.srcEnded) this.#kill(pair, true);
        if (--open === 0) {
          this.#clearTimers(pair);
          this.#pairs.delete(pair);
          resolveClosed();
        }
      });
    }
    this.#update(pair, pair.up);
  }

  /** Forwards every due chunk and FIN, in order, unless stalled. */
  #flush(pair: Pair, d: Direction): void {
    const now = Date.now();
    while (!pair.dead && !this.#stalled && d.queue.length > 0) {
      const head = d.queue[0]!;
      if (head.due > now) {
        d.timer ??= setTimeout(() => {
          d.timer = undefined;
          this.#flush(pair, d);
        }, head.due - now);
        break;
      }
      d.queue.shift();
      if (head.chunk === null) {
        d.dst.end();
      } else {
        d.queuedBytes -= head.chunk.length;
        this.#forward(pair, d, head.chunk);
      }
    }
    this.#update(pair, d);
  }

  #forward(pair: Pair, d: Direction, chunk: Buffer): void {
    if (d.key === 'clientToTarget') {
      if (this.#dropArmed && chunk.length >= DROP_MIN_CHUNK) {
        this.#dropArmed = false;
        this.#drops++;
        const half = chunk.subarray(0, chunk.length >> 1);
        this.#bytes.clientToTarget += half.length;
        this.#clearTimers(pair);
        pair.dead = true;
        pair.client.resetAndDestroy();
        // FIN after the half (not a reset, which could discard it) so the target
        // really sees a frame that stops in the middle.
        pair.target.end(half, () => pair.target.destroy());
        return;
      }
      if (this.#corruptMinChunk !== undefined && chunk.length >= this.#corruptMinChunk) {
        this.#corruptMinChunk = undefined;
        this.#corruptions++;
        chunk = Buffer.from(chunk);
        chunk[chunk.length >> 1] ^= 0xff;
      }
    }
    this.#bytes[d.key] += chunk.length;
    if (!d.dst.write(chunk)) d.blocked = true;
  }

  /** Reads from `src` only while its data can go somewhere. */
  #update(pair: Pair, d: Direction): void {
    const hold = pair.dead || this.#stalled || d.blocked || d.queuedBytes >= MAX_QUEUED_BYTES || (d === pair.up && !pair.connected);
    if (hold) d.src.pause();
    else d.src.resume();
  }

  /** Makes every queued chunk due now and forwards what it can. */
  #releaseAll(): void {
    const now = Date.now();
    for (const p of this.#pairs) {
      for (const d of [p.up, p.down]) {
        for (const q of d.queue) q.due = Math.min(q.due, now);
        clearTimeout(d.timer);
        d.timer = undefined;
        this.#flush(p, d);
      }
    }
  }

  /** Tears a live pair down; a pair already dying (e.g. flushing a drop) is left alone. */
  #kill(pair: Pair, reset: boolean): void {
    if (pair.dead) return;
    this.#destroy(pair, reset);
  }

  #destroy(pair: Pair, reset: boolean): void {
    pair.dead = true;
    this.#clearTimers(pair);
    for (const s of [pair.client, pair.target]) {
      // A reset needs a connected socket; one still connecting is just destroyed.
      if (reset && !s.connecting && !s.destroyed) s.resetAndDestroy();
      else s.destroy();
    }
  }

  #clearTimers(pair: Pair): void {
    for (const d of [pair.up, pair.down]) {
      clearTimeout(d.timer);
      d.timer = undefined;
      d.queue = [];
      d.queuedBytes = 0;
    }
  }
}
