import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { Server as GrpcServer, ServerCredentials } from '@grpc/grpc-js';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import winston from 'winston';
import type { HandshakeResponse__Output } from '../../../proto/gen/blockmirror/replication/v1/HandshakeResponse.js';
import { openSecondaryEndpoint } from '../../../test/helpers/open-secondary-endpoint.js';
import { openTempVolume, type TempVolume } from '../../../test/helpers/temp-volume.js';
import { waitFor } from '../../../test/helpers/wait-for.js';
import { loadReplicationProto } from '../../grpc/load-proto.js';
import { frameChecksum } from '../wire/frame-builder.js';
import { Backoff } from './backoff.js';
import { PeerLink } from './peer-link.js';
import { replicationService } from '../secondary/replication-service.js';
import { SecondaryEndpoint } from '../secondary/secondary-endpoint.js';
import type { SitePairLocator } from '../secondary/site-pair-locator.js';

const MiB = 1 << 20;
const BLOCK = 65536;
const logger = winston.createLogger({ silent: true });
const WAIT = { timeoutMs: 10_000, intervalMs: 20 };

/**
 * One sidecar's peer port for these tests: the real replication service, optionally
 * holding pair `db`, behind a TCP forwarder that counts the connections it accepts.
 */
class TestPeer {
  readonly grpc: GrpcServer;
  readonly front: Server;
  readonly address: string;
  accepted = 0;
  holds: SecondaryEndpoint | undefined;
  site: SitePairLocator | undefined;
  readonly #sockets = new Set<Socket>();

  private constructor(grpc: GrpcServer, front: Server, address: string) {
    this.grpc = grpc;
    this.front = front;
    this.address = address;
  }

