import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError, PathNotAllowedError } from '../errors.js';
import { PathPolicy } from './path-policy.js';

let dir = '';
let allowed = '';
let outside = '';
let runDir = '';

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bm-paths-'));
  allowed = join(dir, 'allowed');
  outside = join(dir, 'outside');
  runDir = join(dir, 'run');
  await mkdir(allowed);
  await mkdir(outside);
  await writeFile(join(allowed, 'v.img'), 'volume');
  await writeFile(join(outside, 'secret.img'), 'not yours');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function policy(held: (rdev: number) => Promise<string | null> = async () => null): PathPolicy {
  return new PathPolicy({ volumePrefixes: [allowed], runDir, heldDevice: held });
}

describe('PathPolicy.volume', () => {
  it('allows a file under an allowed prefix, answering where it lands', async () => {
    expect(await policy().volume(join(allowed, 'v.img'))).toBe(join(allowed, 'v.img'));
    // Through a symlink that stays inside: judged (and opened) where it lands.
    await symlink(join(allowed, 'v.img'), join(allowed, 'link.img'));
    expect(await policy().volume(join(allowed, 'link.img'))).toBe(join(allowed, 'v.img'));
  });

  it('refuses /dev/sda and other devices outside the prefixes, with PATH_NOT_ALLOWED', async () => {
    for (const dev of ['/dev/sda', '/dev/nvme0n1', '/dev/null', '/dev/loop0', '/proc/self/status', '/']) {
      const err = await policy().volume(dev).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PathNotAllowedError);
      expect(err).toMatchObject({ code: 'PATH_NOT_ALLOWED', path: dev });
      expect((err as Error).message).toMatch(/--allow-volume-prefix/);
    }
  });

  it('judges `..` by where it lands', async () => {
    const err = await policy().volume(join(allowed, '..', 'outside', 'secret.img')).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'PATH_NOT_ALLOWED', resolved: join(outside, 'secret.img') });
    // A prefix is a directory, not a string prefix: /x/allowed-evil is not under /x/allowed.
    await mkdir(`${allowed}-evil`);
    await writeFile(join(`${allowed}-evil`, 'v.img'), '');
    await expect(policy().volume(join(`${allowed}-evil`, 'v.img'))).rejects.toBeInstanceOf(PathNotAllowedError);
  });

  it('refuses a symlink (of the file, or of a directory on the way) that leads out of the prefixes', async () => {
    await symlink(join(outside, 'secret.img'), join(allowed, 'escape.img'));
    await symlink(outside, join(allowed, 'escape-dir'));
    await symlink('/dev/sda', join(allowed, 'disk'));
    for (const p of [join(allowed, 'escape.img'), join(allowed, 'escape-dir', 'secret.img')]) {
      await expect(policy().volume(p)).rejects.toMatchObject({ code: 'PATH_NOT_ALLOWED', resolved: join(outside, 'secret.img') });
    }
    // A dangling link or one to a device not there: refused like a path outside.
    await expect(policy().volume(join(allowed, 'disk'))).rejects.toBeInstanceOf(existsSync('/dev/sda') ? PathNotAllowedError : InvalidArgumentError);
  });

  it('a missing path: a typo under a prefix is INVALID_ARGUMENT, outside it is refused without saying whether it exists', async () => {
    await expect(policy().volume(join(allowed, 'missing.img'))).rejects.toBeInstanceOf(InvalidArgumentError);
    const err = await policy().volume(join(outside, 'missing.img')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PathNotAllowedError);
    expect(err).toMatchObject({ resolved: '' });
    expect((err as Error).message).toMatch(/does not exist and is outside/);
    expect(await policy().volume('/dev/no-such-device').catch((e: unknown) => e)).toBeInstanceOf(PathNotAllowedError);
  });

  it('refuses a relative path: it would resolve against the sidecar, not the caller', async () => {
    await expect(policy().volume('v.img')).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('allows a block device the node splice (or a fence) holds, wherever it is', async () => {
    // A real block device of this machine, if any is visible; the splice record names it by number.
    const dev = ['/dev/loop0', '/dev/vda', '/dev/sda', '/dev/nvme0n1'].find((d) => existsSync(d) && statSync(d).isBlockDevice());
    if (dev === undefined) throw new Error('no block device to test with (expected at least /dev/loop0)');
    const rdev = (await stat(dev)).rdev;
    const asked: number[] = [];
    const held = async (r: number): Promise<string | null> => {
      asked.push(r);
      return r === rdev ? 'staged by the node splice as /dev/mapper/blockmirror-pv1' : null;
    };
    expect(await policy(held).volume(dev)).toBe(dev);
    expect(asked).toEqual([rdev]);
    // Not held: refused. A regular file is never taken for a held device.
    await expect(policy(async () => null).volume(dev)).rejects.toBeInstanceOf(PathNotAllowedError);
    await expect(policy(async () => 'held').volume(join(outside, 'secret.img'))).rejects.toBeInstanceOf(PathNotAllowedError);
  });

  it('allows a loop device over a file under a prefix (it reaches only that file), not one over a file outside', async () => {
    // /dev/loop0 (major 7) with a sysfs of the test's making, naming its backing file.
    const sysfs = join(dir, 'sys');
    const loop = join(sysfs, 'dev', 'block', '7:0', 'loop');
    await mkdir(loop, { recursive: true });
    const p = new PathPolicy({ volumePrefixes: [allowed], runDir, sysfs });
    await writeFile(join(loop, 'backing_file'), `${join(allowed, 'v.img')}\n`);
    expect(await p.volume('/dev/loop0')).toBe('/dev/loop0');
    await writeFile(join(loop, 'backing_file'), `${join(allowed, '..', 'outside', 'secret.img')}\n`);
    await expect(p.volume('/dev/loop0')).rejects.toBeInstanceOf(PathNotAllowedError);
    // A backing file this process cannot reach (another mount namespace's) allows nothing.
    await writeFile(join(loop, 'backing_file'), `${join(allowed, 'gone.img')}\n`);
    await expect(p.volume('/dev/loop0')).rejects.toBeInstanceOf(PathNotAllowedError);
  });

  it('an entry ending in * allows the names in its directory that start with its stem, nothing else', async () => {
    const p = new PathPolicy({ volumePrefixes: [join(allowed, 'loop*')], runDir });
    for (const name of ['loop3', 'loop12']) await writeFile(join(allowed, name), '');
    await mkdir(join(allowed, 'loopdir'));
    await writeFile(join(allowed, 'loopdir', 'x'), '');
    expect(await p.volume(join(allowed, 'loop3'))).toBe(join(allowed, 'loop3'));
    expect(await p.volume(join(allowed, 'loop12'))).toBe(join(allowed, 'loop12'));
    for (const refused of [join(allowed, 'v.img'), join(allowed, 'loopdir', 'x')]) await expect(p.volume(refused)).rejects.toBeInstanceOf(PathNotAllowedError);
    // The stem alone is no match; a symlink named like one is judged where it lands.
    await writeFile(join(allowed, 'loop'), '');
    await expect(p.volume(join(allowed, 'loop'))).rejects.toBeInstanceOf(PathNotAllowedError);
    await symlink(join(outside, 'secret.img'), join(allowed, 'loop9'));
    await expect(p.volume(join(allowed, 'loop9'))).rejects.toBeInstanceOf(PathNotAllowedError);
  });

  it('a prefix that is a symlink counts where it lands; one naming a single device allows that device only', async () => {
    const link = join(dir, 'kubelet');
    await symlink(allowed, link);
    const p = new PathPolicy({ volumePrefixes: [link], runDir });
    expect(await p.volume(join(link, 'v.img'))).toBe(join(allowed, 'v.img'));
    expect(await p.volume(join(allowed, 'v.img'))).toBe(join(allowed, 'v.img'));
    const single = new PathPolicy({ volumePrefixes: [join(allowed, 'v.img')], runDir });
    expect(await single.volume(join(allowed, 'v.img'))).toBe(join(allowed, 'v.img'));
    await writeFile(join(allowed, 'v.img2'), '');
    await expect(single.volume(join(allowed, 'v.img2'))).rejects.toBeInstanceOf(PathNotAllowedError);
  });
});

