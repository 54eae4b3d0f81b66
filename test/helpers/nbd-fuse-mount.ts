import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { run, runOk } from './run-cli.js';
import { waitFor } from './wait-for.js';

// A block device on an NBD export without the kernel's NBD client (the host's kernel has
// none): nbdfuse shows the export as a file, a loop device makes it a block device, and
// ext4 is mounted on that. An fsync in the filesystem reaches the export as an NBD FLUSH
// (loop → the file's fsync → nbdfuse), so a database on it has the durability it asks for.

const CMD_TIMEOUT = 20_000;

/** Registers a release action and returns a function that runs it early (CleanupStack.track). */
export type Track = (what: string, release: () => Promise<void>) => () => Promise<void>;

export interface FuseAttachment {
  /** The export as a file: MOUNTPOINT/nbd. */
  file: string;
  /** The nbdfuse process (to kill it as a crashed node would lose it). */
  child: ChildProcess;
  detach: () => Promise<void>;
}

async function isMountpoint(dir: string): Promise<boolean> {
  return (await run('mountpoint', ['-q', dir], { timeoutMs: CMD_TIMEOUT })).code === 0;
}

function exitOf(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
}

/**
 * Runs nbdfuse in the foreground (its default) and waits until it is serving. `netns`: it
 * dials from that network namespace (a site's node, whose sidecar exports on its own
 * 127.0.0.1); the mount is the host's all the same.
 */
export async function attachFuse(track: Track, uri: string, mountDir: string, expectedBytes: number, readOnly = false, netns?: string): Promise<FuseAttachment> {
  await mkdir(mountDir, { recursive: true });
  const pidFile = `${mountDir}.pid`;
  await rm(pidFile, { force: true });
  const args = [...(readOnly ? ['-r'] : []), '-P', pidFile, mountDir, uri];
  // nsenter execs nbdfuse: the child is nbdfuse itself.
  const child = netns === undefined ? spawn('nbdfuse', args, { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn('nsenter', [`--net=/run/netns/${netns}`, '--', 'nbdfuse', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString('utf8')));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString('utf8')));
  const exited = exitOf(child);
  const detach = track(`nbdfuse on ${mountDir}`, async () => {
    if (await isMountpoint(mountDir)) {
      const r = await run('fusermount3', ['-u', mountDir], { timeoutMs: CMD_TIMEOUT });
      if (r.code !== 0) await run('fusermount3', ['-uz', mountDir], { timeoutMs: CMD_TIMEOUT });
    }
    const gone = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 10_000).unref())]);
    if (!gone) {
      child.kill('SIGKILL');
      await exited;
      await run('fusermount3', ['-uz', mountDir], { timeoutMs: CMD_TIMEOUT }).catch(() => undefined);
    }
  });
  const file = join(mountDir, 'nbd');
  await waitFor(
    `nbdfuse serving ${uri} on ${mountDir}`,
    async () => {
      if (child.exitCode !== null) throw new Error(`nbdfuse exited ${child.exitCode}: ${output}`);
      return existsSync(pidFile) && (await stat(file)).size === expectedBytes;
    },
    { timeoutMs: 20_000 },
  );
  return { file, child, detach };
}

export async function attachLoop(track: Track, file: string, readOnly = false): Promise<{ dev: string; detach: () => Promise<void> }> {
  const dev = (await runOk('losetup', ['--find', '--show', '--direct-io=off', ...(readOnly ? ['--read-only'] : []), file])).trim();
  if (!/^\/dev\/loop\d+$/.test(dev)) throw new Error(`losetup printed ${JSON.stringify(dev)}, not a loop device`);
  // A busy device (a lazily unmounted filesystem still on it) is cleared once released.
  const detach = track(`loop device ${dev}`, () => runOk('losetup', ['-d', dev], { timeoutMs: CMD_TIMEOUT }).then(() => undefined));
  return { dev, detach };
}

export async function mountExt4(track: Track, dev: string, dir: string, readOnly = false): Promise<() => Promise<void>> {
  await mkdir(dir, { recursive: true });
  await runOk('mount', ['-t', 'ext4', ...(readOnly ? ['-o', 'ro'] : []), dev, dir]);
  return track(`mount ${dir}`, async () => {
    if (!(await isMountpoint(dir))) return;
    const r = await run('umount', [dir], { timeoutMs: CMD_TIMEOUT });
    if (r.code !== 0) {
      await runOk('umount', ['-l', dir], { timeoutMs: CMD_TIMEOUT });
      throw new Error(`umount ${dir} failed (${r.code}), lazily unmounted: ${r.stderr}`);
    }
  });
}

export interface MountedExport {
  /** Where the filesystem is mounted. */
  dir: string;
  /** Unmounts cleanly (everything written reaches the export) and detaches. */
  unmount: () => Promise<void>;
  /**
   * What a node that dies leaves: nbdfuse killed first (every I/O after fails at once,
   * nothing hangs on a dead export), then the filesystem dropped lazily and the loop
   * device cleared; whatever was not flushed is gone, as in a crash.
   */
  abandon: () => Promise<void>;
}

/** Mounts the ext4 filesystem on an NBD export at `<base>/mnt` (nbdfuse at `<base>/fuse`, dialling from `opts.netns`). */
export async function mountExport(track: Track, uri: string, base: string, volumeBytes: number, opts: { netns?: string } = {}): Promise<MountedExport> {
  const dir = join(base, 'mnt');
  const fuse = await attachFuse(track, uri, join(base, 'fuse'), volumeBytes, false, opts.netns);
  const loop = await attachLoop(track, fuse.file);
  const umount = await mountExt4(track, loop.dev, dir);
  return {
    dir,
    unmount: async () => {
      await umount();
      await loop.detach();
      await fuse.detach();
    },
    abandon: async () => {
      fuse.child.kill('SIGKILL');
      await exitOf(fuse.child);
      await runOk('umount', ['-l', dir], { timeoutMs: CMD_TIMEOUT });
      await umount();
      await loop.detach();
      // A FUSE mount whose server died answers ENOTCONN, so `mountpoint` no longer knows it: detached lazily here.
      await runOk('fusermount3', ['-uz', join(base, 'fuse')], { timeoutMs: CMD_TIMEOUT });
      await fuse.detach();
    },
  };
}
