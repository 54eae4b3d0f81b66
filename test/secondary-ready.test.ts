import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlClient } from '../sidecar/control/control-client.js';
import { pairToJson, type PairJson } from '../sidecar/control/pair-json.js';
import { NbdTestClient } from './helpers/nbd-test-client.js';
import { metricSum, randomFile, scrapeMetrics, sha256File, sparseFile } from './helpers/replication-harness.js';
import { runCli } from './helpers/run-cli.js';
import { SidecarProcess } from './helpers/sidecar-process.js';
import { makeCa, makeSiteIdentities, sidecarIdentityArgs, type SiteIdentities } from './helpers/site-identities.js';
import { waitFor } from './helpers/wait-for.js';

// A secondary that restarts tells its primary it is ready (PeerReady), so the primary
// dials it at once instead of when its reconnect backoff says. Real sidecars over mutual
// TLS: only the identity the primary's pair admits may hurry it.

const MiB = 1 << 20;
const VOLUME = 4 * MiB;
type Site = 'a' | 'b' | 'c';

describe('a secondary tells its primary when it is ready', () => {
  let dir: string;
  const ids = {} as Record<Site, SiteIdentities>;
  const sidecars: Partial<Record<Site, SidecarProcess>> = {};
  const clients: Partial<Record<Site, ControlClient>> = {};
  let bPeer = '';

  const img = (n: string): string => join(dir, `${n}.img`);
  const start = (k: Site, extra: string[] = []): Promise<SidecarProcess> => SidecarProcess.start({ stateDir: join(dir, `state-${k}`), args: [...sidecarIdentityArgs(ids[k]), ...extra] });
  const cli = async (k: Site, ...args: string[]): Promise<void> => {
    const ctl = ['--control', sidecars[k]!.addresses.control, '--tls-cert', ids[k].operator.cert, '--tls-key', ids[k].operator.key, '--tls-ca', ids[k].ca];
    const r = await runCli([...args, ...ctl]);
    if (r.code !== 0) throw new Error(`blockmirror ${args.join(' ')} on ${k} failed: ${r.stderr}`);
  };
  const status = async (k: Site, name = 'db'): Promise<PairJson> => {
    const c = (clients[k] ??= new ControlClient(sidecars[k]!.addresses.control, { tls: { cert: ids[k].operator.cert, key: ids[k].operator.key, ca: ids[k].ca } }));
    return pairToJson(await c.getPair(name));
  };
  const until = (k: Site, what: string, ok: (s: PairJson) => boolean, timeoutMs = 30_000): Promise<PairJson> => {
    let last: PairJson | undefined;
    return waitFor(what, async () => ((last = await status(k)), ok(last) ? last : undefined), { timeoutMs, intervalMs: 100 }).catch((err: Error) => {
      throw new Error(`${err.message}; last: ${JSON.stringify(last && { state: last.state, retries: last.retries, lastError: last.lastError })}`);
    });
  };
  const lines = (k: Site, msg: string): Record<string, unknown>[] =>
    sidecars[k]!.log.flatMap((l) => {
      try {
        const j = JSON.parse(l) as Record<string, unknown>;
        return j.message === msg ? [j] : [];
      } catch {
        return [];
      }
    });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bm-secondary-ready-'));
    const ca = await makeCa(dir, 'shared');
    for (const k of ['a', 'b', 'c'] as const) ids[k] = await makeSiteIdentities(dir, `site-${k}`, { ca });
    await Promise.all([randomFile(img('a'), VOLUME), sparseFile(img('b'), VOLUME), sparseFile(img('c'), VOLUME)]);
    sidecars.a = await start('a');
    sidecars.b = await start('b');
    // B keeps its peer port across its restart: A's pair dials that address.
    bPeer = sidecars.b.addresses.peer;
    sidecars.c = await start('c');
    await cli('b', 'pair', 'create', 'db', '--volume', img('b'), '--role', 'secondary', '--peer', sidecars.a.addresses.peer, '--remote-identity', 'spiffe://blockmirror/site-a/peer');
    await cli('a', 'pair', 'create', 'db', '--volume', img('a'), '--role', 'primary', '--peer', bPeer, '--nbd-listen', '127.0.0.1:0', '--remote-identity', 'spiffe://blockmirror/site-b/peer');
    await until('a', 'the initial copy', (s) => s.state === 'InSync' && s.outOfSyncBytes === 0, 60_000);
  }, 120_000);

  afterAll(async () => {
    for (const c of Object.values(clients)) c.close();
    await Promise.all(Object.values(sidecars).map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('a restarted secondary is dialled when it says it is ready, and takes what was written meanwhile', async () => {
    await sidecars.b!.stop();
    clients.b?.close();
    delete clients.b;
    await until('a', 'the primary to notice the outage', (s) => s.state === 'Retrying');
    const heard = lines('a', 'the secondary says it is ready: dialling it now').length;
    // Writes while the secondary is away: out of sync until it is back.
    const nbd = await NbdTestClient.connectExport({ tcp: (await status('a')).nbdAddress }, 'db');
    const data = randomBytes(256 << 10);
    expect((await nbd.write(MiB, data, true)).error).toBe(0);
    await nbd.disconnect();
    expect((await status('a')).outOfSyncBytes).toBeGreaterThan(0);

    sidecars.b = await start('b', ['--peer-listen', bPeer]);
    await until('a', 'InSync after the secondary came back', (s) => s.state === 'InSync' && s.outOfSyncBytes === 0);
    // Both logs say so (read from the processes' pipes, which may lag behind the status).
    await waitFor('B to say it told A', () => lines('b', 'told the primary this secondary is ready').length === 1 || undefined, { timeoutMs: 10_000, intervalMs: 50 });
    await waitFor('A to say it heard B', () => lines('a', 'the secondary says it is ready: dialling it now').length === heard + 1 || undefined, { timeoutMs: 10_000, intervalMs: 50 });
    expect(await sha256File(img('b'))).toBe(await sha256File(img('a')));
  }, 90_000);

  it('refuses PeerReady from an identity the primary does not admit, without hurrying it', async () => {
    const refused = async (): Promise<number> => metricSum(await scrapeMetrics(sidecars.a!.addresses.metrics), 'blockmirror_peer_refused_total', { reason: 'identity' });
    const before = await refused();
    const heard = lines('a', 'the secondary says it is ready: dialling it now').length;
    // Site C names A's pair as its primary: a certificate of the same CA, another site.
    await cli('c', 'pair', 'create', 'db', '--volume', img('c'), '--role', 'secondary', '--peer', sidecars.a!.addresses.peer);
    const said = await waitFor('C to give up telling A', () => {
      const l = lines('c', 'could not tell the primary this secondary is ready; it finds it by its own retries');
      return l.length > 0 ? l[0] : undefined;
    }, { timeoutMs: 20_000, intervalMs: 100 });
    expect(String(said.error)).toContain('pair "db" accepts only spiffe://blockmirror/site-b/peer; the caller is spiffe://blockmirror/site-c/peer');
    expect(await refused()).toBe(before + 1);
    expect(lines('a', 'the secondary says it is ready: dialling it now')).toHaveLength(heard);
    await cli('c', 'pair', 'delete', 'db');
  }, 60_000);
});
