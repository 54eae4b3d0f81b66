import { afterEach, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { FaultProxy } from './helpers/fault-proxy.js';
import { waitFor } from './helpers/wait-for.js';

// The fault-injecting proxy, against plain loopback TCP targets.

const KiB = 1024;
const MiB = 1024 * KiB;
const WAIT = { timeoutMs: 5_000, intervalMs: 5 };
// How long "nothing happens" is observed for (a stall); short, but far above loopback latency.
const QUIET_WINDOW_MS = 300;

const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  // Every cleanup runs even when one fails; failures are reported together.
  const errors: string[] = [];
  while (cleanups.length > 0) {
    try {
      await cleanups.pop()!();
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  if (errors.length > 0) throw new Error(`cleanup failed:\n${errors.join('\n')}`);
});

/** Whatever one side of a TCP connection has seen. */
class Peer {
  readonly chunks: Buffer[] = [];
  bytes = 0;
  ended = false;
  closed = false;
  readonly #waiters = new Set<() => void>();

  constructor(readonly socket: Socket) {
    socket.on('error', () => undefined);
    socket.on('data', (b: Buffer) => {
      this.chunks.push(b);
      this.bytes += b.length;
      this.#wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.#wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.#wake();
    });
  }

  received(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** Destroys the socket and waits for its handle to be gone. */
  async destroy(): Promise<void> {
    if (this.closed) return;
    const closed = new Promise((resolve) => this.socket.once('close', resolve));
    this.socket.destroy();
    await closed;
  }

  /** Resolves as soon as `n` bytes in total have arrived (event-driven, for timing). */
  async untilBytes(n: number, timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.bytes < n) {
      if (this.closed) throw new Error(`closed after ${this.bytes} of ${n} bytes`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out at ${this.bytes} of ${n} bytes`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, left);
        function done(): void {
          clearTimeout(t);
          resolve();
        }
        this.#waiters.add(done);
      });
    }
  }

  #wake(): void {
    const w = [...this.#waiters];
    this.#waiters.clear();
    for (const f of w) f();
  }
}

interface Target {
  address: string;
  /** Server side of every accepted connection, in order. */
  conns: Peer[];
}

/** An echo server (half-close echoed too) or a sink that only records, on loopback. */
async function startTarget(mode: 'echo' | 'sink'): Promise<Target> {
  const conns: Peer[] = [];
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    const peer = new Peer(socket);
    conns.push(peer);
    if (mode === 'echo') socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    await Promise.all([serverClosed, ...conns.map((c) => c.destroy())]);
  });
  const port = (server.address() as { port: number }).port;
  return { address: `127.0.0.1:${port}`, conns };
}

async function startProxy(target: Target): Promise<FaultProxy> {
  const proxy = await FaultProxy.start({ target: target.address });
  cleanups.push(() => proxy.close());
  return proxy;
}

/** Opens a client connection; does not wait for it (a refused one may never "connect"). */
function dial(address: string): { peer: Peer; connected: Promise<void> } {
  const [host, port] = address.split(':');
  const socket = connect({ host: host!, port: Number(port), allowHalfOpen: true });
  const peer = new Peer(socket);
  cleanups.push(() => peer.destroy());
  const connected = new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  connected.catch(() => undefined);
  return { peer, connected };
}

async function dialOk(address: string): Promise<Peer> {
  const c = dial(address);
  await c.connected;
  return c.peer;
}

/** Active resources of one kind (TCPSocketWrap, Timeout, ...). */
function resourceCount(kind: string): number {
  return process.getActiveResourcesInfo().filter((r) => r === kind).length;
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

function diffPositions(a: Buffer, b: Buffer): number[] {
  expect(a.length).toBe(b.length);
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) out.push(i);
  return out;
}

/** Round trip of a small message through an echo connection, in ms. */
async function roundTrip(c: Peer): Promise<number> {
  const start = performance.now();
  const want = c.bytes + 64;
  c.socket.write(randomBytes(64));
  await c.untilBytes(want);
  return performance.now() - start;
}

describe('FaultProxy', () => {
  it('forwards 8 MiB both ways intact, with half-close', async () => {
    const target = await startTarget('echo');
    const proxy = await startProxy(target);
    const c = await dialOk(proxy.address);
    const data = randomBytes(8 * MiB);
    c.socket.end(data);
    // The echo server ends only after our FIN reached it; its FIN must come back.
    await waitFor('echoed stream to end', () => c.ended, WAIT);
    expect(c.bytes).toBe(data.length);
    expect(sha256(c.received())).toBe(sha256(data));
    expect(proxy.bytesForwarded).toEqual({ clientToTarget: 8 * MiB, targetToClient: 8 * MiB });
    expect(proxy.connectionsAccepted).toBe(1);
    await waitFor('connection to close', () => c.closed && proxy.connections === 0, WAIT);
  });

  it('passes a half-close on and still forwards the other way', async () => {
    const target = await startTarget('sink');
    const proxy = await startProxy(target);
    const c = await dialOk(proxy.address);
    c.socket.end(Buffer.from('request'));
    await waitFor('target to see FIN', () => target.conns[0]?.ended, WAIT);
    const server = target.conns[0]!;
    expect(server.received().toString()).toBe('request');
    server.socket.end(Buffer.from('response after FIN'));
    await waitFor('client to see response and FIN', () => c.ended, WAIT);
    expect(c.received().toString()).toBe('response after FIN');
    await waitFor('both sides to close', () => c.closed && server.closed && proxy.connections === 0, WAIT);
  });

  it('propagates a reset on either side to the other', async () => {
    const target = await startTarget('sink');
    const proxy = await startProxy(target);
    const c1 = await dialOk(proxy.address);
    await waitFor('target connection', () => target.conns[0], WAIT);
    target.conns[0]!.socket.resetAndDestroy();
    await waitFor('client to be reset after target reset', () => c1.closed, WAIT);

    const c2 = await dialOk(proxy.address);
    await waitFor('second target connection', () => target.conns[1], WAIT);
    c2.socket.resetAndDestroy();
    await waitFor('target to close after client reset', () => target.conns[1]!.closed, WAIT);
    await waitFor('proxy to drop both pairs', () => proxy.connections === 0, WAIT);
  });

  it('cut closes existing connections and refuses new ones until heal', async () => {
    const target = await startTarget('echo');
    const proxy = await startProxy(target);
    const c1 = await dialOk(proxy.address);
    await roundTrip(c1);

    proxy.cut();
    await waitFor('existing client to close', () => c1.closed, WAIT);
    await waitFor('target side to close', () => target.conns[0]!.closed, WAIT);

    const refused = dial(proxy.address).peer;
    await waitFor('new connection to be closed', () => refused.closed, WAIT);
    expect(refused.bytes).toBe(0);
    expect(target.conns).toHaveLength(1);
    expect(proxy.connectionsRefused).toBe(1);

    proxy.heal();
    const c3 = await dialOk(proxy.address);
    await roundTrip(c3);
    expect(target.conns).toHaveLength(2);
    expect(proxy.connectionsAccepted).toBe(2);
  });

  it('stall stops data both ways without closing, and heal resumes it', async () => {
    const target = await startTarget('sink');
    const proxy = await startProxy(target);
    const c = await dialOk(proxy.address);
    const first = randomBytes(64 * KiB);
    c.socket.write(first);
    await waitFor('first 64 KiB at the sink', () => target.conns[0]?.bytes === first.length, WAIT);
    const server = target.conns[0]!;

    proxy.stall();
    const upstream = randomBytes(1 * MiB);
    const downstream = randomBytes(1 * KiB);
    c.socket.write(upstream);
    server.socket.write(downstream);
    // Observe a short window in which nothing may move either way.
    const windowEnd = Date.now() + QUIET_WINDOW_MS;
    await waitFor('quiet window', () => Date.now() >= windowEnd || server.bytes !== first.length || c.bytes !== 0, { timeoutMs: QUIET_WINDOW_MS * 3, intervalMs: 10 });
    expect(server.bytes).toBe(first.length);
    expect(c.bytes).toBe(0);
    expect(c.closed || server.closed).toBe(false);

    proxy.heal();
    await waitFor('upstream to arrive', () => server.bytes === first.length + upstream.length, WAIT);
    await waitFor('downstream to arrive', () => c.bytes === downstream.length, WAIT);
    expect(sha256(server.received())).toBe(sha256(Buffer.concat([first, upstream])));
    expect(c.received().equals(downstream)).toBe(true);
  });

  it('delay adds latency each way, keeps order, and delay(0) removes it', async () => {
    const DELAY_MS = 150;
    const target = await startTarget('echo');
    const proxy = await startProxy(target);
    const c = await dialOk(proxy.address);
    await roundTrip(c);

    proxy.delay(DELAY_MS);
    const slow = await roundTrip(c);
    // One-way latency each way; a little slack for timer granularity.
    expect(slow).toBeGreaterThanOrEqual(2 * DELAY_MS - 5);

    // Many chunks queued behind the delay still arrive in order.
    proxy.delay(20);
    const bulk = randomBytes(4 * MiB);
    const before = c.bytes;
    c.socket.write(bulk);
    await c.untilBytes(before + bulk.length);
    expect(sha256(c.received().subarray(before))).toBe(sha256(bulk));

    proxy.delay(0);
    const fast = await roundTrip(c);
    expect(fast).toBeLessThan(DELAY_MS);
  });

  it('dropMidStream forwards only the first half of a chunk, then closes both sides', async () => {
    const target = await startTarget('sink');
    const proxy = await startProxy(target);
    const c = await dialOk(proxy.address);
    const small = randomBytes(100);
    c.socket.write(small);
    await waitFor('small chunk (below 1 KiB) to pass', () => target.conns[0]?.bytes === small.length, WAIT);
    const server = target.conns[0]!;

    proxy.dropMidStream();
    const big = randomBytes(64 * KiB);
    c.socket.write(big);
    await waitFor('client to be reset', () => c.closed, WAIT);
    await waitFor('target side to see FIN', () => server.ended, WAIT);

    const got = server.received();
    // At least half of a >= 1 KiB chunk, never the whole write.
    expect(got.length).toBeGreaterThanOrEqual(small.length + 512);
    expect(got.length).toBeLessThan(small.length + big.length);
    expect(got.equals(Buffer.concat([small, big]).subarray(0, got.length))).toBe(true);
    expect(server.ended).toBe(true);
    expect(proxy.bytesForwarded.clientToTarget).toBe(got.length);
    expect(proxy.drops).toBe(1);
    await waitFor('proxy to drop the pair', () => proxy.connections === 0, WAIT);
  });

  it('corruptNext flips exactly one byte in a large chunk, once', async () => {
    const target = await startTarget('sink');
    const proxy = await startProxy(target);
    const data = randomBytes(4 * MiB);

    proxy.corruptNext();
    const c1 = await dialOk(proxy.address);
    c1.socket.end(data);
    await waitFor('first stream at the sink', () => target.conns[0]?.ended, WAIT);
    const got = target.conns[0]!.received();
    expect(sha256(got)).not.toBe(sha256(data));
    const diffs = diffPositions(got, data);
    expect(diffs).toHaveLength(1);
    expect(got[diffs[0]!]).toBe(data[diffs[0]!]! ^ 0xff);
    expect(proxy.corruptions).toBe(1);

    // Disarmed after one corruption.
    const c2 = await dialOk(proxy.address);
    c2.socket.end(data);
    await waitFor('second stream at the sink', () => target.conns[1]?.ended, WAIT);
    expect(sha256(target.conns[1]!.received())).toBe(sha256(data));
    expect(proxy.corruptions).toBe(1);
  });

  it('corruptNext skips chunks below minChunk and hits the middle of the next one', async () => {
    const target = await startTarget('sink');
    const proxy = await startProxy(target);
    const c = await dialOk(proxy.address);
    proxy.corruptNext({ minChunk: 100 });
    const small = randomBytes(10);
    c.socket.write(small);
    await waitFor('small chunk at the sink', () => target.conns[0]?.bytes === small.length, WAIT);
    const chunk = randomBytes(200);
    c.socket.write(chunk);
    await waitFor('second chunk at the sink', () => target.conns[0]!.bytes === small.length + chunk.length, WAIT);
    expect(diffPositions(target.conns[0]!.received(), Buffer.concat([small, chunk]))).toEqual([small.length + chunk.length / 2]);
  });

  it('close leaves no sockets or timers behind', async () => {
    // Sockets are counted exactly: their 'close' comes once the handle is gone (unlike a
    // server's, which is why the listener is checked by connecting instead). Timers can
    // only be checked not to exceed the baseline: unrelated ones (jest's) may expire.
    const target = await startTarget('echo');
    const sockets = resourceCount('TCPSocketWrap');
    const timers = resourceCount('Timeout');
    const proxy = await FaultProxy.start({ target: target.address });
    cleanups.push(() => proxy.close());
    const c = await dialOk(proxy.address);
    await roundTrip(c);
    // Leave delayed data queued, so a delay timer is pending when close() runs.
    proxy.delay(5_000);
    c.socket.write(randomBytes(4 * KiB));
    await waitFor('data to be held by the proxy', () => proxy.queuedBytes === 4 * KiB, WAIT);
    await proxy.close();
    expect(proxy.connections).toBe(0);
    // close() ends the client with a FIN; the test's own sockets go too, to compare with the baseline.
    await waitFor('client to see FIN', () => c.ended, WAIT);
    await c.destroy();
    await waitFor('target side to close', () => target.conns[0]!.closed, WAIT);
    expect(resourceCount('TCPSocketWrap')).toBe(sockets);
    expect(resourceCount('Timeout')).toBeLessThanOrEqual(timers);
    const late = dial(proxy.address);
    await expect(late.connected).rejects.toThrow(/ECONNREFUSED/);
  });
});
