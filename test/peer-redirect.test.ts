import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_SYNC_LANES } from '../sidecar/replication/primary/peer-link.js';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { KubeSite, OPERATOR_NAMESPACE, RELEASE } from './helpers/kube-site.js';
import { makePeerPki, type PeerPki } from './helpers/peer-pki.js';
import type { PairStatusJson } from './helpers/sidecar-process.js';
import { metricSum, randomFile, scrapeMetrics, sha256File, sparseFile } from './helpers/replication-harness.js';
import { SidecarProcess } from './helpers/sidecar-process.js';
import { waitFor } from './helpers/wait-for.js';

// Site B is a real API server (the chart installed: its sidecar ServiceAccount and RBAC)
// with two sidecar processes registered as nodes b1 and b2, on loopback; site A is one
// more sidecar. A's primary is pointed at b1, the wrong node: b1 finds the holder in the
// site's registration Leases and redirects the handshake there, and every stream of the
// session runs over connections to b2 (one per lane). Then the same over mutual TLS with one CA per
// site, as installed: certificates name the chart's peer Service, not the addresses
// dialled, and a primary with a certificate from a third CA is refused.

const MiB = 1024 * 1024;
const VOLUME = 16 * MiB;
const cleanup = new CleanupStack();
const track = cleanup.track.bind(cleanup);

let work: string;
let site: KubeSite;
let a: SidecarProcess;
let b1: SidecarProcess;
let b2: SidecarProcess;

async function sidecar(name: string, args: string[] = []): Promise<SidecarProcess> {
  const sc = await SidecarProcess.start({ stateDir: join(work, `state-${name}`), args });
  track(`sidecar ${name}`, async () => void (await sc.stop()));
  return sc;
}

async function registered(node: string): Promise<string[]> {
  return ['--register-node', node, '--register-namespace', OPERATOR_NAMESPACE, '--kubeconfig', await site.serviceAccountKubeconfig(`${RELEASE}-sidecar`, { node })];
}

/** The secondary pairs a node's registration Lease lists. */
async function leasePairs(node: string): Promise<string> {
  const r = await site.kubectl(['get', 'lease', `blockmirror-sidecar-${node}`, '-n', OPERATOR_NAMESPACE, '-o', 'jsonpath={.metadata.annotations.blockmirror\\.io/secondary-pairs}']);
  return r.code === 0 ? r.stdout : '';
}

const connections = async (sc: SidecarProcess): Promise<number> => metricSum(await scrapeMetrics(sc.addresses.metrics), 'blockmirror_peer_connections_total');

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'bm-peer-redirect-'));
  track(`work dir ${work}`, () => rm(work, { recursive: true, force: true }));
  await mkdir(join(work, 'control-plane'));
  site = await KubeSite.start('site-b', join(work, 'control-plane'), { install: 'helm' });
  track('control plane', () => site.stop());
  [a, b1, b2] = await Promise.all([sidecar('a'), registered('b1').then((args) => sidecar('b1', args)), registered('b2').then((args) => sidecar('b2', args))]);
}, 300_000);

afterAll(() => cleanup.releaseAll(), 120_000);

describe('a primary pointed at the wrong sidecar of the remote site', () => {
  it('is redirected to the sidecar holding the pair and replicates there, every stream of the session on the holder', async () => {
    await randomFile(join(work, 'a.img'), VOLUME);
    await sparseFile(join(work, 'b.img'), VOLUME);
    await b2.cli('pair', 'create', 'db', '--volume', join(work, 'b.img'), '--role', 'secondary');
    await waitFor("b2's Lease to list pair db", async () => (await leasePairs('b2')) === 'db', { timeoutMs: 15_000, intervalMs: 200 });

    await a.cli('pair', 'create', 'db', '--volume', join(work, 'a.img'), '--role', 'primary', '--peer', b1.addresses.peer, '--nbd-listen', '127.0.0.1:0');
    await a.waitForPair('db', 'InSync through the redirect', (s) => s.state === 'InSync' && s.outOfSyncBytes === 0, 60_000);
    expect(await sha256File(join(work, 'b.img'))).toBe(await sha256File(join(work, 'a.img')));

    // b1 answered one handshake with a redirect; b2 served the whole session (handshake,
    // mirror, resync, MarkSynced): one accepted connection per lane of a sync pair.
    expect(metricSum(await scrapeMetrics(b1.addresses.metrics), 'blockmirror_peer_redirects_total')).toBe(1);
    expect(await connections(b1)).toBe(1);
    expect(await connections(b2)).toBe(DEFAULT_SYNC_LANES);
    expect(b1.log.some((l) => l.includes('"peer redirected"') && l.includes(b2.addresses.peer))).toBe(true);
    const secondary = await b2.rpcStatus('db');
    expect(secondary.state).toBe('InSync');
  });

  it('is told clearly when no sidecar of the site holds the pair', async () => {
    await sparseFile(join(work, 'lost.img'), VOLUME);
    await a.cli('pair', 'create', 'lost', '--volume', join(work, 'lost.img'), '--role', 'primary', '--peer', b1.addresses.peer);
    const s = await a.waitForPair('lost', 'refused', (x) => x.state === 'Retrying' && x.lastError !== '', 30_000);
    expect(s.lastError).toMatch(/no sidecar of this site holds pair "lost"/);
  });
});

/** The DNS name the chart's peer certificate carries (release blockmirror, its namespace). */
const PEER_NAME = `${RELEASE}-sidecar-peer.${OPERATOR_NAMESPACE}.svc`;

