import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { FaultProxy } from './helpers/fault-proxy.js';
import { renderExample } from './helpers/kube-site.js';
import {
  converged as convergedSites,
  pairEvents,
  patchPair,
  promoteAndMeasure as promoteAndMeasureRto,
  readyOf,
  restartSiteSidecar,
  roleStatus,
  startTwoSites,
  tryWrite as tryExportWrite,
  waitRoleStatus,
  type OperatorSite,
  type RoleStatus,
} from './helpers/operator-site.js';
import { randomFile, sha256File, sparseFile } from './helpers/replication-harness.js';
import { run } from './helpers/run-cli.js';
import { waitFor } from './helpers/wait-for.js';

// Role changes driven by `kubectl patch` of the ReplicationPair (issue 18, the operator's
// part), on two sites as in operator-two-site.test.ts: each a real control plane with
// the chart installed, its own operator and sidecar processes authenticated with the
// chart's ServiceAccount tokens; each direction of the peer link through a proxy the
// test cuts; data written with a real NBD client (qemu-io) into the primary's export.
// What was shipped is read from the sidecars' status (bytesOnWire: payload bytes the
// primary sent since it became the primary).

const KiB = 1024;
const MiB = 1024 * KiB;
const VOLUME = 32 * MiB;
/** Random data at the start of A's volume: what the initial full copy ships. */
const FILLED = 8 * MiB;
const FIVE_PERCENT = VOLUME / 20;
const PAIR = 'db-data';
const SIDECAR_PAIR = `default.${PAIR}`;

const cleanup = new CleanupStack();
const track = cleanup.track.bind(cleanup);

type Site = OperatorSite & { volume: string };

let work: string;
let a: Site;
let b: Site;
/** A dials B through toB; B, once promoted, dials A through toA. */
let toB: FaultProxy;
let toA: FaultProxy;
const timings: string[] = [];

const status = (site: Site): Promise<RoleStatus> => roleStatus(site, PAIR);
const ready = readyOf;
const waitStatus = (site: Site, what: string, ok: (s: RoleStatus) => boolean, timeoutMs?: number): Promise<RoleStatus> => waitRoleStatus(site, PAIR, what, ok, timeoutMs);
const patch = (site: Site, spec: Record<string, unknown>): Promise<void> => patchPair(site, PAIR, spec);
const events = (site: Site): Promise<string[]> => pairEvents(site, PAIR);
const tryWrite = (nbdAddress: string, offset: number): ReturnType<typeof tryExportWrite> => tryExportWrite(nbdAddress, SIDECAR_PAIR, offset);
const converged = (primary: Site, secondary: Site, what: string): ReturnType<typeof convergedSites> => convergedSites(primary, secondary, PAIR, what);
const promoteAndMeasure = (site: Site, spec: Record<string, unknown>, offset: number): Promise<number> => promoteAndMeasureRto(site, PAIR, spec, offset);

interface Written {
  offset: number;
  pattern: number;
}

let nextPattern = 0x20;

/** Writes 4 KiB of one byte value at each offset through the site's export (qemu-io), then a FLUSH; returns what it wrote. */
async function write(site: Site, offsets: number[]): Promise<Written[]> {
  const { nbdAddress } = await site.sidecar.rpcStatus(SIDECAR_PAIR);
  const writes = offsets.map((offset) => ({ offset, pattern: nextPattern++ & 0xff }));
  const cmds = writes.flatMap((w) => ['-c', `write -P ${w.pattern} ${w.offset} 4k`]);
  const r = await run('qemu-io', ['-f', 'raw', ...cmds, '-c', 'flush', `nbd://${nbdAddress}/${SIDECAR_PAIR}`], { timeoutMs: 60_000 });
  expect({ code: r.code, failed: /failed|error/i.test(r.stdout + r.stderr) }).toEqual({ code: 0, failed: false });
  return writes;
}

async function expectWrites(img: string, writes: Written[]): Promise<void> {
  const fh = await open(img, 'r');
  try {
    for (const w of writes) {
      const got = Buffer.alloc(4 * KiB);
      await fh.read(got, 0, got.length, w.offset);
      expect({ offset: w.offset, same: got.equals(Buffer.alloc(4 * KiB, w.pattern)) }).toEqual({ offset: w.offset, same: true });
    }
  } finally {
    await fh.close();
  }
}

async function expectIdentical(): Promise<string> {
  const [ha, hb] = await Promise.all([sha256File(a.volume), sha256File(b.volume)]);
  expect(hb).toBe(ha);
  return ha;
}

