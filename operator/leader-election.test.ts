import { afterEach, describe, expect, it } from '@jest/globals';
import { createLogger, transports } from 'winston';
import { fakeWallClock, type FakeWallClock } from '../test/helpers/fake-wall-clock.js';
import { waitFor } from '../test/helpers/wait-for.js';
import type { KubeClient, LeaseRecord } from './kube/kube-client.js';
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

const HOUR = 3_600_000;

/** `p`, or a failure naming `what` once `ms` pass (a monotonic timer: Date may be faked). */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(t));
}

/** The store as seen by a candidate whose wall clock is `skewMs` off: its renewTimes are. */
function skewed(store: LeaseStore, skewMs: number): Pick<KubeClient, 'getLease' | 'writeLease'> {
  return {
    getLease: () => store.getLease(),
    writeLease: (l) => store.writeLease({ ...l, ...(l.renewTime ? { renewTime: new Date(l.renewTime.getTime() + skewMs) } : {}) }),
  };
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

describe('acquireLeadership never compares another host\'s clock with its own', () => {
  const stops: AbortController[] = [];
  afterEach(() => stops.splice(0).forEach((s) => s.abort()));
  function stopper(): AbortController {
    const s = new AbortController();
    stops.push(s);
    return s;
  }

  it('does not displace a holder whose clock runs an hour behind while it keeps renewing', async () => {
    const store = new LeaseStore();
    const stopA = stopper();
    const a = await acquireLeadership({ client: skewed(store, -HOUR), namespace: 'ns', name: 'op', identity: 'a', leaseSeconds: 1, retryMs: 50, logger, signal: stopA.signal });
    // To B's clock, A's renewTime is always an hour past expiry.
    expect(store.lease!.renewTime!.getTime()).toBeLessThan(Date.now() - HOUR + 1000);
    let reads = 0;
    const bClient = { getLease: () => (reads++, store.getLease()), writeLease: (l: LeaseRecord) => store.writeLease(l) };
    const stopB = stopper();
    let bLeads = false;
    const b = acquireLeadership({ client: bClient, namespace: 'ns', name: 'op', identity: 'b', leaseSeconds: 1, retryMs: 50, logger, signal: stopB.signal }).then((r) => {
      bLeads = true;
      return r;
    });
    // B looks again and again over more than two lease durations.
    const t0 = performance.now();
    await waitFor('B to have watched A renew for 2.5 lease durations', () => reads >= 20 && performance.now() - t0 > 2_500);
    expect(bLeads).toBe(false);
    expect(store.lease?.holder).toBe('a');
    // And once A stops renewing, B does take over.
    stopA.abort();
    await a.lost;
    await b;
    expect(store.lease?.holder).toBe('b');
  });

  it('takes over from a holder whose clock runs an hour ahead about one lease duration after it stops renewing', async () => {
    const store = new LeaseStore();
    const stopA = stopper();
    const a = await acquireLeadership({ client: skewed(store, HOUR), namespace: 'ns', name: 'op', identity: 'a', leaseSeconds: 1, retryMs: 50, logger, signal: stopA.signal });
    const stopB = stopper();
    const b = acquireLeadership({ client: store, namespace: 'ns', name: 'op', identity: 'b', leaseSeconds: 1, retryMs: 50, logger, signal: stopB.signal });
    // B sees A renewing first.
    const rv = store.lease!.resourceVersion;
    await waitFor('A to renew', () => store.lease!.resourceVersion !== rv);
    stopA.abort();
    await a.lost;
    const stoppedAt = performance.now();
    // To B's clock, A's last renewTime is an hour ahead: it must not wait for that.
    expect(store.lease!.renewTime!.getTime()).toBeGreaterThan(Date.now() + HOUR - 1000);
    await within(b, 5_000, 'B to lead');
    const tookMs = performance.now() - stoppedAt;
    expect(store.lease?.holder).toBe('b');
    // Not before the lease could have expired (less a retry or two of observation lag)...
    expect(tookMs).toBeGreaterThan(850);
    // ...and about one lease duration after it.
    expect(tookMs).toBeLessThan(2_000);
  });
});

describe('acquireLeadership gives up on its own monotonic clock', () => {
  let clock: FakeWallClock | undefined;
  afterEach(() => {
    clock?.restore();
    clock = undefined;
  });

  it('when renewals fail, even though its wall clock stepped back an hour', async () => {
    const store = new LeaseStore();
    const stop = new AbortController();
    clock = fakeWallClock();
    const r = await acquireLeadership({ client: store, namespace: 'ns', name: 'op', identity: 'a', leaseSeconds: 2, retryMs: 200, logger, signal: stop.signal });
    clock.step(-HOUR);
    const t0 = performance.now();
    store.lease = { ...store.lease!, holder: 'intruder', resourceVersion: 'other' };
    try {
      await within(r.lost, 5_000, 'leadership to be lost');
      expect(performance.now() - t0).toBeLessThan(2_000);
    } finally {
      stop.abort();
    }
  });

  it('when a renewal hangs, before the lease can have expired for the others', async () => {
    const store = new LeaseStore();
    let hang = false;
    const client = { getLease: () => (hang ? new Promise<LeaseRecord | undefined>(() => undefined) : store.getLease()), writeLease: (l: LeaseRecord) => store.writeLease(l) };
    const stop = new AbortController();
    const r = await acquireLeadership({ client, namespace: 'ns', name: 'op', identity: 'a', leaseSeconds: 2, retryMs: 200, logger, signal: stop.signal });
    const rv = store.lease!.resourceVersion;
    await waitFor('a renewal', () => store.lease!.resourceVersion !== rv);
    const lastRenewal = performance.now();
    hang = true;
    try {
      await within(r.lost, 5_000, 'leadership to be lost');
      // Within the lease duration of the last renewal.
      expect(performance.now() - lastRenewal).toBeLessThan(2_000);
    } finally {
      stop.abort();
    }
  });
});
