import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deviceNumber, deviceUsage } from './device-usage.js';

// A fake sysfs tree, shaped like the kernel's: /sys/dev/block/MAJ:MIN/{holders/X/dm/name,
// <partition>/{partition,dev,holders}}.
let dir = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bm-usage-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function put(path: string, text: string): Promise<void> {
  await mkdir(join(dir, path, '..'), { recursive: true });
  await writeFile(join(dir, path), text);
}

/** dev_t as stat() reports it (new_encode_dev). */
function rdev(major: number, minor: number): number {
  return (minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12);
}

const line = (id: number, mm: string, mp: string): string => `${id} 1 ${mm} / ${mp} rw,relatime shared:1 - ext4 /dev/x rw`;

describe('deviceUsage', () => {
  it('decodes device numbers, also minors past 255', () => {
    expect(deviceNumber(rdev(7, 3))).toEqual({ major: 7, minor: 3 });
    expect(deviceNumber(rdev(259, 70000))).toEqual({ major: 259, minor: 70000 });
  });

  it('names device-mapper holders by their dm name and others by the kernel name, partitions included', async () => {
    await put('sys/dev/block/7:3/size', '2048\n');
    await put('sys/dev/block/7:3/holders/dm-0/dm/name', 'blockmirror-pv1-era\n');
    await put('sys/dev/block/7:3/holders/md0/size', '0\n');
    await put('sys/dev/block/7:3/loop3p1/partition', '1\n');
    await put('sys/dev/block/7:3/loop3p1/dev', '259:0\n');
    await put('sys/dev/block/7:3/loop3p1/holders/dm-4/dm/name', 'vg-data\n');
    // A subdirectory that is not a partition (queue/, mq/ ...) is not looked into.
    await put('sys/dev/block/7:3/queue/holders/dm-9/dm/name', 'not-a-holder\n');
    await put('mountinfo', [line(20, '254:0', '/'), line(30, '259:0', '/mnt/part\\040one'), line(31, '7:3', '/mnt/whole'), line(32, '7:3', '/mnt/whole')].join('\n'));
    expect(await deviceUsage(rdev(7, 3), { sysRoot: join(dir, 'sys'), mountinfoPath: join(dir, 'mountinfo') })).toEqual({
      mounts: ['/mnt/part one', '/mnt/whole'],
      holders: [
        { name: 'blockmirror-pv1-era', deviceMapper: true },
        { name: 'md0', deviceMapper: false },
        { name: 'vg-data', deviceMapper: true },
      ],
    });
  });

  it('finds nothing for an unused device, and treats what it cannot read as nothing', async () => {
    await mkdir(join(dir, 'sys/dev/block/8:16/holders'), { recursive: true });
    await put('mountinfo', line(20, '254:0', '/'));
    expect(await deviceUsage(rdev(8, 16), { sysRoot: join(dir, 'sys'), mountinfoPath: join(dir, 'mountinfo') })).toEqual({ mounts: [], holders: [] });
    expect(await deviceUsage(rdev(8, 32), { sysRoot: join(dir, 'nothing'), mountinfoPath: join(dir, 'nothing') })).toEqual({ mounts: [], holders: [] });
  });
});
