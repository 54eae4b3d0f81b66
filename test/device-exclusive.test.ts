// A pair holds its block device so that nothing writes around it: real sidecar processes,
// the built CLI, and real loop devices with ext4 on this host (which has no
// device-mapper: the spliced path with real dm holders runs in test/vm-splice.test.ts).
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlClient, ControlCallError } from '../sidecar/control/control-client.js';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { run, runCli, runOk, type RunResult } from './helpers/run-cli.js';
import { SidecarProcess } from './helpers/sidecar-process.js';

jest.setTimeout(120_000);

const MiB = 1024 * 1024;
const FAILED_PRECONDITION = 9;
const INVALID_ARGUMENT = 3;

const cleanup = new CleanupStack();
let dir = '';
/** Loop devices with an ext4 filesystem each, and a mount point for each. */
let devA = '';
let devB = '';
let mntA = '';
let mntB = '';
let a: SidecarProcess;
let b: SidecarProcess;

async function loopDevice(name: string): Promise<string> {
  const file = join(dir, `${name}.img`);
  await writeFile(file, '');
  await truncate(file, 32 * MiB);
  const dev = (await runOk('losetup', ['--find', '--show', file])).trim();
  cleanup.track(`loop device ${dev}`, async () => void (await runOk('losetup', ['-d', dev])));
  await runOk('mkfs.ext4', ['-q', '-F', dev]);
  return dev;
}

async function mount(dev: string, mnt: string): Promise<RunResult> {
  const r = await run('mount', ['-t', 'ext4', dev, mnt]);
  if (r.code === 0) cleanup.track(`mount ${mnt}`, () => umountIfMounted(mnt));
  return r;
}

async function umountIfMounted(mnt: string): Promise<void> {
  if ((await run('mountpoint', ['-q', mnt])).code === 0) await runOk('umount', [mnt]);
}

async function startSidecar(name: string): Promise<SidecarProcess> {
  const sc = await SidecarProcess.start({ stateDir: join(dir, name) });
  cleanup.track(`sidecar ${name}`, async () => void (await sc.stop()));
  return sc;
}

/** `blockmirror pair create`, expected to fail: its one-line error. */
async function createRefused(sc: SidecarProcess, ...args: string[]): Promise<string> {
  const r = await runCli(['pair', 'create', ...args, '--control', sc.addresses.control]);
  expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 1, stdout: '' });
  return r.stderr.trim();
}

/** The gRPC status of CreatePair for the same spec, through the control API. */
async function createCode(sc: SidecarProcess, name: string, volumePath: string, role: 'ROLE_PRIMARY' | 'ROLE_SECONDARY'): Promise<number> {
  const client = new ControlClient(sc.addresses.control);
  try {
    await client.createPair({ name, volumePath, role, ...(role === 'ROLE_PRIMARY' ? { nbdListen: '127.0.0.1:0' } : {}) });
    return 0;
  } catch (err) {
    return err instanceof ControlCallError ? err.grpcCode : -1;
  } finally {
    client.close();
  }
}

/** Nothing of pair `name` in the sidecar: not listed, no state dir, not persisted. */
async function expectNoTrace(sc: SidecarProcess, name: string): Promise<void> {
  expect(JSON.parse(await sc.cli('pair', 'list', '-o', 'json'))).toEqual([]);
  expect(await readdir(join(sc.stateDir, 'pairs')).catch(() => [])).not.toContain(name);
  const persisted = JSON.parse(await readFile(join(sc.stateDir, 'pairs.json'), 'utf8').catch(() => '{"pairs":[]}')) as { pairs: { name: string }[] };
  expect(persisted.pairs.map((p) => p.name)).not.toContain(name);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bm-excl-'));
  cleanup.track('work dir', () => rm(dir, { recursive: true, force: true }));
  [devA, devB] = [await loopDevice('a'), await loopDevice('b')];
  [mntA, mntB] = [join(dir, 'mnt-a'), join(dir, 'mnt-b')];
  await mkdir(mntA);
  await mkdir(mntB);
  [a, b] = await Promise.all([startSidecar('a'), startSidecar('b')]);
}, 60_000);

afterAll(async () => {
  await cleanup.releaseAll();
});