/** Spread over the volume, one per 1 MiB: each in its own 64 KiB tracking block. */
function offsets(n: number, salt: number): number[] {
  return Array.from({ length: n }, (_, i) => i * MiB + ((salt * 8 + i) % 15) * 4 * KiB);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'bm-failover-'));
  track(`work dir ${work}`, () => rm(work, { recursive: true, force: true }));
  const sites = await startTwoSites(track, work);
  ({ toB, toA } = sites);
  a = { ...sites.a, volume: join(work, 'site-a', 'volume.img') };
  b = { ...sites.b, volume: join(work, 'site-b', 'volume.img') };
  await randomFile(a.volume, FILLED);
  await sparseFile(a.volume, VOLUME);
  await sparseFile(b.volume, VOLUME);
  const common = { VOLUME_SIZE: `${VOLUME / MiB}Mi` };
  await b.kube.kubectlOk(['apply', '-f', '-'], { input: await renderExample('examples/two-site/site-b.yaml', { ...common, VOLUME_PATH: b.volume, NODE: b.node }) });
  // A short write timeout on both (B's for when it is the primary): writes while the peer is away are answered sooner.
  await patch(b, { sync: { writeTimeoutMs: 500 } });
  const siteA = await renderExample('examples/two-site/site-a.yaml', { ...common, VOLUME_PATH: a.volume, NODE: a.node, REMOTE_ENDPOINT: toB.address });
  expect(siteA).toContain('writeTimeoutMs: 2000');
  await a.kube.kubectlOk(['apply', '-f', '-'], { input: siteA.replace('writeTimeoutMs: 2000', 'writeTimeoutMs: 500') });
  await converged(a, b, 'initial copy');
  await expectIdentical();
}, 300_000);

afterAll(async () => {
  if (timings.length > 0) process.stdout.write(`operator failover timings:\n${timings.map((t) => `  ${t}`).join('\n')}\n`);
  await cleanup.releaseAll();
}, 120_000);

