import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImages, type BuildImagesResult } from './helpers/build-images.js';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { Containerd } from './helpers/containerd.js';
import { run } from './helpers/run-cli.js';
import { waitFor } from './helpers/wait-for.js';

// The chart's images, built here from the repository's Dockerfile with buildah on
// locally made bases (hack/build-images.sh), imported from their OCI archives into a real
// containerd under their local names and run with runc, as a node of the test bed will.

const cleanup = new CleanupStack();
let built: BuildImagesResult;
let containerd: Containerd;

/** Output and exit of a `ctr run` started in the background. */
function collect(child: ChildProcess): { output: () => string; exited: Promise<number | null> } {
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { output: () => out, exited };
}

beforeAll(async () => {
  // Warm when the test command ran the script first; cold it builds everything.
  built = await buildImages();
  const dir = await mkdtemp(join(tmpdir(), 'bm-containerd-'));
  containerd = await Containerd.start(dir);
  cleanup.track('containerd', () => containerd.stop());
  for (const { archive } of [built.images.operator, built.images.sidecar, built.images.pause]) await containerd.importArchive(archive);
}, 45 * 60_000);

afterAll(async () => {
  await cleanup.releaseAll();
}, 120_000);

describe('the chart images, built locally from the Dockerfile', () => {
  it('are tagged with a hash of their inputs, exported as OCI archives, and a second build only hashes', async () => {
    const { operator, sidecar, pause } = built.images;
    expect(operator.image).toMatch(/^localhost\/blockmirror\/operator:[0-9a-f]{16}$/);
    expect(sidecar.image).toBe(operator.image.replace('/operator:', '/sidecar:'));
    expect(pause.image).toBe('localhost/blockmirror/pause:3.10');
    for (const { archive } of [operator, sidecar, pause]) {
      expect((await stat(archive)).size).toBeGreaterThan(0);
      // An OCI image layout in a tar: what `ctr images import` takes.
      const layout = await run('tar', ['-xOf', archive, 'oci-layout']);
      expect(JSON.parse(layout.stdout)).toEqual({ imageLayoutVersion: '1.0.0' });
    }

    const again = await buildImages({ timeoutMs: 60_000 });
    expect(again.images).toEqual(built.images);
    expect(again.log).toMatch(/already built/);
    expect(again.log).not.toMatch(/mmdebstrap|exporting/);
  }, 120_000);

  it('import into containerd under their fully qualified local names, and nothing else is there', async () => {
    const names = await containerd.imageNames();
    expect(names.sort()).toEqual([built.images.operator.image, built.images.pause.image, built.images.sidecar.image].sort());
  });

  it('sidecar: its own command starts the sidecar as root, and --help answers', async () => {
    const image = built.images.sidecar.image;
    const config = await containerd.imageConfig(image);
    expect(config.Entrypoint).toEqual(['node', '/app/dist/sidecar/cli/main.js']);
    expect(config.User ?? '').toBe('');

    const help = await containerd.runContainer(image, 'sidecar-help', [...config.Entrypoint!, '--help']);
    expect(help.stderr).toBe('');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Usage: blockmirror/);
    expect(help.stdout).toMatch(/sidecar/);

    const who = await containerd.runContainer(image, 'sidecar-id', ['id', '-u']);
    expect(who.stdout.trim()).toBe('0');
    const node = await containerd.runContainer(image, 'sidecar-node', ['node', '--version']);
    expect(node.stdout.trim()).toMatch(/^v24\./);

    // The image's entrypoint and command, as the DaemonSet runs them (no arguments given).
    const ctr = containerd.spawnContainer(image, 'sidecar-default', []);
    const { output, exited } = collect(ctr);
    cleanup.track('sidecar container', async () => {
      await containerd.ctr(['tasks', 'kill', '--signal', 'SIGKILL', 'sidecar-default']);
      await exited;
    });
    await waitFor('"sidecar ready" from the container', () => output().includes('"sidecar ready"'), { timeoutMs: 60_000, intervalMs: 100 });
    await containerd.ctrOk(['tasks', 'kill', '--signal', 'SIGTERM', 'sidecar-default']);
    expect(await exited).toBe(0);
    expect(output()).toMatch(/"sidecar stopped"/);
  }, 180_000);

  it('sidecar: carries the node splice tools, and they work in a privileged container', async () => {
    const image = built.images.sidecar.image;
    for (const tool of ['dmsetup', 'era_invalidate', 'mkfs.ext4', 'losetup', 'blkid', 'fallocate']) {
      const found = await containerd.runContainer(image, `which-${tool.replace('.', '-')}`, ['sh', '-c', `command -v ${tool}`]);
      expect({ tool, code: found.code }).toEqual({ tool, code: 0 });
    }
    // This kernel has no device-mapper: dmsetup can show its library, not a driver.
    expect((await containerd.runContainer(image, 'dmsetup', ['dmsetup', '--version'])).stdout).toMatch(/Library version:/);
    const era = await containerd.runContainer(image, 'era-invalidate', ['era_invalidate', '--version']);
    expect(era.code).toBe(0);
    expect(era.stdout).toMatch(/^\d+\.\d+/);
    const helper = await containerd.runContainer(image, 'nbd-helper', ['/usr/local/bin/blockmirror-nbd']);
    expect(helper.code).toBe(2);
    expect(helper.stderr).toMatch(/usage: blockmirror-nbd/);

    // An ext4 filesystem made, put on a loop device and recognised, as the CSI proxy does;
    // the device is detached whatever happens (the file's name makes a leak findable).
    const file = `/tmp/bm-images-test-${process.pid}.img`;
    const script = `set -e; truncate -s 16M ${file}; mkfs.ext4 -q -F ${file}; dev=$(losetup --find --show ${file}); trap 'losetup -d "$dev"' EXIT; blkid -o value -s TYPE "$dev"`;
    cleanup.track('loop device', async () => {
      const list = await run('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE']);
      for (const line of list.stdout.split('\n').filter((l) => l.includes(file))) await run('losetup', ['-d', line.split(/\s+/)[0]]);
    });
    const loop = await containerd.runContainer(image, 'loop-ext4', ['sh', '-c', script], { privileged: true });
    expect(loop.stderr).toBe('');
    expect(loop.stdout.trim()).toBe('ext4');
    expect(loop.code).toBe(0);
  }, 180_000);

  it('operator: runs as a non-root user, and --help answers', async () => {
    const image = built.images.operator.image;
    const config = await containerd.imageConfig(image);
    expect(config.User).toBe('node');
    expect(config.Entrypoint).toEqual(['node', '/app/dist/sidecar/cli/main.js']);
    expect(config.Cmd).toEqual(['operator']);

    const who = await containerd.runContainer(image, 'operator-id', ['id']);
    expect(who.stdout).toMatch(/^uid=1000\(node\) gid=1000\(node\)/);
    const help = await containerd.runContainer(image, 'operator-help', [...config.Entrypoint!, ...config.Cmd!, '--help']);
    expect(help.stderr).toBe('');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Usage: blockmirror operator/);
    expect(help.stdout).toMatch(/--no-leader-elect/);
    // Production dependencies only: the build stage's TypeScript is not in the image.
    expect((await containerd.runContainer(image, 'operator-deps', ['node', '-e', "require.resolve('commander')"])).code).toBe(0);
    const tsc = await containerd.runContainer(image, 'operator-no-dev', ['node', '-e', "require.resolve('typescript')"]);
    expect(tsc.code).not.toBe(0);
  }, 120_000);

  it('pause: holds a sandbox as uid 65535 and exits 0 on SIGTERM', async () => {
    const image = built.images.pause.image;
    const version = await containerd.runContainer(image, 'pause-version', ['/pause', '-v']);
    expect(version.stdout.trim()).toBe('pause.go 3.10');

    const ctr = containerd.spawnContainer(image, 'pause', []);
    const { output, exited } = collect(ctr);
    cleanup.track('pause container', async () => {
      await containerd.ctr(['tasks', 'kill', '--signal', 'SIGKILL', 'pause']);
      await exited;
    });
    const pid = await containerd.taskPid('pause');
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    expect(status).toMatch(/^Uid:\s+65535\s/m);
    await containerd.ctrOk(['tasks', 'kill', '--signal', 'SIGTERM', 'pause']);
    expect(await exited).toBe(0);
    expect(output()).toMatch(/Shutting down, got signal: terminated/);
  }, 120_000);
});
