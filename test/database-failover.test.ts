import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { DatabaseWriter } from './helpers/database-writer.js';
import { FaultProxy } from './helpers/fault-proxy.js';
import { mountExport, type MountedExport } from './helpers/nbd-fuse-mount.js';
import {
  converged,
  patchPair,
  promoteAndMeasure,
  readyOf,
  restartSiteSidecar,
  roleStatus,
  sidecarPair,
  startTwoSites,
  waitRoleStatus,
  type OperatorSite,
} from './helpers/operator-site.js';
import { sha256File, sparseFile } from './helpers/replication-harness.js';
import { runOk } from './helpers/run-cli.js';
import { checkDatabase } from './helpers/sqlite-check.js';

// A real database through role changes driven by `kubectl patch` (issue 18): SQLite in WAL
// mode with synchronous=FULL (examples/database/sqlite-writer.mjs) on ext4, on each site's
// sidecar export (nbdfuse + loop: the host's kernel has no NBD client), on two sites with
// real API servers, operators and sidecars as in operator-failover.test.ts. Planned
// switchover and back in both modes, and a forced failover with site A killed mid-commit
// in both modes: what the database holds on the promoted side is compared with every
// commit the writer saw acknowledged (the RPO), RTO is measured from the patch to the
// first write the promoted export accepts, and each direction's bytes on the wire are
// counted against the volume's size.

const KiB = 1024;
const MiB = 1024 * KiB;
const VOLUME = 256 * MiB;
/** The filesystem ends 8 MiB before the volume: RTO probes write there, outside it. */
const FS_BYTES = VOLUME - 8 * MiB;
const PROBE = VOLUME - 4 * MiB;
const FIVE_PERCENT = VOLUME / 20;
const RATE = 50;
const GROUP_INTERVAL_MS = 500;

type Mode = 'sync' | 'async';

const cleanup = new CleanupStack();
const track = cleanup.track.bind(cleanup);

let work: string;
let node24: string;
let a: OperatorSite;
let b: OperatorSite;
/** A dials B through toB; B, once promoted, dials A through toA. */
let toB: FaultProxy;
let toA: FaultProxy;
const report: string[] = [];

const pairOf = (mode: Mode): string => `db-${mode}`;
const volumeOf = (site: OperatorSite, mode: Mode): string => join(work, site.name, `${mode}.img`);

/** The manifests of one site: a local PV on the volume file, its claim, the pair. */
function manifests(site: OperatorSite, mode: Mode, role: 'primary' | 'secondary'): string {
  const pair = pairOf(mode);
  const pv = {
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: { name: `${pair}-${site.name}` },
    spec: {
      capacity: { storage: `${VOLUME / MiB}Mi` },
      accessModes: ['ReadWriteOnce'],
      persistentVolumeReclaimPolicy: 'Retain',
      storageClassName: 'blockmirror-local',
      volumeMode: 'Block',
      local: { path: volumeOf(site, mode) },
      nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [site.node] }] }] } },
      claimRef: { namespace: 'default', name: pair },
    },
  };
  const pvc = {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: pair, namespace: 'default' },
    spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'blockmirror-local', volumeMode: 'Block', volumeName: pv.metadata.name, resources: { requests: { storage: `${VOLUME / MiB}Mi` } } },
  };
  const rp = {
    apiVersion: 'blockmirror.io/v1alpha1',
    kind: 'ReplicationPair',
    metadata: { name: pair, namespace: 'default' },
    spec: {
      pvcName: pair,
      role,
      mode,
      ...(role === 'primary' ? { remote: { endpoint: toB.address } } : {}),
      // Long enough that no commit is answered without the secondary on a busy host: a
      // sync pair then holds every acknowledged commit on both sides.
      ...(mode === 'sync' ? { sync: { writeTimeoutMs: 20_000 } } : { async: { groupIntervalMs: GROUP_INTERVAL_MS } }),
    },
  };
  return [pv, pvc, rp].map((o) => JSON.stringify(o)).join('\n---\n');
}

/** The database's filesystem on the site's export, mounted (ext4 replays its journal after a crash). */
async function mountDb(site: OperatorSite, mode: Mode, tag: string): Promise<MountedExport> {
  const { nbdAddress } = await site.sidecar.rpcStatus(sidecarPair(pairOf(mode)));
  expect(nbdAddress).not.toBe('');
  return mountExport(track, `nbd://${nbdAddress}/${sidecarPair(pairOf(mode))}`, join(work, `${site.name}-${mode}-${tag}`), VOLUME);
}

