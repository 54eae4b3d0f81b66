import { afterEach, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { mountCrashFs, type CrashFs } from './helpers/crash-fs.js';
import { NbdTestClient } from './helpers/nbd-test-client.js';
import { chainPrefix, ChainWriter, type ChainLayout } from './helpers/ordered-writes.js';
import { sha256File } from './helpers/replication-harness.js';
import { SidecarProcess } from './helpers/sidecar-process.js';

// A secondary whose disk fills up — its volume's filesystem or its state directory —
// in both modes. The disks are power-cut filesystems with a capacity (a real ENOSPC that
// can be freed again). Both sides must show the error, retry at a bounded pace, never
// leave the secondary torn, and converge by themselves once space returns.

const MiB = 1 << 20;
const VOLUME = 16 * MiB;
const BLOCK = 64 * 1024;
/** Refusals either side may count in RETRY_WINDOW_MS: a hot loop makes thousands. */
const MAX_REFUSALS_PER_WINDOW = 200;
const RETRY_WINDOW_MS = 5000;

const cleanup = new CleanupStack();
afterEach(() => cleanup.releaseAll(), 60_000);

interface Rig {
  a: SidecarProcess;
  b: SidecarProcess;
  bState: string;
  volFs: CrashFs;
  stateFs: CrashFs;
  imgA: string;
  imgB: string;
}

async function startSidecar(stateDir: string, args: string[] = []): Promise<SidecarProcess> {
  const sc = await SidecarProcess.start({ stateDir, args });
  cleanup.track(`sidecar ${sc.child.pid}`, () => sc.kill9());
  return sc;
}

/** The secondary's volume and state directory each on their own power-cut filesystem. */
async function startRig(primaryData: number): Promise<Rig> {
  const dir = await mkdtemp(join(tmpdir(), 'bm-full2-'));
  cleanup.track(`temp ${dir}`, () => rm(dir, { recursive: true, force: true }));
  const volFs = await mountCrashFs(dir, 'vol', cleanup);
  const stateFs = await mountCrashFs(dir, 'state', cleanup);
  const imgA = join(dir, 'a.img');
  const imgB = join(volFs.dir, 'b.img');
  for (const f of [imgA, imgB]) {
    const fh = await open(f, 'w');
    await fh.truncate(VOLUME);
    await fh.close();
  }
  // Data the initial copy must carry (not zeroes, which need no space once sent as
  // holes), at the end: the chain of writes uses the first 4 MiB.
  const fh = await open(imgA, 'r+');
  await fh.write(randomBytes(primaryData), 0, primaryData, VOLUME - primaryData);
  await fh.close();
  const bState = join(stateFs.dir, 'st');
  const b = await startSidecar(bState);
  await b.cli('pair', 'create', 'db', '--volume', imgB, '--role', 'secondary');
  // The primary pair is created by each case once the secondary's disk is set up.
  const a = await startSidecar(join(dir, 'state-a'));
  return { a, b, bState, volFs, stateFs, imgA, imgB };
}

async function createPrimary(rig: Rig, mode: 'sync' | 'async'): Promise<void> {
  // A group at least every 5 s even while the writer outpaces the link (the default
  // lets the application go first for 30 s).
  const modeArgs = mode === 'async' ? ['--mode', 'async', '--group-interval-ms', '200', '--max-drain-ms', '5000'] : [];
  await rig.a.cli('pair', 'create', 'db', '--volume', rig.imgA, '--role', 'primary', '--peer', rig.b.addresses.peer, '--nbd-listen', '127.0.0.1:0', ...modeArgs);
}

/** Both sides show the error; their refusals grow at a bounded pace, not in a hot loop. */
async function expectVisibleAndPaced(rig: Rig, error: RegExp): Promise<void> {
  const a0 = await rig.a.waitForPair('db', 'the primary shows the error', (s) => s.state === 'Retrying' && error.test(s.lastError));
  const b0 = await rig.b.waitForPair('db', 'the secondary shows the error', (s) => s.state === 'Retrying' && error.test(s.lastError));
  expect(a0.replicationErrors).toBeGreaterThan(0);
  expect(b0.replicationErrors).toBeGreaterThan(0);
  await new Promise((r) => setTimeout(r, RETRY_WINDOW_MS));
  const a1 = await rig.a.status('db');
  const b1 = await rig.b.status('db');
  // Still failing, still saying so, never a suspended state.
  expect([a1.state, b1.state]).toEqual(['Retrying', 'Retrying']);
  expect(a1.replicationErrors - a0.replicationErrors).toBeLessThan(MAX_REFUSALS_PER_WINDOW);
  expect(b1.replicationErrors - b0.replicationErrors).toBeLessThan(MAX_REFUSALS_PER_WINDOW);
  // Retrying, though: attempts keep coming.
  expect(b1.replicationErrors).toBeGreaterThan(b0.replicationErrors);
}

async function expectConverged(rig: Rig, settled: 'InSync' | 'Replicating'): Promise<void> {
  await rig.a.waitForPair('db', `the primary back to ${settled}`, (s) => s.state === settled && s.outOfSyncBytes === 0 && s.lastError === '', 60_000);
  await rig.b.waitForPair('db', 'the secondary healthy', (s) => s.lastError === '' && s.state === settled, 30_000);
  expect(await sha256File(rig.imgB)).toBe(await sha256File(rig.imgA));
}

const layout: ChainLayout = { slots: 64, stride: BLOCK, volumes: 1 };

describe('a secondary whose disk fills up: visible on both sides, paced retries, never torn, heals when space returns', () => {
  it('sync, the volume filesystem fills during the initial copy', async () => {
    const rig = await startRig(12 * MiB);
    await rig.volFs.setCapacity(6 * MiB);
    await createPrimary(rig, 'sync');
    await expectVisibleAndPaced(rig, /ENOSPC|no space/i);
    await rig.volFs.setCapacity(0);
    await expectConverged(rig, 'InSync');
  });

  it('sync, the state directory is full when the copy is to be recorded complete', async () => {
    const rig = await startRig(4 * MiB);
    // Nothing more fits in the state directory: the data goes to the volume, but the
    // record that the image is complete cannot be written.
    await rig.stateFs.setCapacity((await rig.stateFs.stats()).allocatedBytes);
    await createPrimary(rig, 'sync');
    await expectVisibleAndPaced(rig, /ENOSPC|no space/i);
    await rig.stateFs.setCapacity(0);
    await expectConverged(rig, 'InSync');
  });

  it('async, the volume filesystem fills while a group is applied, and a restart in the middle keeps the group', async () => {
    const rig = await startRig(2 * MiB);
    await createPrimary(rig, 'async');
    await rig.a.waitForPair('db', 'initial copy done', (s) => s.state === 'Replicating' && s.outOfSyncBytes === 0);
    const client = await NbdTestClient.connectExport({ tcp: (await rig.a.status('db')).nbdAddress }, 'db');
    cleanup.track('nbd client', async () => client.destroy());
    // Room for a little of the next group only.
    await rig.volFs.setCapacity((await rig.volFs.stats()).allocatedBytes + 512 * 1024);
    const w = new ChainWriter([client], layout, { from: 1, fua: false });
    await expectVisibleAndPaced(rig, /ENOSPC|no space/i);
    // A crash while a committed group is only partly applied: the restart keeps it (the
    // commit record and its journal) and says why, instead of dropping it or failing.
    await rig.b.kill9();
    rig.b = await startSidecar(rig.bState, ['--peer-listen', rig.b.addresses.peer]);
    await rig.b.waitForPair('db', 'the restarted secondary shows the unfinished group', (s) => s.state === 'Retrying' && /ENOSPC|no space/i.test(s.lastError));
    await w.stop();
    expect(w.error).toBeNull();
    await rig.volFs.setCapacity(0);
    await expectConverged(rig, 'Replicating');
    const p = await chainPrefix([rig.imgB], layout);
    expect(p).toEqual({ prefix: w.acked });
  });

  it('async, the state directory fills: groups cannot be staged, the volume stays at the last group', async () => {
    const rig = await startRig(2 * MiB);
    await createPrimary(rig, 'async');
    await rig.a.waitForPair('db', 'initial copy done', (s) => s.state === 'Replicating' && s.outOfSyncBytes === 0);
    const client = await NbdTestClient.connectExport({ tcp: (await rig.a.status('db')).nbdAddress }, 'db');
    cleanup.track('nbd client', async () => client.destroy());
    const w0 = new ChainWriter([client], layout, { from: 1, fua: false });
    await rig.a.waitForPair('db', 'a group of the writes applied', (s) => s.lastConsistencyPointTime !== null && s.groupsFormed > 1);
    await w0.stop();
    // At rest (no group staged), then not one more byte fits in the state directory.
    await rig.a.waitForPair('db', 'everything applied', (s) => s.outOfSyncBytes === 0);
    await rig.stateFs.setCapacity((await rig.stateFs.stats()).allocatedBytes);
    const w = new ChainWriter([client], layout, { from: w0.acked + 1, fua: false });
    await expectVisibleAndPaced(rig, /ENOSPC|no space/i);
    // Nothing of a group that could not be staged reached the volume: it is at a prefix.
    const during = await chainPrefix([rig.imgB], layout);
    expect(during).toEqual({ prefix: expect.any(Number) as unknown });
    await w.stop();
    expect(w.error).toBeNull();
    await rig.stateFs.setCapacity(0);
    await expectConverged(rig, 'Replicating');
    expect(await chainPrefix([rig.imgB], layout)).toEqual({ prefix: w.acked });
  });
});
