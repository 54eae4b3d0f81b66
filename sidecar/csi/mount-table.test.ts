import { describe, expect, it } from '@jest/globals';
import { parseMountInfo } from './mount-table.js';

describe('parseMountInfo', () => {
  it('reads fstype and source after the optional fields, and unescapes paths', () => {
    const text = [
      '36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue',
      '40 36 7:3 / /var/lib/kubelet/plugins/x/staging\\040dir rw,relatime shared:5 master:2 - ext4 /dev/loop3 rw',
      '41 36 0:5 /loop3 /tmp/target rw,nosuid - devtmpfs udev rw,size=10k',
      'garbage line',
      '',
    ].join('\n');
    expect(parseMountInfo(text)).toEqual([
      { majorMinor: '98:0', root: '/mnt1', mountPoint: '/mnt2', fsType: 'ext3', source: '/dev/root' },
      { majorMinor: '7:3', root: '/', mountPoint: '/var/lib/kubelet/plugins/x/staging dir', fsType: 'ext4', source: '/dev/loop3' },
      { majorMinor: '0:5', root: '/loop3', mountPoint: '/tmp/target', fsType: 'devtmpfs', source: 'udev' },
    ]);
  });
});