describe('PathPolicy.socket', () => {
  it('places a bare name in the run directory, made 0700', async () => {
    expect(await policy().socket('db.sock')).toBe(join(runDir, 'db.sock'));
    expect((await stat(runDir)).mode & 0o777).toBe(0o700);
    for (const bad of ['../x.sock', 'a/b.sock', '..', '.', 'x y']) await expect(policy().socket(bad)).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('allows an absolute path in the run directory or below it', async () => {
    await mkdir(join(runDir, 'sub'), { recursive: true });
    expect(await policy().socket(join(runDir, 'db.sock'))).toBe(join(runDir, 'db.sock'));
    expect(await policy().socket(join(runDir, 'sub', 'db.sock'))).toBe(join(runDir, 'sub', 'db.sock'));
  });

  it('refuses a socket outside the run directory, by `..` or through a symlinked directory', async () => {
    await mkdir(runDir, { recursive: true });
    await symlink(outside, join(runDir, 'out'));
    for (const p of [join(outside, 'x.sock'), join(runDir, '..', 'outside', 'x.sock'), join(runDir, 'out', 'x.sock'), '/run/containerd/containerd.sock', '/var/lib/kubelet/device-plugins/kubelet.sock']) {
      await expect(policy().socket(p)).rejects.toMatchObject({ code: 'PATH_NOT_ALLOWED', path: p });
    }
    // A NUL in the name is no file name either.
    await expect(policy().socket(join(runDir, 'a\0b.sock'))).rejects.toBeInstanceOf(InvalidArgumentError);
    // A path ending in `..` names no file.
    await expect(policy().socket(`${runDir}/sub/..`)).rejects.toBeInstanceOf(InvalidArgumentError);
    // A missing directory inside the run dir is a typo; nothing is made for it.
    await expect(policy().socket(join(runDir, 'missing', 'x.sock'))).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(existsSync(join(runDir, 'missing'))).toBe(false);
  });
});
