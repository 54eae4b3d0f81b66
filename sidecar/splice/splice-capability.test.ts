import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { probeSpliceCapability } from './splice-capability.js';

const VERSION = 'Library version:   1.02.185 (2022-05-18)\nDriver version:    4.47.0\n';
const TARGETS = 'era              v1.0.0\nmultipath        v1.14.0\nstriped          v1.6.0\nlinear           v1.4.0\nerror            v1.6.0\n';

let root: string;
let dev: string;
let sys: string;
let helper: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'bm-splice-cap-'));
  dev = join(root, 'dev');
  sys = join(root, 'sys');
  helper = join(root, 'blockmirror-nbd');
  await mkdir(join(dev, 'mapper'), { recursive: true });
  await mkdir(join(sys, 'module'), { recursive: true });
  await writeFile(helper, '');
});

afterEach(() => rm(root, { recursive: true, force: true }));

/** A node with everything: the control node, nbd loaded, the helper. */
async function fullNode(): Promise<void> {
  await mkdir(join(sys, 'class', 'misc', 'device-mapper'), { recursive: true });
  await writeFile(join(dev, 'mapper', 'control'), '');
  await mkdir(join(sys, 'module', 'nbd'));
}

const dm = (targets = TARGETS) => ({ version: () => Promise.resolve(VERSION), targets: () => Promise.resolve(targets) });

describe('probeSpliceCapability', () => {
  it('a node with device-mapper, the multipath and era targets, nbd and the helper can splice', async () => {
    await fullNode();
    const cap = await probeSpliceCapability({ dm: dm(), nbdHelper: helper, devDir: dev, sysDir: sys });
    expect(cap).toMatchObject({ capable: true, reason: '' });
    expect(cap.checks.map((c) => [c.name, c.ok])).toEqual([
      ['device-mapper', true],
      ['dm-multipath', true],
      ['dm-era', true],
      ['nbd', true],
      ['nbd-helper', true],
    ]);
    expect(cap.checks[0]!.detail).toBe('device-mapper driver 4.47.0');
  });

  it('a node without device-mapper (the host kernel here) says so first, and what else is missing', async () => {
    const calls: string[] = [];
    const cap = await probeSpliceCapability({
      dm: { version: () => (calls.push('version'), Promise.resolve(VERSION)), targets: () => (calls.push('targets'), Promise.resolve(TARGETS)) },
      nbdHelper: helper,
      devDir: dev,
      sysDir: sys,
    });
    expect(cap.capable).toBe(false);
    expect(cap.reason).toBe(`no device-mapper: the kernel has none (${sys}/class/misc/device-mapper missing; load dm_mod on the node); no NBD client: ${sys}/module/nbd missing (load nbd on the node)`);
    // A control node left in /dev (as on this host) does not count: the kernel has no driver.
    await writeFile(join(dev, 'mapper', 'control'), '');
    expect((await probeSpliceCapability({ dm: dm(), nbdHelper: helper, devDir: dev, sysDir: sys })).reason).toMatch(/^no device-mapper: the kernel has none/);
    // No driver: dmsetup is not even asked, and the targets are not listed as missing too.
    expect(calls).toEqual([]);
    expect(cap.checks.map((c) => c.name)).toEqual(['device-mapper', 'nbd', 'nbd-helper']);
  });

  it("a driver without its control node in the sidecar's /dev is no device-mapper", async () => {
    await mkdir(join(sys, 'class', 'misc', 'device-mapper'), { recursive: true });
    await mkdir(join(sys, 'module', 'nbd'));
    expect(await probeSpliceCapability({ dm: dm(), nbdHelper: helper, devDir: dev, sysDir: sys })).toMatchObject({
      capable: false,
      reason: `no device-mapper: ${dev}/mapper/control missing (the node's /dev not mounted?)`,
    });
  });

  it('a control node the kernel does not answer on is no device-mapper', async () => {
    await fullNode();
    const cap = await probeSpliceCapability({
      dm: { version: () => Promise.reject(new Error('dmsetup version failed (exit 1): /dev/mapper/control: open failed: No such device\nFailure to communicate with kernel device-mapper driver.')), targets: () => Promise.resolve('') },
      nbdHelper: helper,
      devDir: dev,
      sysDir: sys,
    });
    expect(cap).toMatchObject({ capable: false, reason: 'no device-mapper: dmsetup cannot reach the kernel (dmsetup version failed (exit 1): /dev/mapper/control: open failed: No such device)' });
  });

  it('a missing target names the module to load', async () => {
    await fullNode();
    const cap = await probeSpliceCapability({ dm: dm('linear v1.4.0\nmultipath v1.14.0\n'), nbdHelper: helper, devDir: dev, sysDir: sys });
    expect(cap).toMatchObject({ capable: false, reason: 'no dm-era target: not in dmsetup targets (load dm_era on the node)' });
  });

  it('a sidecar without the NBD helper cannot splice, whatever the kernel has', async () => {
    await fullNode();
    expect(await probeSpliceCapability({ dm: dm(), devDir: dev, sysDir: sys })).toMatchObject({ capable: false, reason: 'node splice off: the sidecar was started without --nbd-helper' });
    expect(await probeSpliceCapability({ dm: dm(), nbdHelper: join(root, 'nope'), devDir: dev, sysDir: sys })).toMatchObject({
      capable: false,
      reason: `node splice off: the NBD helper ${join(root, 'nope')} is missing`,
    });
  });
});
