import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { KubeSite, OPERATOR_NAMESPACE, RELEASE } from './helpers/kube-site.js';
import { metricSum, randomFile, scrapeMetrics, sha256File, sparseFile } from './helpers/replication-harness.js';
import { SidecarProcess } from './helpers/sidecar-process.js';
import { waitFor } from './helpers/wait-for.js';

// Site B is a real API server (the chart installed: its sidecar ServiceAccount and RBAC)
// with two sidecar processes registered as nodes b1 and b2, on loopback; site A is one
// more sidecar. A's primary is pointed at b1, the wrong node: b1 finds the holder in the
// site's registration Leases and redirects the handshake there, and every stream of the
// session runs over one connection to b2.

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
  return ['--register-node', node, '--register-namespace', OPERATOR_NAMESPACE, '--kubeconfig', await site.serviceAccountKubeconfig(`${RELEASE}-sidecar`)];
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
  it('is redirected to the sidecar holding the pair and replicates there, every stream on one connection', async () => {
    await randomFile(join(work, 'a.img'), VOLUME);
    await sparseFile(join(work, 'b.img'), VOLUME);
    await b2.cli('pair', 'create', 'db', '--volume', join(work, 'b.img'), '--role', 'secondary');
    await waitFor("b2's Lease to list pair db", async () => (await leasePairs('b2')) === 'db', { timeoutMs: 15_000, intervalMs: 200 });

    await a.cli('pair', 'create', 'db', '--volume', join(work, 'a.img'), '--role', 'primary', '--peer', b1.addresses.peer, '--nbd-listen', '127.0.0.1:0');
    await a.waitForPair('db', 'InSync through the redirect', (s) => s.state === 'InSync' && s.outOfSyncBytes === 0, 60_000);
    expect(await sha256File(join(work, 'b.img'))).toBe(await sha256File(join(work, 'a.img')));

    // b1 answered one handshake with a redirect; b2 served the whole session (handshake,
    // mirror, resync, MarkSynced) on one accepted connection.
    expect(metricSum(await scrapeMetrics(b1.addresses.metrics), 'blockmirror_peer_redirects_total')).toBe(1);
    expect(await connections(b1)).toBe(1);
    expect(await connections(b2)).toBe(1);
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
