import { describe, expect, it } from '@jest/globals';
import { DeviceInUseError } from '../errors.js';
import { deviceRefusal, type SpliceHolders } from './device-refusal.js';

const splice: SpliceHolders = {
  pv: 'pv1',
  top: '/dev/mapper/blockmirror-pv1',
  devices: new Set(['blockmirror-pv1', 'blockmirror-pv1-tap', 'blockmirror-pv1-era']),
};
const era = { name: 'blockmirror-pv1-era', deviceMapper: true };

describe('deviceRefusal', () => {
  it('a device the splice maps may be held by the splice alone', () => {
    expect(deviceRefusal('/dev/vda', { mounts: [], holders: [era] }, { splice })).toBeNull();
    // Attached: the tap runs over the NBD device, nothing stacks on the volume itself.
    expect(deviceRefusal('/dev/vda', { mounts: [], holders: [] }, { splice })).toBeNull();
  });

  it('a spliced device also held by something else, or mounted directly, is refused naming it', () => {
    const held = deviceRefusal('/dev/vda', { mounts: [], holders: [era, { name: 'vg-data', deviceMapper: true }, { name: 'md0', deviceMapper: false }] }, { splice });
    expect(held).toBeInstanceOf(DeviceInUseError);
    expect(held?.code).toBe('DEVICE_IN_USE');
    expect(held?.holders).toEqual(['vg-data', 'md0']);
    expect(held?.message).toBe(
      "device /dev/vda is staged through blockmirror's splice as /dev/mapper/blockmirror-pv1 (volume pv1) but also held by device-mapper device vg-data, md0: writes there would not pass blockmirror's tap; use /dev/mapper/blockmirror-pv1 instead",
    );
    // Another volume's splice devices are foreign too.
    expect(deviceRefusal('/dev/vda', { mounts: [], holders: [{ name: 'blockmirror-pv2-era', deviceMapper: true }] }, { splice })?.holders).toEqual(['blockmirror-pv2-era']);
    expect(deviceRefusal('/dev/vda', { mounts: ['/mnt/x'], holders: [] }, { splice })?.message).toContain('but also mounted directly at /mnt/x');
  });

  it('an unspliced device that could not be opened exclusively: the mount, else the holders, else another opener', () => {
    const mounted = deviceRefusal('/dev/loop3', { mounts: ['/mnt/x'], holders: [] }, { splice: null });
    expect(mounted?.message).toBe(
      "device /dev/loop3 is mounted at /mnt/x: writes there would not pass blockmirror's tap; stage the volume through the splice (StorageClass parameter blockmirror.io/replicate) or unmount it",
    );
    expect(mounted?.mounts).toEqual(['/mnt/x']);
    expect(deviceRefusal('/dev/loop3', { mounts: [], holders: [{ name: 'md0', deviceMapper: false }] }, { splice: null })?.message).toContain('is held by md0: writes there would not pass');
    expect(deviceRefusal('/dev/loop3', { mounts: [], holders: [] }, { splice: null })?.message).toContain('is open exclusively by another program (or mounted in another mount namespace)');
  });

  it('tells a secondary what a secondary needs', () => {
    const msg = deviceRefusal('/dev/loop4', { mounts: ['/data'], holders: [] }, { splice: null, role: 'secondary' })?.message;
    expect(msg).toBe(
      'device /dev/loop4 is mounted at /data: a secondary volume is written only by its pair (other writes would be overwritten, and readers would see half-applied data); unmount it first',
    );
  });
});