  static async start(holds?: SecondaryEndpoint): Promise<TestPeer> {
    const grpc = new GrpcServer();
    const port = await new Promise<number>((resolve, reject) => grpc.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    const front = createServer();
    await new Promise<void>((resolve) => front.listen({ host: '127.0.0.1', port: 0 }, () => resolve()));
    const peer = new TestPeer(grpc, front, `127.0.0.1:${(front.address() as AddressInfo).port}`);
    peer.holds = holds;
    grpc.addService(
      loadReplicationProto().blockmirror.replication.v1.ReplicationService.service,
      replicationService({
        lookup: (name) => (name === 'db' ? peer.holds : undefined),
        commitGroup: () => Promise.resolve(),
        logger,
        // Read at each call: a test changes who holds what as it goes.
        site: { holderOf: (pairId) => (peer.site ? peer.site.holderOf(pairId) : Promise.resolve(undefined)) },
      }),
    );
    front.on('connection', (inbound) => {
      peer.accepted++;
      const outbound = createConnection({ host: '127.0.0.1', port });
      for (const s of [inbound, outbound]) {
        peer.#sockets.add(s);
        s.on('close', () => peer.#sockets.delete(s));
        s.on('error', () => undefined);
      }
      inbound.pipe(outbound).pipe(inbound);
    });
    return peer;
  }

  /** Redirects handshakes for pairs it does not hold to `to` (undefined: refuse them). */
  redirectTo(to: TestPeer | undefined): void {
    this.site = { holderOf: () => Promise.resolve(to?.address) };
  }

  async stop(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.front.close(() => resolve()));
    this.grpc.forceShutdown();
  }
}

const frame = (offset: number, fill: number): { runs: { offset: number; length: number; zero: boolean }[]; payload: Buffer; crc32c: number; durable: boolean } => {
  const runs = [{ offset, length: 4096, zero: false }];
  const payload = Buffer.alloc(4096, fill);
  return { runs, payload, crc32c: frameChecksum(runs, payload), durable: true };
};

describe('PeerLink', () => {
  let tmp: TempVolume[];
  let peers: TestPeer[];
  let links: PeerLink[];

  const endpoint = async (): Promise<SecondaryEndpoint> => {
    const t = await openTempVolume('bm-link-', 4 * MiB);
    tmp.push(t);
    return openSecondaryEndpoint('db', t.volume, BLOCK, join(t.dir, 'state'), logger);
  };
  const peer = async (holds?: SecondaryEndpoint): Promise<TestPeer> => {
    const p = await TestPeer.start(holds);
    peers.push(p);
    return p;
  };
  const link = (address: string, lanes = 1, backoff?: Backoff): { link: PeerLink; sessions: (HandshakeResponse__Output | null)[] } => {
    const sessions: (HandshakeResponse__Output | null)[] = [];
    const l = new PeerLink({
      address,
      remotePair: 'db',
      volumeBytes: 4 * MiB,
      blockSize: BLOCK,
      generations: () => ({ current: 'gen-a', bitmap: '', history: [] }),
      legacyGeneration: () => 'gen-a',
      syncedPeerGeneration: () => '',
      logger,
      mode: 'sync',
      lanes,
      ...(backoff ? { backoff } : {}),
      onSession: (s) => sessions.push(s),
    });
    links.push(l);
    l.start();
    return { link: l, sessions };
  };

  beforeEach(() => {
    tmp = [];
    peers = [];
    links = [];
  });

  afterEach(async () => {
    for (const l of links) l.close();
    for (const p of peers) await p.stop();
    for (const t of tmp) await t.remove();
  });

  it('runs the handshake, both streams and MarkSynced of a session over one connection', async () => {
    const ep = await endpoint();
    const b = await peer(ep);
    const { link: l } = link(b.address);
    await waitFor('a session', () => l.connected, WAIT);
    await l.send('mirror', { ...frame(0, 1), group: 0 });
    await l.send('resync', { ...frame(65536, 2), group: 0 });
    await l.markSynced({ current: 'gen-a', bitmap: '', history: [] });
    expect(ep.consistent).toBe(true);
    expect(b.accepted).toBe(1);
  });

  it('follows a redirect to the sidecar holding the pair, and keeps the whole session there', async () => {
    const ep = await endpoint();
    const holder = await peer(ep);
    const entry = await peer();
    entry.redirectTo(holder);
    const { link: l, sessions } = link(entry.address);
    await waitFor('a session', () => l.connected, WAIT);
    expect(sessions[0]?.redirect).toBe('');
    expect(l.target).toBe(holder.address);
    await l.send('mirror', { ...frame(0, 3), group: 0 });
    await l.send('resync', { ...frame(65536, 4), group: 0 });
    await l.markSynced({ current: 'gen-a', bitmap: '', history: [] });
    // The entry point saw the handshake only; every call of the session went to the holder, on one connection.
    expect(entry.accepted).toBe(1);
    expect(holder.accepted).toBe(1);
    expect(ep.stats.sessions).toBe(1);
  });

  it('reconnects to the sidecar it was redirected to, and asks the entry point again once that fails', async () => {
    const ep = await endpoint();
    const first = await peer(ep);
    const entry = await peer();
    entry.redirectTo(first);
    const { link: l } = link(entry.address);
    await waitFor('a session on the first holder', () => l.connected && l.target === first.address, WAIT);

    // A new session after a failure goes straight back to the holder it was sent to.
    const session = l.sessionId;
    l.fail('test: session dropped');
    await waitFor('a new session', () => l.connected && l.sessionId !== session, WAIT);
    expect(l.target).toBe(first.address);
    expect(entry.accepted).toBe(1);

    // The pair moves to another node: the old holder refuses, the entry point knows the new one.
    const second = await peer(ep);
    first.holds = undefined;
    entry.redirectTo(second);
    l.fail('test: pair moved');
    await waitFor('a session on the new holder', () => l.connected && l.target === second.address, WAIT);
    expect(entry.accepted).toBe(2);
    await l.send('mirror', { ...frame(0, 5), group: 0 });
    expect(second.accepted).toBe(1);
  });

  it('spreads mirror writes over lanes, each its own connection, the same bytes always on the same lane', async () => {
    const ep = await endpoint();
    const vol = tmp.at(-1)!.volume;
    const b = await peer(ep);
    const { link: l } = link(b.address, 3);
    await waitFor('a session', () => l.connected, WAIT);
    expect(l.lanes).toBe(3);
    expect(b.accepted).toBe(3);
    // A write across a lane boundary (cut in two, one frame per lane) given as two chunks,
    // then rewrites of its bytes: the last one sent is what the secondary holds.
    const write = (offset: number, fill: number, length: number): Promise<void> => {
      const runs = [{ offset, length, zero: false }];
      const data = Buffer.alloc(length, fill);
      const payload = [data.subarray(0, 1000), data.subarray(1000)];
      return l.send('mirror', { runs, payload, crc32c: frameChecksum(runs, payload), durable: false });
    };
    const sent: Promise<void>[] = [];
    for (let fill = 1; fill <= 20; fill++) sent.push(write(MiB - 8192 + (fill % 2) * 4096, fill, 12288));
    await Promise.all(sent);
    const got = await vol.read(MiB - 8192, 16384);
    // Even fills cover [-8 KiB, +4 KiB) around the boundary, odd ones [-4 KiB, +8 KiB).
    expect(got.subarray(0, 12288).every((x) => x === 20)).toBe(true);
    expect(got.subarray(12288).every((x) => x === 19)).toBe(true);
    expect(ep.stats.crcErrors).toBe(0);
    // Resync frames go round the lanes' resync streams: each lands.
    await Promise.all([0, 1, 2, 3].map((i) => l.send('resync', { ...frame(2 * MiB + i * BLOCK, 30 + i), group: 0 })));
    for (let i = 0; i < 4; i++) expect((await vol.read(2 * MiB + i * BLOCK, 4096)).every((x) => x === 30 + i)).toBe(true);
  });

  it('joins small writes made while a message is being written out, and sends a lone write at once', async () => {
    const ep = await endpoint();
    const vol = tmp.at(-1)!.volume;
    const b = await peer(ep);
    const { link: l } = link(b.address, 1);
    await waitFor('a session', () => l.connected, WAIT);
    const before = ep.stats.framesApplied;
    // One at a time (QD1): each write is its own message, sent as soon as it is made.
    for (let i = 0; i < 5; i++) await l.send('mirror', { ...frame(i * 4096, 1 + i), durable: false });
    expect(ep.stats.framesApplied - before).toBe(5);
    // 64 at once, overlapping in pairs (fill i, then i + 1 over the second half of i's
    // block): the first goes out alone, the rest wait for its write and go joined. The
    // secondary writes a joined message's runs in order, so the later write wins.
    const burst = ep.stats.framesApplied;
    const sent: Promise<void>[] = [];
    for (let i = 0; i < 64; i++) {
      const offset = MiB + Math.floor(i / 2) * 4096 + (i % 2) * 2048;
      sent.push(l.send('mirror', { ...frame(offset, 100 + i), durable: i === 63 }));
    }
    await Promise.all(sent);
    // 63 frames of 4 KiB fit one joined message (COALESCED_PAYLOAD_BYTES).
    expect(ep.stats.framesApplied - burst).toBe(2);
    const got = await vol.read(MiB, 33 * 4096);
    for (let i = 0; i < 64; i += 2) {
      const at = (i / 2) * 4096;
      expect(got.subarray(at, at + 2048).every((x) => x === 100 + i)).toBe(true);
      // The odd write's second half lies in the next block, which the next even write covers.
      expect(got.subarray(at + 2048, at + 4096).every((x) => x === 101 + i)).toBe(true);
    }
    expect(got.subarray(32 * 4096, 32 * 4096 + 2048).every((x) => x === 163)).toBe(true);
    expect(ep.stats.crcErrors).toBe(0);
  });

  it('goes on without a lane that reaches a sidecar not holding the session', async () => {
    const ep = await endpoint();
    const holder = await peer(ep);
    const stranger = await peer();
    // An entry point that spreads connections: the first to the holder, the rest elsewhere.
    const front = createServer();
    let n = 0;
    front.on('connection', (inbound) => {
      const [host, port] = (n++ === 0 ? holder.address : stranger.address).split(':');
      const outbound = createConnection({ host: host!, port: Number(port) });
      for (const x of [inbound, outbound]) x.on('error', () => undefined);
      inbound.pipe(outbound).pipe(inbound);
    });
    await new Promise<void>((resolve) => front.listen({ host: '127.0.0.1', port: 0 }, () => resolve()));
    try {
      const { link: l } = link(`127.0.0.1:${(front.address() as AddressInfo).port}`, 2);
      await waitFor('a session', () => l.connected, WAIT);
      expect(l.lanes).toBe(1);
      expect(stranger.accepted).toBe(1);
      const session = l.sessionId;
      await l.send('mirror', { ...frame(MiB, 6), group: 0 });
      await l.send('mirror', { ...frame(0, 7), group: 0 });
      expect(l.sessionId).toBe(session);
      l.close();
    } finally {
      front.close();
    }
  });

  it('tries again at once when told the peer is back, not when its backoff says', async () => {
    const ep = await endpoint();
    const b = await peer();
    // Refused first (b does not hold the pair yet), and the next attempt a minute away.
    const { link: l } = link(b.address, 1, new Backoff({ initialMs: 60_000, maxMs: 60_000, random: () => 0.99 }));
    await waitFor('a refused attempt', () => l.retries > 0, WAIT);
    b.holds = ep;
    l.redialSoon();
    await waitFor('a session long before the backoff ran out', () => l.connected, WAIT);
  });

  it('keeps trying within milliseconds while a peer known to be back is not ready yet', async () => {
    const ep = await endpoint();
    const b = await peer();
    const { link: l } = link(b.address, 1, new Backoff({ initialMs: 60_000, maxMs: 60_000, random: () => 0.99 }));
    await waitFor('a refused attempt', () => l.retries > 0, WAIT);
    // Still restarting its pair: the redial is refused too, and the one after it must not
    // wait out the minute-long backoff of the outage.
    const refused = l.retries;
    l.redialSoon();
    await waitFor('the redial refused', () => l.retries > refused, WAIT);
    b.holds = ep;
    await waitFor('a session long before the backoff ran out', () => l.connected, WAIT);
  });

  it('says no sidecar of the site holds an unknown pair', async () => {
    const entry = await peer();
    entry.redirectTo(undefined);
    const { link: l } = link(entry.address);
    await waitFor('a refused attempt', () => l.retries > 0, WAIT);
    expect(l.connected).toBe(false);
    expect(l.lastError).toMatch(/no sidecar of this site holds pair "db"/);
  });

  it('stops following redirects that go round in circles', async () => {
    const a = await peer();
    const b = await peer();
    a.redirectTo(b);
    b.redirectTo(a);
    const { link: l } = link(a.address);
    await waitFor('a refused attempt', () => l.retries > 0, WAIT);
    expect(l.connected).toBe(false);
    expect(l.lastError).toMatch(/redirected more than 3 times/);
    // Next attempt starts at the entry point again.
    expect(l.target).toBe(a.address);
  });
});
