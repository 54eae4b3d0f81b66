import { afterEach, describe, expect, it } from '@jest/globals';
import { Server, ServerCredentials, status as GrpcStatus } from '@grpc/grpc-js';
import { createLogger, transports } from 'winston';
import type { HandshakeResponder } from './replication-service.js';
import { replicationService } from './replication-service.js';
import { announceReady } from './announce-ready.js';
import { peerServiceDefinition } from '../wire/peer-service.js';
import type { SitePairLocator } from './site-pair-locator.js';

const logger = createLogger({ transports: [new transports.Console({ silent: true })] });
const responder: HandshakeResponder = { handshake: () => Promise.reject(new Error('not used')) };

/** A peer port on loopback whose sidecar holds the pairs in `primaries` (true: a primary with a peer). */
async function peerPort(primaries: Record<string, boolean>, site?: SitePairLocator): Promise<{ address: string; heard: string[]; refused: string[]; server: Server }> {
  const heard: string[] = [];
  const refused: string[] = [];
  const server = new Server();
  server.addService(
    peerServiceDefinition(),
    replicationService({
      lookup: () => undefined,
      responder: (name) => (name in primaries ? responder : undefined),
      peerReady: (name) => {
        heard.push(name);
        return primaries[name] === true;
      },
      commitGroup: () => Promise.resolve(),
      logger,
      onRefused: (reason) => refused.push(reason),
      ...(site ? { site } : {}),
    }),
  );
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  servers.push(server);
  return { address: `127.0.0.1:${port}`, heard, refused, server };
}

const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.forceShutdown();
});

describe('announceReady (PeerReady)', () => {
  it("tells the primary pair by its name on the peer's sidecar", async () => {
    const p = await peerPort({ db: true });
    await expect(announceReady({ address: p.address, remotePair: 'db' })).resolves.toBe(p.address);
    expect(p.heard).toEqual(['db']);
  });

  it('follows the site to the sidecar holding the pair', async () => {
    const holder = await peerPort({ db: true });
    const entry = await peerPort({}, { holderOf: (pair) => Promise.resolve(pair === 'db' ? holder.address : undefined) });
    await expect(announceReady({ address: entry.address, remotePair: 'db' })).resolves.toBe(holder.address);
    expect(entry.heard).toEqual([]);
    expect(holder.heard).toEqual(['db']);
  });

  it('stops following redirects that go round in circles', async () => {
    const loop: { address: string } = { address: '' };
    const p = await peerPort({}, { holderOf: () => Promise.resolve(loop.address) });
    loop.address = p.address;
    await expect(announceReady({ address: p.address, remotePair: 'db' })).rejects.toThrow(/more than 3 redirects/);
  });

  it('is refused for a pair that is not a primary with a peer, or not held on the site', async () => {
    const p = await peerPort({ standalone: false });
    await expect(announceReady({ address: p.address, remotePair: 'standalone' })).rejects.toMatchObject({ code: GrpcStatus.FAILED_PRECONDITION });
    await expect(announceReady({ address: p.address, remotePair: 'nobody' })).rejects.toMatchObject({ code: GrpcStatus.NOT_FOUND });
    // Only the unknown pair counts as a refused peer: a secondary's name is no refusal of the caller.
    expect(p.refused).toEqual(['pair']);
  });

  it('ends when its signal aborts, and refuses plaintext off loopback before dialling', async () => {
    const p = await peerPort({ db: true });
    const abort = new AbortController();
    abort.abort();
    await expect(announceReady({ address: p.address, remotePair: 'db', signal: abort.signal })).rejects.toMatchObject({ code: GrpcStatus.CANCELLED });
    await expect(announceReady({ address: '10.0.0.1:7401', remotePair: 'db' })).rejects.toThrow(/loopback/);
  });
});
