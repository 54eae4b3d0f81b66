import { describe, expect, it } from '@jest/globals';
import winston from 'winston';
import type { LeaseRecord } from '../kube/kube-client.js';
import { LeasePairLocator } from './lease-pair-locator.js';
import { runNodeRegistration } from './node-registration.js';
import { NODE_LABEL, PEER_ANNOTATION, SECONDARY_PAIRS_ANNOTATION, SIDECAR_LABEL, SIDECAR_LABEL_VALUE, readSecondaryPairs } from './sidecar-lease.js';

const logger = winston.createLogger({ silent: true });

function lease(node: string, peer: string, pairs: string, renewTime = new Date()): LeaseRecord {
  return {
    name: `blockmirror-sidecar-${node}`,
    namespace: 'ns',
    holder: node,
    labels: { [SIDECAR_LABEL]: SIDECAR_LABEL_VALUE, [NODE_LABEL]: node },
    annotations: { [PEER_ANNOTATION]: peer, ...(pairs ? { [SECONDARY_PAIRS_ANNOTATION]: pairs } : {}) },
    leaseDurationSeconds: 40,
    renewTime,
  };
}

describe('LeasePairLocator', () => {
  const site = (leases: LeaseRecord[], node = 'node-a'): LeasePairLocator =>
    new LeasePairLocator({ client: { listLeases: () => Promise.resolve(leases) }, namespace: 'ns', node });

  it("names the peer address of the sidecar whose lease lists the pair, never this node's own", async () => {
    const leases = [lease('node-a', '10.0.0.1:7401', 'db'), lease('node-b', '10.0.0.2:7401', 'logs,web'), lease('node-c', '10.0.0.3:7401', 'cache,db')];
    expect(await site(leases).holderOf('db')).toBe('10.0.0.3:7401');
    expect(await site(leases).holderOf('web')).toBe('10.0.0.2:7401');
    expect(await site(leases).holderOf('we')).toBeUndefined();
    expect(await site(leases, 'node-c').holderOf('cache')).toBeUndefined();
  });

  it('ignores a Lease whose name is not its node label\'s (a sidecar may write only its own node\'s)', async () => {
    const impostor = { ...lease('node-c', '10.6.6.6:7401', 'db'), name: 'blockmirror-sidecar-node-x' };
    expect(await site([impostor]).holderOf('db')).toBeUndefined();
    expect(await site([impostor, lease('node-b', '10.0.0.2:7401', 'db')]).holderOf('db')).toBe('10.0.0.2:7401');
  });

  it('prefers the holder renewed last while a pair moves between nodes', async () => {
    const old = new Date(Date.now() - 30_000);
    expect(await site([lease('node-b', '10.0.0.2:7401', 'db', old), lease('node-c', '10.0.0.3:7401', 'db')]).holderOf('db')).toBe('10.0.0.3:7401');
  });

  it('fails when the leases cannot be listed (the caller refuses the peer as unavailable)', async () => {
    const broken = new LeasePairLocator({ client: { listLeases: () => Promise.reject(new Error('connection refused')) }, namespace: 'ns', node: 'node-a' });
    await expect(broken.holderOf('db')).rejects.toThrow('connection refused');
  });
});

describe('runNodeRegistration', () => {
  it('publishes the secondary pairs held, and a change before the next renewal', async () => {
    const written: LeaseRecord[] = [];
    let held = ['db'];
    const stop = new AbortController();
    const done = runNodeRegistration({
      client: {
        getLease: () => Promise.resolve(written.at(-1)),
        writeLease: (l) => Promise.resolve(void written.push(l)).then(() => l),
        deleteLease: () => Promise.resolve(),
      },
      namespace: 'ns',
      node: 'node-a',
      controlEndpoint: '10.0.0.1:7400',
      peerEndpoint: '10.0.0.1:7401',
      splice: { capable: true },
      logger,
      secondaryPairs: () => held,
      pairsPollMs: 10,
      renewMs: 60_000,
      signal: stop.signal,
    });
    const until = async (ok: () => boolean): Promise<void> => {
      const deadline = Date.now() + 5000;
      while (!ok()) {
        if (Date.now() > deadline) throw new Error(`not written: ${JSON.stringify(written.map((l) => l.annotations))}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    await until(() => written.length === 1);
    expect(readSecondaryPairs(written[0]!.annotations)).toEqual(['db']);
    held = ['web', 'db'];
    await until(() => written.length === 2);
    expect(readSecondaryPairs(written[1]!.annotations)).toEqual(['db', 'web']);
    held = [];
    await until(() => written.length === 3);
    expect(written[2]!.annotations[SECONDARY_PAIRS_ANNOTATION]).toBeUndefined();
    // Unchanged: nothing more is written before the renewal is due.
    await new Promise((r) => setTimeout(r, 100));
    expect(written).toHaveLength(3);
    stop.abort();
    await done;
  });
});
