// Issue 19, item 3: the privileged sidecar touches only the paths it is configured for.
// A real sidecar process allowed one volume directory; CreatePair (through the built CLI
// and the gRPC client) naming a device of this machine, a `../` path, a symlink out of
// the directory, or an NBD socket outside the run directory is refused with
// PERMISSION_DENIED, and strace, attached to the sidecar meanwhile, shows it never opened,
// created or unlinked any of them: the target file's times and bytes are as they were,
// no pair state is left, and a live Unix socket where a socket was asked for still
// answers. Loop devices over files inside and outside the directory (real losetup) and a
// pair restored after the sidecar's flags narrowed complete the picture. Needs root
// (strace -p, losetup) and the built CLI (dist/).
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { spawn, type ChildProcess } from 'node:child_process';
import { constants, existsSync, lstatSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, readdir, readlink, rm, symlink, truncate, utimes, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlCallError, ControlClient } from '../sidecar/control/control-client.js';
import { splitDevT } from '../sidecar/csi/block-device.js';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { runCli, runOk } from './helpers/run-cli.js';
import { SidecarProcess } from './helpers/sidecar-process.js';
import { waitFor } from './helpers/wait-for.js';

jest.setTimeout(120_000);

const MiB = 1 << 20;
const SECRET = 'the node disk stands in: not yours to replicate';
// Long ago, so that any read would move the access time (relatime updates an atime older than a day).
const OLD = new Date('2001-02-03T04:05:06Z');

const cleanup = new CleanupStack();
let dir = '';
let allowed = '';
let outside = '';
let stateDir = '';
let runDir = '';
let secret = '';
let decoy = '';
let decoyServer: Server;
let sc: SidecarProcess;
let client: ControlClient;
let trace: { child: ChildProcess; log: string };

/** A loop device over `file`, detached by the cleanup. */
async function loopDevice(file: string): Promise<string> {
  const dev = (await runOk('losetup', ['--find', '--show', file])).trim();
  cleanup.track(`loop device ${dev}`, async () => void (await runOk('losetup', ['-d', dev])));
  return dev;
}