describe('mutual TLS between sites with their own CAs', () => {
  let pki: { a: PeerPki; b: PeerPki; rogue: PeerPki };
  let ta: SidecarProcess;
  let tb1: SidecarProcess;
  let tb2: SidecarProcess;
  // Control ports on 127.0.0.2, the one address the certificates carry besides the
  // peer name: the peer ports on 127.0.0.1 can only be verified by that name.
  const own = (p: PeerPki): string[] => ['--tls-cert', p.peer.cert, '--tls-key', p.peer.key, '--tls-ca', p.ca, '--control-listen', '127.0.0.2:0', '--peer-server-name', PEER_NAME];
  const ctl = (p: PeerPki): string[] => ['--tls-cert', p.client.cert, '--tls-key', p.client.key, '--tls-ca', p.ca];
  const status = async (sc: SidecarProcess, p: PeerPki, name: string): Promise<PairStatusJson> => JSON.parse(await sc.cli('pair', 'status', name, '-o', 'json', ...ctl(p))) as PairStatusJson;

  beforeAll(async () => {
    const dir = join(work, 'pki');
    await mkdir(dir);
    const san = `DNS:${PEER_NAME},IP:127.0.0.2`;
    const [pa, pb, pr] = await Promise.all([makePeerPki(dir, 'site-a', san), makePeerPki(dir, 'site-b', san), makePeerPki(dir, 'rogue', san)]);
    pki = { a: pa, b: pb, rogue: pr };
    // b1 trusts site A for the whole site (--peer-trust-ca): it is the entry point that
    // must let A's primary in to redirect it. b2 trusts A only through its pair's own TLS.
    [ta, tb1, tb2] = await Promise.all([
      sidecar('ta', own(pa)),
      registered('tb1').then((args) => sidecar('tb1', [...args, ...own(pb), '--peer-trust-ca', pa.ca])),
      registered('tb2').then((args) => sidecar('tb2', [...args, ...own(pb)])),
    ]);
  }, 120_000);

  it('replicates through the redirect, each side verifying the other by CA and name', async () => {
    await randomFile(join(work, 'ta.img'), VOLUME);
    await sparseFile(join(work, 'tb.img'), VOLUME);
    // What the operators give the sidecars from each site's spec.remote.tlsSecretName:
    // the site's own certificate and the remote site's CA.
    await tb2.cli('pair', 'create', 'tdb', '--volume', join(work, 'tb.img'), '--role', 'secondary', '--peer-tls-cert', pki.b.peer.cert, '--peer-tls-key', pki.b.peer.key, '--peer-tls-ca', pki.a.ca, ...ctl(pki.b));
    await waitFor("tb2's Lease to list pair tdb", async () => (await leasePairs('tb2')) === 'tdb', { timeoutMs: 15_000, intervalMs: 200 });
    await ta.cli('pair', 'create', 'tdb', '--volume', join(work, 'ta.img'), '--role', 'primary', '--peer', tb1.addresses.peer, '--nbd-listen', '127.0.0.1:0', '--peer-tls-cert', pki.a.peer.cert, '--peer-tls-key', pki.a.peer.key, '--peer-tls-ca', pki.b.ca, ...ctl(pki.a));
    let last: PairStatusJson | undefined;
    await waitFor('InSync over mutual TLS through the redirect', async () => ((last = await status(ta, pki.a, 'tdb')).state === 'InSync' && last.outOfSyncBytes === 0) || undefined, { timeoutMs: 60_000, intervalMs: 250 }).catch((err: Error) => {
      throw new Error(`${err.message}; last status: ${JSON.stringify(last && { state: last.state, lastError: last.lastError })}`);
    });
    expect(await sha256File(join(work, 'tb.img'))).toBe(await sha256File(join(work, 'ta.img')));
    expect(metricSum(await scrapeMetrics(tb1.addresses.metrics), 'blockmirror_peer_redirects_total')).toBe(1);
    expect(await connections(tb2)).toBe(DEFAULT_SYNC_LANES);
    // The key stays on the sidecar: its answers carry a fingerprint only.
    expect(await ta.cli('pair', 'status', 'tdb', '-o', 'json', ...ctl(pki.a))).not.toContain('PRIVATE KEY');
  });

  it('refuses a primary whose certificate another CA signed, before any handshake', async () => {
    const refusedBefore = metricSum(await scrapeMetrics(tb1.addresses.metrics), 'blockmirror_peer_refused_total', { reason: 'tls' });
    const hash = await sha256File(join(work, 'tb.img'));
    const rogue = await sidecar('rogue', own(pki.rogue));
    await randomFile(join(work, 'rogue.img'), VOLUME);
    // It trusts site B's CA and is pointed at B: refusing it is B's own decision.
    await rogue.cli('pair', 'create', 'tdb', '--volume', join(work, 'rogue.img'), '--role', 'primary', '--peer', tb1.addresses.peer, '--peer-tls-cert', pki.rogue.peer.cert, '--peer-tls-key', pki.rogue.peer.key, '--peer-tls-ca', pki.b.ca, ...ctl(pki.rogue));
    const s = await waitFor('the rogue primary refused repeatedly', async () => {
      const x = await status(rogue, pki.rogue, 'tdb');
      return x.state === 'Retrying' && x.retries >= 3 ? x : undefined;
    }, { timeoutMs: 30_000, intervalMs: 250 });
    expect(s.bytesOnWire).toBe(0);
    expect(metricSum(await scrapeMetrics(tb1.addresses.metrics), 'blockmirror_peer_refused_total', { reason: 'tls' })).toBeGreaterThan(refusedBefore);
    expect(metricSum(await scrapeMetrics(tb1.addresses.metrics), 'blockmirror_peer_redirects_total')).toBe(1);
    expect(await sha256File(join(work, 'tb.img'))).toBe(hash);
  });
});
