import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlClient } from '../sidecar/control/control-client.js';
import { pairToJson, type PairJson as PairStatusJson } from '../sidecar/control/pair-json.js';
import { metricSum, randomFile, scrapeMetrics, sha256File, sparseFile } from './helpers/replication-harness.js';
import { runCli } from './helpers/run-cli.js';
import { SidecarProcess } from './helpers/sidecar-process.js';
import { makeCa, makeSiteIdentities, sidecarIdentityArgs, type SiteIdentities } from './helpers/site-identities.js';
import { waitFor } from './helpers/wait-for.js';

// Issue 19, item 3: a secondary that never synced used to accept any primary its peer
// port trusted, so whoever held a certificate of a trusted CA could fill it. A secondary
// created for remote identity X refuses a primary presenting Y, before and after its
// first sync. One CA signs all three sites here: only the identities differ.

const MiB = 1 << 20;
const VOLUME = 4 * MiB;

describe('a secondary accepts only the remote identity it was configured for', () => {
  let dir: string;
  const ids: Record<'a' | 'b' | 'c', SiteIdentities> = {} as Record<'a' | 'b' | 'c', SiteIdentities>;
  const sidecars: Partial<Record<'a' | 'b' | 'c', SidecarProcess>> = {};
  const clients: Partial<Record<'a' | 'b' | 'c', ControlClient>> = {};

  const img = (n: string): string => join(dir, `${n}.img`);
  const ctl = (k: 'a' | 'b' | 'c'): string[] => ['--control', sidecars[k]!.addresses.control, '--tls-cert', ids[k].operator.cert, '--tls-key', ids[k].operator.key, '--tls-ca', ids[k].ca];
  const cli = async (k: 'a' | 'b' | 'c', ...args: string[]): Promise<void> => {
    const r = await runCli([...args, ...ctl(k)]);
    if (r.code !== 0) throw new Error(`blockmirror ${args.join(' ')} on ${k} failed: ${r.stderr}`);
  };
  const status = async (k: 'a' | 'b' | 'c', name = 'db'): Promise<PairStatusJson> => {
    const c = (clients[k] ??= new ControlClient(sidecars[k]!.addresses.control, { tls: { cert: ids[k].operator.cert, key: ids[k].operator.key, ca: ids[k].ca } }));
    return pairToJson(await c.getPair(name));
  };
  const until = (k: 'a' | 'b' | 'c', what: string, ok: (s: PairStatusJson) => boolean, timeoutMs = 30_000, name = 'db'): Promise<PairStatusJson> => {
    let last: PairStatusJson | undefined;
    return waitFor(what, async () => ((last = await status(k, name)), ok(last) ? last : undefined), { timeoutMs, intervalMs: 200 }).catch((err: Error) => {
      throw new Error(`${err.message}; last: ${JSON.stringify(last && { state: last.state, retries: last.retries, lastError: last.lastError })}`);
    });
  };
  const identityRefusals = async (): Promise<number> => metricSum(await scrapeMetrics(sidecars.b!.addresses.metrics), 'blockmirror_peer_refused_total', { reason: 'identity' });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bm-peer-ident-'));
    const ca = await makeCa(dir, 'shared');
    for (const k of ['a', 'b', 'c'] as const) ids[k] = await makeSiteIdentities(dir, `site-${k}`, { ca });
    const [a, b, c] = await Promise.all((['a', 'b', 'c'] as const).map((k) => SidecarProcess.start({ stateDir: join(dir, `state-${k}`), args: sidecarIdentityArgs(ids[k]) })));
    Object.assign(sidecars, { a, b, c });
    await Promise.all([randomFile(img('a'), VOLUME), randomFile(img('c'), VOLUME), sparseFile(img('b'), VOLUME)]);
    await cli('b', 'pair', 'create', 'db', '--volume', img('b'), '--role', 'secondary', '--remote-identity', 'spiffe://blockmirror/site-a/peer');
  }, 60_000);

  afterAll(async () => {
    for (const c of Object.values(clients)) c.close();
    await Promise.all(Object.values(sidecars).map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  /** C, trusted by B's CA but not the identity B's pair names, tries to become its primary. */
  const refusedPrimary = async (): Promise<void> => {
    const hash = await sha256File(img('b'));
    const before = await identityRefusals();
    await cli('c', 'pair', 'create', 'db', '--volume', img('c'), '--role', 'primary', '--peer', sidecars.b!.addresses.peer, '--nbd-listen', '127.0.0.1:0');
    const s = await until('c', 'the primary of the wrong identity refused repeatedly', (x) => x.state === 'Retrying' && x.retries >= 3);
    expect(s.lastError).toContain('pair "db" accepts only spiffe://blockmirror/site-a/peer; the caller is spiffe://blockmirror/site-c/peer');
    expect(s.bytesOnWire).toBe(0);
    expect(await identityRefusals()).toBeGreaterThanOrEqual(before + 3);
    await cli('c', 'pair', 'delete', 'db');
    expect(await sha256File(img('b'))).toBe(hash);
  };

  it('refuses a primary presenting another identity before the first sync', async () => {
    await refusedPrimary();
    const b = await status('b');
    expect(b.remoteIdentity).toBe('spiffe://blockmirror/site-a/peer');
    expect(b.consistent).toBe(false);
    expect(b.peerGeneration).toBe('');
  }, 60_000);

  it('takes the configured primary, then still refuses the other identity after the first sync', async () => {
    await cli('a', 'pair', 'create', 'db', '--volume', img('a'), '--role', 'primary', '--peer', sidecars.b!.addresses.peer, '--nbd-listen', '127.0.0.1:0');
    await until('a', 'InSync with the configured primary', (x) => x.state === 'InSync' && x.outOfSyncBytes === 0, 60_000);
    expect(await sha256File(img('b'))).toBe(await sha256File(img('a')));
    await cli('a', 'pair', 'delete', 'db');
    expect((await status('b')).consistent).toBe(true);
    await refusedPrimary();
    expect(await sha256File(img('b'))).toBe(await sha256File(img('a')));
  }, 90_000);

  it('a primary pinned to a remote identity refuses a secondary presenting another', async () => {
    await cli('a', 'pair', 'create', 'pinned', '--volume', img('a'), '--role', 'primary', '--peer', sidecars.b!.addresses.peer, '--peer-pair', 'db', '--nbd-listen', '127.0.0.1:0', '--remote-identity', 'spiffe://blockmirror/site-c/peer');
    const s = await until('a', 'the pinned primary refusing site B', (x) => x.state === 'Retrying' && x.retries >= 2, 30_000, 'pinned');
    expect(s.bytesOnWire).toBe(0);
    expect(s.lastError).toContain("the server's certificate is not spiffe://blockmirror/site-c/peer: it carries spiffe://blockmirror/site-b/peer");
    await cli('a', 'pair', 'delete', 'pinned');
  }, 60_000);
});