/** strace attached to every thread of `pid`, logging the calls that name files (and bind). */
async function attachStrace(pid: number, log: string): Promise<{ child: ChildProcess; log: string }> {
  const child = spawn('strace', ['-f', '-e', 'trace=%file,bind', '-o', log, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  cleanup.track('strace', () => detachStrace(child));
  await waitFor('strace attached', () => (/attached/.test(stderr) ? true : child.exitCode !== null ? Promise.reject(new Error(`strace exited: ${stderr}`)) : undefined), { timeoutMs: 10_000, intervalMs: 50 });
  return { child, log };
}

async function detachStrace(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGINT');
  await exited;
}

/** The traced calls that open, create, bind, rename or remove a path starting with one of `paths`. */
async function touching(paths: string[]): Promise<string[]> {
  const lines = (await readFile(trace.log, 'utf8')).split('\n');
  const mutating = /\b(open|openat|openat2|creat|unlink|unlinkat|rename|renameat|renameat2|truncate|mknod|mknodat|bind|chmod|fchmodat|chown|fchownat|link|linkat|symlink|symlinkat)\(/;
  return lines.filter((l) => mutating.test(l) && paths.some((p) => l.includes(`"${p}`) || (l.includes('bind(') && l.includes(p))));
}

/** Everything that must not move: the target's bytes and times, the decoy socket, the pair list, pairs.json. */
async function snapshot(): Promise<unknown> {
  const st = statSync(secret);
  // Read without moving its access time (O_NOATIME: the test runs as root).
  const fh = await open(secret, constants.O_RDONLY | constants.O_NOATIME);
  const bytes = await fh.readFile('utf8').finally(() => fh.close());
  return {
    secret: bytes,
    atimeMs: st.atimeMs,
    mtimeMs: st.mtimeMs,
    ctimeMs: st.ctimeMs,
    decoyIsSocket: lstatSync(decoy).isSocket(),
    pairs: (await client.listPairs()).map((p) => p.spec!.name).sort(),
    pairsJson: await readFile(join(stateDir, 'pairs.json'), 'utf8').catch(() => ''),
    pairDirs: await readdir(join(stateDir, 'pairs')).catch(() => []),
    runDir: (await readdir(runDir)).sort(),
  };
}

async function decoyAnswers(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(decoy);
    s.once('data', (d) => {
      s.destroy();
      resolve(d.toString() === 'decoy\n');
    });
    s.once('error', () => resolve(false));
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bm-paths-'));
  cleanup.track('temp dir', () => rm(dir, { recursive: true, force: true }));
  allowed = join(dir, 'volumes');
  outside = join(dir, 'outside');
  stateDir = join(dir, 'state');
  runDir = join(stateDir, 'run');
  await mkdir(allowed);
  await mkdir(outside);
  await mkdir(runDir, { recursive: true, mode: 0o700 });
  await writeFile(join(allowed, 'v.img'), '');
  await truncate(join(allowed, 'v.img'), 4 * MiB);
  secret = join(outside, 'secret.img');
  await writeFile(secret, SECRET.padEnd(MiB, '.'));
  await utimes(secret, OLD, OLD);
  // Symlinks out of the allowed directory: to the file, to its directory; and out of the run dir.
  await symlink(secret, join(allowed, 'escape.img'));
  await symlink(outside, join(allowed, 'escape-dir'));
  await symlink(outside, join(runDir, 'out'));
  // A live socket of another program where an NBD socket is asked for (say containerd's).
  decoy = join(outside, 'decoy.sock');
  decoyServer = createServer((c) => c.end('decoy\n'));
  await new Promise<void>((resolve) => decoyServer.listen(decoy, resolve));
  cleanup.track('decoy server', () => new Promise<void>((resolve) => decoyServer.close(() => resolve())));

  sc = await SidecarProcess.start({ stateDir, allowVolumePrefixes: [allowed] });
  cleanup.track('sidecar', async () => void (await sc.stop()));
  client = new ControlClient(sc.addresses.control);
  cleanup.track('client', async () => client.close());
  trace = await attachStrace(sc.child.pid!, join(dir, 'strace.log'));
});

afterAll(async () => {
  await cleanup.releaseAll();
});

describe('CreatePair on paths outside what the sidecar may touch', () => {
  const refusedRpc = async (name: string, volumePath: string, nbdSocket = ''): Promise<string> => {
    const err = await client.createPair({ name, volumePath, role: 'ROLE_PRIMARY', nbdSocket }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ControlCallError);
    expect({ volumePath, nbdSocket, code: (err as ControlCallError).grpcCode }).toEqual({ volumePath, nbdSocket, code: GrpcStatus.PERMISSION_DENIED });
    return (err as Error).message;
  };

  it('refuses them all with PERMISSION_DENIED and a message saying why; nothing opened, created or unlinked', async () => {
    const before = await snapshot();
    const devices = ['/dev/vda', '/dev/sda', '/dev/nvme0n1', '/dev/loop0', '/dev/mem'];

    // The machine's own devices (present or not), through the CLI as a user types it.
    for (const dev of devices) {
      const r = await runCli(['pair', 'create', 'grab', '--volume', dev, '--role', 'primary', '--nbd-listen', '127.0.0.1:0', '--control', sc.addresses.control]);
      expect({ dev, code: r.code, stdout: r.stdout }).toEqual({ dev, code: 1, stdout: '' });
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(`blockmirror: error: volume ${dev} is not allowed: it `);
      expect(r.stderr).toContain(`outside this sidecar's allowed volume paths (${stateDir}, ${allowed})`);
      expect(r.stderr).toContain('--allow-volume-prefix');
    }
    // `..` sent as is (the CLI would resolve it first), and the file it lands on named directly.
    expect(await refusedRpc('dots', `${allowed}/../outside/secret.img`)).toContain(`resolves to ${secret},`);
    expect(await refusedRpc('direct', secret)).toContain(`volume ${secret} is not allowed: it is outside`);
    // Symlinks out of the allowed directory: the file, and a directory on the way.
    expect(await refusedRpc('link', join(allowed, 'escape.img'))).toContain(`resolves to ${secret},`);
    expect(await refusedRpc('link-dir', join(allowed, 'escape-dir', 'secret.img'))).toContain(`resolves to ${secret},`);
    // Sockets outside the run dir, on an allowed volume: directly, by `..`, through a symlink.
    const good = join(allowed, 'v.img');
    expect(await refusedRpc('sock', good, decoy)).toContain(`NBD socket ${decoy} is not allowed: it is outside this sidecar's run directory ${runDir}`);
    expect(await refusedRpc('sock-dots', good, `${runDir}/../../outside/decoy.sock`)).toContain(`resolves to ${decoy},`);
    expect(await refusedRpc('sock-link', good, join(runDir, 'out', 'decoy.sock'))).toContain(`resolves to ${decoy},`);
    const cliSock = await runCli(['pair', 'create', 'sock-cli', '--volume', good, '--role', 'primary', '--nbd-socket', decoy, '--control', sc.addresses.control]);
    expect({ code: cliSock.code, stderr: cliSock.stderr }).toEqual({ code: 1, stderr: expect.stringContaining(`NBD socket ${decoy} is not allowed`) });

    // Nothing moved: the file (bytes, access and change times), the decoy, the pairs and their state.
    expect(await snapshot()).toEqual(before);
    expect(statSync(secret).atime.getTime()).toBe(OLD.getTime());
    expect(await decoyAnswers()).toBe(true);
    // What the sidecar did with those paths: looked (stat, readlink), never opened, bound or unlinked.
    const targets = [secret, outside, decoy, join(allowed, 'escape'), join(runDir, 'out'), ...devices];
    expect(await touching(targets)).toEqual([]);
    const log = await readFile(trace.log, 'utf8');
    expect(log).toContain(`"${secret}"`);
    expect(log).toContain('"/dev/vda"');
  });

  it('allows what is allowed: a volume in the directory, a bare socket name in the run dir', async () => {
    const p = await client.createPair({ name: 'ok', volumePath: join(allowed, 'v.img'), role: 'ROLE_PRIMARY', nbdSocket: 'ok.sock' });
    expect(p.status!.nbdSocket).toBe(join(runDir, 'ok.sock'));
    expect(lstatSync(join(runDir, 'ok.sock')).isSocket()).toBe(true);
    // The trace sees what an allowed pair does (so its silence above means something).
    const seen = await touching([join(allowed, 'v.img'), join(runDir, 'ok.sock')]);
    expect(seen.some((l) => /open(at)?\(/.test(l) && l.includes(join(allowed, 'v.img')))).toBe(true);
    expect(seen.some((l) => l.includes('bind(') && l.includes(join(runDir, 'ok.sock')))).toBe(true);
    // UpdatePair cannot move its socket out either; the pair keeps running where it was.
    const err = await client.updatePair({ name: 'ok', volumePath: join(allowed, 'v.img'), role: 'ROLE_PRIMARY', nbdSocket: decoy }).catch((e: unknown) => e);
    expect((err as ControlCallError).grpcCode).toBe(GrpcStatus.PERMISSION_DENIED);
    const st = await client.getPair('ok');
    expect({ state: st.status!.state, socket: st.status!.nbdSocket }).toEqual({ state: 'PAIR_STATE_STANDALONE', socket: join(runDir, 'ok.sock') });
    expect(await decoyAnswers()).toBe(true);
    await client.deletePair('ok');
  });

  it('judges a loop device by its backing file: one over a file in the directory is allowed, one over a file outside is not', async () => {
    await writeFile(join(allowed, 'loop.img'), '');
    await truncate(join(allowed, 'loop.img'), 4 * MiB);
    const inside = await loopDevice(join(allowed, 'loop.img'));
    const out = await loopDevice(secret);
    await utimes(secret, OLD, OLD);
    const created = await client.createPair({ name: 'loop-in', volumePath: inside, role: 'ROLE_SECONDARY' });
    expect(created.spec!.volumePath).toBe(inside);
    await client.deletePair('loop-in');
    expect(await refusedRpc('loop-out', out)).toContain(`volume ${out} is not allowed`);
    expect(await touching([out])).toEqual([]);
    expect(statSync(secret).atime.getTime()).toBe(OLD.getTime());
  });
});

describe('the splice and fence calls that name a device', () => {
  const code = (p: Promise<unknown>): Promise<number | string> => p.then(
    () => 'accepted',
    (e: unknown) => (e as ControlCallError).grpcCode,
  );

  it('StageVolume and a held ReportFencedVolume are refused outside the allowed paths; an allowed one is kept as the kernel device', async () => {
    for (const dev of ['/dev/vda', secret, `${allowed}/../outside/secret.img`, join(allowed, 'escape.img')]) {
      expect({ dev, code: await code(client.stageVolume('pv-grab', dev)) }).toEqual({ dev, code: GrpcStatus.PERMISSION_DENIED });
    }
    expect(existsSync(join(stateDir, 'splices', 'pv-grab.json'))).toBe(false);
    // A fence whose CSI proxy "holds" the node's disk: refused, so no pair is then allowed on it.
    await client.fenceVolume('pv-fenced', 'default/db', 'pv-fenced');
    expect(await code(client.reportFencedVolume('pv-fenced', 'held', '/dev/vda'))).toBe(GrpcStatus.PERMISSION_DENIED);
    expect((await client.getFencedVolume('pv-fenced')).device).toBe('');
    expect(await code(client.createPair({ name: 'fenced-grab', volumePath: '/dev/vda', role: 'ROLE_SECONDARY' }))).toBe(GrpcStatus.PERMISSION_DENIED);
    // A device the proxy's driver published under an allowed path (here a loop device's
    // node in the directory, as a driver's bind mount is): kept as the kernel's device.
    await writeFile(join(allowed, 'held.img'), '');
    await truncate(join(allowed, 'held.img'), 4 * MiB);
    const held = await loopDevice(join(allowed, 'held.img'));
    const published = join(allowed, 'published-dev');
    const { major, minor } = splitDevT(statSync(held).rdev);
    await runOk('mknod', [published, 'b', String(major), String(minor)]);
    expect((await client.reportFencedVolume('pv-fenced', 'held', published)).device).toBe(held);
    await client.unfenceVolume('pv-fenced');
    expect(await touching(['/dev/vda', secret])).toEqual([]);
  });
});

describe('a restored pair the sidecar is no longer allowed to open', () => {
  it('stays Retrying with the refusal, its volume never opened, and can be deleted', async () => {
    const volume = join(allowed, 'restored.img');
    await writeFile(volume, '');
    await truncate(volume, 4 * MiB);
    await client.createPair({ name: 'restored', volumePath: volume, role: 'ROLE_PRIMARY', nbdListen: '127.0.0.1:0' });
    client.close();
    await detachStrace(trace.child);
    expect(await sc.stop()).toEqual({ code: 0, signal: null });

    // Restarted with its volume directory no longer allowed (a config change).
    sc = await SidecarProcess.start({ stateDir, allowVolumePrefixes: [join(dir, 'elsewhere')] });
    client = new ControlClient(sc.addresses.control);
    const st = await sc.waitForPair('restored', 'the restored pair refused', (s) => s.state === 'Retrying' && s.lastError !== '');
    expect(st.lastError).toContain(`volume ${volume} is not allowed: it is outside this sidecar's allowed volume paths`);
    expect(st.nbdAddress).toBe('');
    expect(sc.log.some((l) => l.includes('pair could not be restored') && l.includes('PATH_NOT_ALLOWED'))).toBe(true);
    // Not held open by the process (a pair that ran would keep its volume open).
    const fds = await readdir(`/proc/${sc.child.pid}/fd`);
    const open = await Promise.all(fds.map((fd) => readlink(`/proc/${sc.child.pid}/fd/${fd}`).catch(() => '')));
    expect(open.filter((p) => p === volume)).toEqual([]);
    await client.deletePair('restored');
    expect(existsSync(join(stateDir, 'pairs', 'restored'))).toBe(false);
    client.close();
  });
});
