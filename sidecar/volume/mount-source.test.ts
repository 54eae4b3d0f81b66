import { describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mountSourceDevice, resolveVolumePath } from './mount-source.js';

const mountinfo = [
  '22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p1 rw',
  '98 22 259:7 / /var/lib/kubelet/plugins/kubernetes.io/csi/ebs.csi.aws.com/abc/globalmount rw,relatime shared:50 - ext4 /dev/nvme1n1 rw',
  '99 22 0:45 / /var/lib/kubelet/pods/x/volumes/kubernetes.io~empty-dir/tmp rw - tmpfs tmpfs rw',
  '100 22 8:16 / /mnt/with\\040space rw - xfs /dev/sdb rw',
  '101 22 8:32 / /mnt/twice rw - xfs /dev/sdc rw',
  '102 101 8:48 / /mnt/twice rw - xfs /dev/sdd rw',
].join('\n');

describe('mountSourceDevice', () => {
  it('finds the device of a staged CSI mount, also with escapes and over-mounts', () => {
    expect(mountSourceDevice('/var/lib/kubelet/plugins/kubernetes.io/csi/ebs.csi.aws.com/abc/globalmount/', mountinfo)).toBe('/dev/block/259:7');
    expect(mountSourceDevice('/mnt/with space', mountinfo)).toBe('/dev/block/8:16');
    expect(mountSourceDevice('/mnt/twice', mountinfo)).toBe('/dev/block/8:48');
  });

  it('refuses a directory that is not a mount, or a virtual filesystem', () => {
    expect(() => mountSourceDevice('/srv/nothing', mountinfo)).toThrow('not a mount point');
    expect(() => mountSourceDevice('/var/lib/kubelet/pods/x/volumes/kubernetes.io~empty-dir/tmp', mountinfo)).toThrow('virtual filesystem');
  });

  it('leaves files alone and resolves directories through mountinfo', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bm-mount-'));
    try {
      expect(await resolveVolumePath(join(dir, 'volume.img'))).toBe(join(dir, 'volume.img'));
      await expect(resolveVolumePath(dir)).rejects.toThrow('not a mount point');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
