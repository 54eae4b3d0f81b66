import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPairVolume } from './open-pair-volume.js';

// Block devices are covered by test/device-exclusive.test.ts (real loop devices).
let dir = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bm-open-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('openPairVolume', () => {
  it('opens a regular file as it is', async () => {
    const file = join(dir, 'v.img');
    await writeFile(file, '');
    await truncate(file, 1 << 20);
    const v = await openPairVolume(file, { spliceHolders: () => Promise.reject(new Error('not asked for a file')) });
    expect([v.size, v.isBlockDevice]).toEqual([1 << 20, false]);
    await v.close();
  });

  it('refuses a directory, naming the device mounted there when it is a mount point', async () => {
    await mkdir(join(dir, 'globalmount'));
    await expect(openPairVolume(join(dir, 'globalmount'))).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/is a directory: writes through a filesystem there would not pass blockmirror's tap; give the pair the block device/),
    });
    await writeFile(join(dir, 'mountinfo'), `98 22 259:7 / ${join(dir, 'globalmount')} rw,relatime shared:50 - ext4 /dev/nvme1n1 rw\n`);
    await expect(openPairVolume(join(dir, 'globalmount'), { mountinfoPath: join(dir, 'mountinfo') })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('is the mount point of /dev/nvme1n1: writes through a filesystem there'),
    });
  });

  it('says which path is missing', async () => {
    await expect(openPairVolume(join(dir, 'gone'))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining(`cannot open volume ${join(dir, 'gone')}`) });
  });
});