/** The database on `site` opens cleanly and holds exactly the commits 1..`expected`. */
async function expectDatabase(m: MountedExport, expected: number): Promise<void> {
  const db = await checkDatabase(join(m.dir, 'db.sqlite'));
  expect(db).toEqual({ integrity: 'ok', rows: expected, maxSeq: expected });
}

/** Runs the writer on `m` for `n` more commits, stopped cleanly; answers its last commit. */
async function commit(m: MountedExport, n: number): Promise<number> {
  const w = DatabaseWriter.start(node24, join(m.dir, 'db.sqlite'), RATE);
  await w.waitFor((await w.started()) + n);
  return w.stop();
}

async function bytesOnWire(site: OperatorSite, mode: Mode): Promise<number> {
  return (await site.sidecar.rpcStatus(sidecarPair(pairOf(mode)))).bytesOnWire;
}

async function expectIdentical(mode: Mode): Promise<void> {
  const [ha, hb] = await Promise.all([sha256File(volumeOf(a, mode)), sha256File(volumeOf(b, mode))]);
  expect(hb).toBe(ha);
}

/** Demotes `from`, then promotes `to` (RTO measured); answers the RTO in ms. */
async function switchOver(from: OperatorSite, to: OperatorSite, mode: Mode, remote: FaultProxy): Promise<number> {
  const pair = pairOf(mode);
  // A force goes with the promotion it was for.
  await patchPair(from, pair, { role: 'secondary', forcePromote: null });
  const demoted = await waitRoleStatus(from, pair, 'demoted', (s) => s.role === 'secondary' && s.appliedRole === 'secondary' && readyOf(s)?.status === 'True');
  expect(demoted.fenced).toBe(true);
  return promoteAndMeasure(to, pair, { role: 'primary', remote: { endpoint: remote.address } }, PROBE);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'bm-db-failover-'));
  track(`work dir ${work}`, () => rm(work, { recursive: true, force: true }));
  node24 = await DatabaseWriter.node();
  ({ a, b, toB, toA } = await startTwoSites(track, work));
  for (const mode of ['sync', 'async'] as const) {
    await sparseFile(volumeOf(a, mode), VOLUME);
    await sparseFile(volumeOf(b, mode), VOLUME);
    // Made before the pair (the initial copy ships it), every inode table and the journal
    // written now: lazy initialisation would write them later, after every mount.
    await runOk('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', volumeOf(a, mode), `${FS_BYTES / KiB}k`]);
    await b.kube.kubectlOk(['apply', '-f', '-'], { input: manifests(b, mode, 'secondary') });
    await a.kube.kubectlOk(['apply', '-f', '-'], { input: manifests(a, mode, 'primary') });
  }
  for (const mode of ['sync', 'async'] as const) {
    await converged(a, b, pairOf(mode), `${mode}: initial copy`, mode);
    // The first commits, on A.
    const m = await mountDb(a, mode, 'first');
    await commit(m, 20);
    await m.unmount();
  }
}, 300_000);

afterAll(async () => {
  if (report.length > 0) process.stdout.write(`database failover:\n${report.map((t) => `  ${t}`).join('\n')}\n`);
  await cleanup.releaseAll();
}, 120_000);