describe('a pair holds its block device', () => {
  it('a primary on a mounted device is refused, naming the mount point, and leaves nothing behind', async () => {
    expect((await mount(devA, mntA)).code).toBe(0);
    const err = await createRefused(a, 'p', '--volume', devA, '--role', 'primary', '--nbd-listen', '127.0.0.1:0');
    expect(err).toBe(
      `blockmirror: error: device ${devA} is mounted at ${mntA}: writes there would not pass blockmirror's tap; stage the volume through the splice (StorageClass parameter blockmirror.io/replicate) or unmount it`,
    );
    expect(await createCode(a, 'p', devA, 'ROLE_PRIMARY')).toBe(FAILED_PRECONDITION);
    await expectNoTrace(a, 'p');
    await runOk('umount', [mntA]);
  });

  it('a secondary on a mounted device is refused the same way, with what a secondary needs', async () => {
    expect((await mount(devB, mntB)).code).toBe(0);
    const err = await createRefused(b, 'p', '--volume', devB, '--role', 'secondary');
    expect(err).toBe(
      `blockmirror: error: device ${devB} is mounted at ${mntB}: a secondary volume is written only by its pair (other writes would be overwritten, and readers would see half-applied data); unmount it first`,
    );
    expect(await createCode(b, 'p', devB, 'ROLE_SECONDARY')).toBe(FAILED_PRECONDITION);
    await expectNoTrace(b, 'p');
    await runOk('umount', [mntB]);
  });

  it('a directory is refused, a mount point naming its device', async () => {
    expect((await mount(devA, mntA)).code).toBe(0);
    expect(await createRefused(a, 'p', '--volume', mntA, '--role', 'primary', '--nbd-listen', '127.0.0.1:0')).toBe(
      `blockmirror: error: volume ${mntA} is the mount point of ${devA}: writes through a filesystem there would not pass blockmirror's tap; give the pair the block device, staged through the splice (StorageClass parameter blockmirror.io/replicate)`,
    );
    expect(await createCode(a, 'p', mntA, 'ROLE_PRIMARY')).toBe(INVALID_ARGUMENT);
    await runOk('umount', [mntA]);
    expect(await createRefused(b, 'p', '--volume', mntB, '--role', 'secondary')).toContain(`volume ${mntB} is a directory: writes through a filesystem there`);
    await expectNoTrace(a, 'p');
    await expectNoTrace(b, 'p');
  });

  it('unmounted devices pair and replicate; while the pairs exist neither device can be mounted; after DeletePair both can', async () => {
    await b.cli('pair', 'create', 'p', '--volume', devB, '--role', 'secondary');
    await a.cli('pair', 'create', 'p', '--volume', devA, '--role', 'primary', '--nbd-listen', '127.0.0.1:0', '--peer', b.addresses.peer);
    await a.waitForPair('p', 'InSync', (s) => s.state === 'InSync');
    // The initial copy carried A's filesystem to B, under exclusive opens on both sides.
    expect(await runOk('sha256sum', [devB])).toBe((await runOk('sha256sum', [devA])).replace(devA, devB));

    for (const [dev, mnt] of [
      [devA, mntA],
      [devB, mntB],
    ] as const) {
      const r = await mount(dev, mnt);
      expect({ dev, code: r.code, stderr: r.stderr }).toEqual({ dev, code: 32, stderr: expect.stringContaining('already mounted or mount point busy') });
    }

    await a.cli('pair', 'delete', 'p');
    await b.cli('pair', 'delete', 'p');
    for (const [dev, mnt] of [
      [devA, mntA],
      [devB, mntB],
    ] as const) {
      expect((await mount(dev, mnt)).code).toBe(0);
      await runOk('umount', [mnt]);
    }
  });

  it('a restarted sidecar does not replicate a device mounted meanwhile: Retrying with the reason, until it is unmounted', async () => {
    await a.cli('pair', 'create', 'r', '--volume', devA, '--role', 'primary', '--nbd-listen', '127.0.0.1:0');
    await a.stop();
    expect((await mount(devA, mntA)).code).toBe(0);
    a = await startSidecar('a');

    const refused = await a.waitForPair('r', 'a second refused attempt', (s) => s.retries >= 2);
    expect(refused).toMatchObject({ state: 'Retrying', lastError: `device ${devA} is mounted at ${mntA}: writes there would not pass blockmirror's tap; stage the volume through the splice (StorageClass parameter blockmirror.io/replicate) or unmount it` });
    expect(a.log.join('\n')).toContain('"code":"DEVICE_IN_USE"');

    await runOk('umount', [mntA]);
    // Retries back off up to 30 s; the first few come within a few seconds.
    const back = await a.waitForPair('r', 'the pair to start once the device is free', (s) => s.state === 'Standalone', 60_000);
    expect(back).toMatchObject({ lastError: '', retries: 0 });
    const r = await mount(devA, mntA);
    expect(r.code).toBe(32);
    await a.cli('pair', 'delete', 'r');
    await expectNoTrace(a, 'r');
  });

  it("a device a splice record names is opened shared (dm-era must be able to claim it), but not while it is mounted directly", async () => {
    // The record the node splice writes at StageVolume (hand-written here: this host has no
    // device-mapper); its dm devices are the only holders the pair accepts.
    const record = { pv: 'pv1', device: devA, sectors: (32 * MiB) / 512, state: 'direct' };
    await mkdir(join(a.stateDir, 'splices'), { recursive: true });
    await writeFile(join(a.stateDir, 'splices', 'pv1.json'), JSON.stringify(record));
    cleanup.track('splice record', () => rm(join(a.stateDir, 'splices', 'pv1.json'), { force: true }));

    expect((await mount(devA, mntA)).code).toBe(0);
    expect(await createRefused(a, 's', '--volume', devA, '--role', 'primary', '--nbd-listen', '127.0.0.1:0')).toBe(
      `blockmirror: error: device ${devA} is staged through blockmirror's splice as /dev/mapper/blockmirror-pv1 (volume pv1) but also mounted directly at ${mntA}: writes there would not pass blockmirror's tap; use /dev/mapper/blockmirror-pv1 instead`,
    );
    await expectNoTrace(a, 's');
    await runOk('umount', [mntA]);

    await a.cli('pair', 'create', 's', '--volume', devA, '--role', 'primary', '--nbd-listen', '127.0.0.1:0');
    // Shared: another claim of the device (here a mount; on a node, dm-era at detach) succeeds.
    expect((await mount(devA, mntA)).code).toBe(0);
    await runOk('umount', [mntA]);
    await a.cli('pair', 'delete', 's');
    await rm(join(a.stateDir, 'splices', 'pv1.json'));
  });
});
