import { describe, expect, it } from '@jest/globals';
import { createLogger, transports } from 'winston';
import type { LeaseRecord } from './kube/kube-client.js';
import { KubeApiError } from './kube/kube-api-error.js';
import { acquireLeadership } from './leader-election.js';

const logger = createLogger({ silent: true, transports: [new transports.Console()] });

/** A Lease store with the API server's optimistic concurrency (resourceVersion). */
class LeaseStore {
  lease: LeaseRecord | undefined;
  #rv = 0;
  getLease(): Promise<LeaseRecord | undefined> {
    return Promise.resolve(this.lease && { ...this.lease });
  }
  writeLease(l: LeaseRecord): Promise<LeaseRecord> {
    if ((this.lease?.resourceVersion ?? undefined) !== l.resourceVersion) return Promise.reject(new KubeApiError('conflict', 409));
    this.lease = { ...l, resourceVersion: String(++this.#rv) };
    return Promise.resolve(this.lease);
  }
}

describe('acquireLeadership', () => {
  it('takes a free lease, and a second candidate waits until the holder stops renewing', async () => {
    const store = new LeaseStore();
    const stopA = new AbortController();
    const a = await acquireLeadership({ client: store, namespace: 'ns', name: 'op', identity: 'a', leaseSeconds: 1, retryMs: 50, logger, signal: stopA.signal });
    expect(store.lease?.holder).toBe('a');
    const stopB = new AbortController();
    let bLeads = false;
    const b = acquireLeadership({ client: store, namespace: 'ns', name: 'op', identity: 'b', leaseSeconds: 1, retryMs: 50, logger, signal: stopB.signal }).then((r) => {
      bLeads = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 400));
    // A keeps renewing: B must not have taken over.
    expect(bLeads).toBe(false);
    expect(store.lease?.holder).toBe('a');
    stopA.abort();
    await a.lost;
    await b;
    expect(store.lease?.holder).toBe('b');
    stopB.abort();
  });

  it('loses leadership when renewals fail for a lease period', async () => {
    const store = new LeaseStore();
    const stop = new AbortController();
    const r = await acquireLeadership({ client: store, namespace: 'ns', name: 'op', identity: 'a', leaseSeconds: 1, retryMs: 50, logger, signal: stop.signal });
    // Someone else took the lease by force: every renewal of ours now conflicts.
    store.lease = { ...store.lease!, holder: 'intruder', renewTime: new Date(Date.now() + 60_000), resourceVersion: 'other' };
    await r.lost;
    stop.abort();
  });
});