describe('role changes by kubectl patch, on two sites with real API servers', () => {
  it('planned switchover to B and back in sync mode: nothing lost, each direction ships only its delta, kubectl get shows the roles held', async () => {
    const onA = await write(a, offsets(8, 1));
    await converged(a, b, 'writes on A');

    // Demote A: the export refuses writes, everything is shipped, then it is a secondary.
    let t0 = performance.now();
    await patch(a, { role: 'secondary' });
    const demotedA = await waitStatus(a, 'demoted', (s) => s.role === 'secondary' && s.appliedRole === 'secondary' && ready(s)?.status === 'True');
    const demoteMs = performance.now() - t0;
    expect(demotedA.fenced).toBe(true);
    await expectWrites(b.volume, onA);
    await expectIdentical();
    const fenced = await tryWrite(demotedA.exportAddress!, 0);
    expect(fenced.accepted).toBe(false);
    expect(fenced.output).toMatch(/not permitted|permission denied|read-only/i);
    expect(await events(a)).toEqual(expect.arrayContaining([expect.stringMatching(/^Normal Demoting /), expect.stringMatching(/^Normal Demoted demoted: everything was shipped/)]));

    // Promote B (it needs spec.remote as a primary: where A's sidecar is).
    const rtoMs = await promoteAndMeasure(b, { role: 'primary', remote: { endpoint: toA.address } }, 20 * MiB);
    const onB = await write(b, offsets(8, 2));
    const shippedToA = (await converged(b, a, 'after the switchover')).bytesOnWire;
    await expectWrites(a.volume, onB);
    await expectIdentical();
    expect(shippedToA).toBeGreaterThan(0);
    expect(shippedToA).toBeLessThan(FIVE_PERCENT);
    expect(await events(b)).toEqual(expect.arrayContaining([expect.stringMatching(/^Normal Promoted promoted to generation/)]));
    expect(await a.kube.kubectlOk(['get', 'rp', PAIR])).toMatch(new RegExp(`${PAIR}\\s+secondary\\s+sync\\s+InSync`));
    expect(await b.kube.kubectlOk(['get', 'rp', PAIR])).toMatch(new RegExp(`${PAIR}\\s+primary\\s+sync\\s+InSync`));
    // Each side shows the other's generation (the secondary's was blank: its sidecar
    // reported the peer's only after a refusal). In sync both are B's generation.
    const genB = (await status(b)).generation!;
    await waitStatus(a, `generation ${genB} and B's (${genB}) as its peer's`, (s) => s.generation === genB && s.peerGeneration === genB);
    await waitStatus(b, `A's generation (${genB}) as its peer's`, (s) => s.peerGeneration === genB);
    const wide = await a.kube.kubectlOk(['get', 'rp', PAIR, '-o', 'wide']);
    expect(wide).toMatch(/SPEC-ROLE\s+GENERATION\s+PEER-GENERATION/);
    for (const [site, role] of [[a, 'secondary'], [b, 'primary']] as const) {
      const row = (await site.kube.kubectlOk(['get', 'rp', PAIR, '-o', 'wide', '--no-headers'])).trim();
      expect({ site: site.name, row }).toEqual({ site: site.name, row: expect.stringMatching(new RegExp(`\\s${role}\\s+${genB}\\s+${genB}$`)) });
    }
    // Each PV carries its volume's lineage while the pair runs (patched by the operator when
    // the generation changed): B's as a primary's, A's as a secondary's never claimed complete.
    for (const [site, role, consistent] of [[a, 'secondary', false], [b, 'primary', true]] as const) {
      await waitFor(
        `${site.name}: its PV records ${role} ${genB}`,
        async () => {
          const text = await site.kube.kubectlOk(['get', 'pv', `db-data-${site.name}`, '-o', 'jsonpath={.metadata.annotations.blockmirror\\.io/lineage}']);
          const l = text === '' ? undefined : (JSON.parse(text) as { role: string; generation: string; consistent: boolean });
          return l?.role === role && l.generation === genB && l.consistent === consistent ? l : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 200 },
      );
    }
    // A force or a discard goes with one role: the API server refuses them with the other.
    const forcedSecondary = await a.kube.kubectl(['patch', 'rp', PAIR, '--type=merge', '-p', '{"spec":{"forcePromote":true}}']);
    expect(forcedSecondary.code).not.toBe(0);
    expect(forcedSecondary.stderr).toContain('spec.forcePromote applies to a promotion');
    const discardPrimary = await b.kube.kubectl(['patch', 'rp', PAIR, '--type=merge', '-p', '{"spec":{"discardMyData":true}}']);
    expect(discardPrimary.code).not.toBe(0);
    expect(discardPrimary.stderr).toContain('spec.discardMyData makes this side a secondary');

    // And back home.
    t0 = performance.now();
    await patch(b, { role: 'secondary' });
    await waitStatus(b, 'demoted', (s) => s.role === 'secondary' && s.appliedRole === 'secondary');
    const demoteBackMs = performance.now() - t0;
    const rtoBackMs = await promoteAndMeasure(a, { role: 'primary' }, 21 * MiB);
    const back = await write(a, offsets(8, 3));
    const shippedToB = (await converged(a, b, 'after switching back')).bytesOnWire;
    await expectWrites(b.volume, back);
    await expectIdentical();
    expect(shippedToB).toBeLessThan(FIVE_PERCENT);
    timings.push(
      `planned switchover (sync): demote A ${demoteMs.toFixed(0)} ms, RTO (kubectl patch of B to its first accepted write) ${rtoMs.toFixed(0)} ms; back: demote B ${demoteBackMs.toFixed(0)} ms, RTO ${rtoBackMs.toFixed(0)} ms; shipped ${shippedToA} B to A and ${shippedToB} B back (volume ${VOLUME} B, initial copy ${FILLED} B of data)`,
    );
  }, 180_000);

  it('forced failover: A killed and cut off, B promoted with force (refused without), A returns demoted by its sidecar and fenced, then converges after the user patches it to secondary', async () => {
    const onA = await write(a, offsets(4, 4));
    await converged(a, b, 'before the failure');
    const gen1 = (await status(a)).generation;
    toB.cut();
    toA.cut();
    await a.sidecar.kill9();
    await waitStatus(b, 'its primary gone', (s) => s.state === 'Retrying');

    // Without force: refused, and the condition says how to force it and what is lost.
    await patch(b, { role: 'primary' });
    const refused = await waitStatus(b, 'promotion refused', (s) => ready(s)?.reason === 'PromotionRefused');
    expect(ready(refused)!.message).toContain(`kubectl patch rp ${PAIR} -n default --type=merge -p '{"spec":{"forcePromote":true}}'`);
    expect(ready(refused)!.message).toContain('Lost then');
    expect(refused.role).toBe('secondary');
    const rtoMs = await promoteAndMeasure(b, { forcePromote: true }, 22 * MiB);
    const promotedB = await waitStatus(b, 'promoted', (s) => s.role === 'primary' && s.lastPromotionTime !== undefined);
    expect(promotedB.generation).not.toBe(gen1);
    expect(promotedB.promotedPointTime).toBeDefined();
    expect(await events(b)).toEqual(expect.arrayContaining([expect.stringMatching(/^Warning Promoted promoted by force/)]));
    const onB = await write(b, offsets(8, 5));

    // A's sidecar comes back (same state, same ports) and the link heals.
    await restartSiteSidecar(track, a);
    toB.heal();
    toA.heal();
    const demotedA = await waitStatus(a, 'demoted by its sidecar', (s) => s.role === 'secondary' && ready(s)?.reason === 'Demoted', 90_000);
    expect(demotedA.fenced).toBe(true);
    expect(ready(demotedA)!.message).toContain('the remote side was promoted');
    expect(ready(demotedA)!.message).toContain('"role":"secondary"');
    expect((await tryWrite((await a.sidecar.rpcStatus(SIDECAR_PAIR)).nbdAddress, 0)).accepted).toBe(false);
    expect(await events(a)).toEqual(expect.arrayContaining([expect.stringMatching(/^Warning Demoted the sidecar is a secondary/)]));
    // Not promoted back while the spec still says primary.
    expect((await a.sidecar.rpcStatus(SIDECAR_PAIR)).role).toBe('secondary');

    await patch(a, { role: 'secondary' });
    const shipped = (await converged(b, a, 'failback resync')).bytesOnWire;
    await waitStatus(a, 'Ready again', (s) => ready(s)?.status === 'True' && s.appliedRole === 'secondary');
    await expectIdentical();
    await expectWrites(a.volume, onB);
    await expectWrites(a.volume, onA);
    expect(shipped).toBeLessThan(FIVE_PERCENT);
    timings.push(`forced failover: RTO (kubectl patch with forcePromote to B's first accepted write) ${rtoMs.toFixed(0)} ms; failback resync shipped ${shipped} B`);
  }, 180_000);

  it('split brain: both written as primaries after a link cut — SplitBrain condition and event on both, nothing moves; discardMyData on A makes B\'s data win exactly', async () => {
    // B is the primary, A its secondary.
    toB.cut();
    toA.cut();
    await waitStatus(b, 'cut off', (s) => s.state === 'Retrying');
    await write(b, offsets(4, 6));
    await a.sidecar.waitForPair(SIDECAR_PAIR, 'A sees its primary gone', (s) => !s.primaryDemoted && s.state === 'Retrying', 30_000);
    await patch(a, { role: 'primary', forcePromote: true });
    await waitStatus(a, 'promoted by force', (s) => s.role === 'primary');
    await write(a, offsets(4, 7));
    const [genA, genB] = [(await status(a)).generation!, (await status(b)).generation!];
    expect(genA).not.toBe(genB);
    const [hashA, hashB] = await Promise.all([sha256File(a.volume), sha256File(b.volume)]);
    expect(hashA).not.toBe(hashB);

    toB.heal();
    toA.heal();
    for (const site of [a, b]) {
      const s = await waitStatus(site, 'split brain', (x) => x.state === 'SplitBrain' && ready(x)?.reason === 'SplitBrain');
      expect(ready(s)!.message).toContain(genA);
      expect(ready(s)!.message).toContain(genB);
      expect(ready(s)!.message).toContain('"discardMyData":true');
      const warnings = (await events(site)).filter((e) => e.startsWith('Warning SplitBrain'));
      expect(warnings).toHaveLength(1);
    }
    // Nothing moves while nobody decides.
    const until = Date.now() + 3000;
    while (Date.now() < until) {
      expect([(await status(a)).state, (await status(b)).state]).toEqual(['SplitBrain', 'SplitBrain']);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect([await sha256File(a.volume), await sha256File(b.volume)]).toEqual([hashA, hashB]);

    // A's changes go.
    const t0 = performance.now();
    await patch(a, { role: 'secondary', discardMyData: true, forcePromote: null });
    await converged(b, a, 'after discarding A\'s data');
    const resolveMs = performance.now() - t0;
    expect(await sha256File(a.volume)).toBe(hashB);
    expect(await sha256File(b.volume)).toBe(hashB);
    expect(await events(a)).toEqual(expect.arrayContaining([expect.stringMatching(/^Warning DiscardingMyData /)]));
    timings.push(`split brain resolved by discardMyData on A in ${resolveMs.toFixed(0)} ms (patch to both sides converged)`);
  }, 180_000);
});