describe.each(['sync', 'async'] as const)('%s mode: a database through role changes by kubectl patch', (mode) => {
  const pair = pairOf(mode);

  it('planned switchover to B and back: every commit on the other side, the database opens cleanly on each, each direction ships only its delta', async () => {
    // Commits on A; its filesystem unmounted (the application stopped) before the switch.
    let m = await mountDb(a, mode, 'before');
    const onA = await commit(m, 40);
    await m.unmount();
    await converged(a, b, pair, `${mode}: A's commits shipped`, mode);

    const rto = await switchOver(a, b, mode, toA);
    m = await mountDb(b, mode, 'switched');
    await expectDatabase(m, onA);
    const onB = await commit(m, 40);
    await m.unmount();
    const toAShipped = (await converged(b, a, pair, `${mode}: B's commits shipped`, mode)).bytesOnWire;
    expect(toAShipped).toBeGreaterThan(0);
    expect(toAShipped).toBeLessThan(FIVE_PERCENT);

    const rtoBack = await switchOver(b, a, mode, toB);
    const shippedBefore = await bytesOnWire(a, mode);
    m = await mountDb(a, mode, 'home');
    await expectDatabase(m, onB);
    const home = await commit(m, 20);
    await m.unmount();
    const toBShipped = (await converged(a, b, pair, `${mode}: home again`, mode)).bytesOnWire;
    expect(shippedBefore).toBeLessThan(FIVE_PERCENT);
    expect(toBShipped).toBeLessThan(FIVE_PERCENT);
    await expectIdentical(mode);
    expect([(await roleStatus(a, pair)).role, (await roleStatus(b, pair)).role]).toEqual(['primary', 'secondary']);
    report.push(
      `${mode} switchover: RTO ${rto.toFixed(0)} ms to B, ${rtoBack.toFixed(0)} ms back; RPO 0 (commits ${onA} and ${onB} found after each switch, ${home} at home); ` +
        `shipped ${(toAShipped / KiB).toFixed(0)} KiB B→A and ${(toBShipped / KiB).toFixed(0)} KiB A→B back (volume ${VOLUME / MiB} MiB)`,
    );
  }, 240_000);

  it('forced failover with A killed mid-commit: B opens the database at its last consistent point, A comes back demoted and fenced, the failback ships only the union of changes', async () => {
    const m = await mountDb(a, mode, 'crash');
    const w = DatabaseWriter.start(node24, join(m.dir, 'db.sqlite'), RATE);
    await w.waitFor((await w.started()) + 60);
    // Site A is lost: its sidecar killed mid-commit, the link cut, the node's mount gone.
    const crashedAt = Date.now();
    await a.sidecar.kill9();
    toB.cut();
    toA.cut();
    await m.abandon();
    await w.kill();
    const acked = w.last;

    const before = await waitRoleStatus(b, pair, 'its primary gone', (s) => s.state === 'Retrying');
    const rto = await promoteAndMeasure(b, pair, { role: 'primary', forcePromote: true, remote: { endpoint: toA.address } }, PROBE);
    const promoted = await waitRoleStatus(b, pair, 'promoted', (s) => s.role === 'primary' && s.generation !== before.generation && s.promotedPointTime !== undefined);

    // What B holds: a database that opens (its journal and WAL replayed), a prefix of the
    // commits; in sync mode every acknowledged one.
    const onB = await mountDb(b, mode, 'promoted');
    const db = await checkDatabase(join(onB.dir, 'db.sqlite'));
    expect(db.integrity).toBe('ok');
    expect(db.rows).toBe(db.maxSeq);
    const lost = w.commits.filter((c) => c.seq > db.maxSeq);
    if (mode === 'sync') {
      expect(db.maxSeq).toBeGreaterThanOrEqual(acked);
    } else {
      // Everything acknowledged before the consistency point B was promoted at is there.
      const point = Date.parse(promoted.promotedPointTime!);
      for (const c of lost) expect({ seq: c.seq, beforePoint: c.printedAt < point }).toEqual({ seq: c.seq, beforePoint: false });
    }
    const afterFailover = await commit(onB, 30);
    await onB.unmount();

    // A returns: it learns of B's newer generation, demotes itself and is fenced.
    await restartSiteSidecar(track, a);
    toB.heal();
    toA.heal();
    const demoted = await waitRoleStatus(a, pair, 'demoted by its sidecar', (s) => s.role === 'secondary' && readyOf(s)?.reason === 'Demoted', 90_000);
    expect(demoted.fenced).toBe(true);
    await patchPair(a, pair, { role: 'secondary' });
    const failback = (await converged(b, a, pair, `${mode}: failback`, mode)).bytesOnWire;
    expect(failback).toBeLessThan(FIVE_PERCENT);
    await expectIdentical(mode);

    // Home: a planned switchover back to A, where the database holds B's commits.
    const rtoHome = await switchOver(b, a, mode, toB);
    const home = await mountDb(a, mode, 'home-after-failover');
    await expectDatabase(home, afterFailover);
    await home.unmount();
    await converged(a, b, pair, `${mode}: home after the failover`, mode);
    await expectIdentical(mode);
    const windowMs = lost.length > 0 ? crashedAt - lost[0]!.printedAt : 0;
    report.push(
      `${mode} forced failover: RTO ${rto.toFixed(0)} ms (patch with forcePromote to B's first accepted write), ${rtoHome.toFixed(0)} ms home; ` +
        `RPO ${lost.length} of ${acked} acknowledged commits${lost.length > 0 ? ` (those of the last ${windowMs} ms before the crash)` : ''}${mode === 'async' ? `, promoted point ${crashedAt - Date.parse(promoted.promotedPointTime!)} ms before the crash` : ''}; failback shipped ${(failback / KiB).toFixed(0)} KiB`,
    );
  }, 300_000);
});
