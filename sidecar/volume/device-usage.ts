import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseMountInfo } from '../csi/mount-table.js';

export interface DeviceUsageOptions {
  /** Where sysfs is mounted; unit tests point it at a fake tree. */
  sysRoot?: string;
  /** This process's mount table. */
  mountinfoPath?: string;
}

export interface DeviceHolder {
  /** A device-mapper device's name (dm/name), else the kernel's name of the holder (md0). */
  name: string;
  deviceMapper: boolean;
}

/** Who uses a block device, as far as this host can tell. */
export interface DeviceUsage {
  /** Mount points of the device or of one of its partitions, in this mount namespace. */
  mounts: string[];
  /** The devices stacked on it or on one of its partitions (sysfs holders/). */
  holders: DeviceHolder[];
}

/** Linux dev_t encoding (new_decode_dev): major = bits 8-19, minor = bits 0-7 and 20-31. */
export function deviceNumber(rdev: number): { major: number; minor: number } {
  return { major: (rdev >> 8) & 0xfff, minor: (rdev & 0xff) | ((rdev >> 12) & 0xfff00) };
}

/**
 * Mounts and holders of the block device `rdev` and of its partitions: what a refusal to
 * replicate it names. Unreadable parts of sysfs or mountinfo count as nothing found.
 */
export async function deviceUsage(rdev: number, opts: DeviceUsageOptions = {}): Promise<DeviceUsage> {
  const { major, minor } = deviceNumber(rdev);
  const base = join(opts.sysRoot ?? '/sys', 'dev', 'block', `${major}:${minor}`);
  const devices = [{ dir: base, majorMinor: `${major}:${minor}` }];
  for (const entry of await readdir(base).catch(() => [] as string[])) {
    // A partition is a subdirectory with a `partition` file; its `dev` says MAJOR:MINOR.
    const dir = join(base, entry);
    const isPartition = await readFile(join(dir, 'partition'), 'utf8').then(
      () => true,
      () => false,
    );
    if (!isPartition) continue;
    const majorMinor = (await readFile(join(dir, 'dev'), 'utf8').catch(() => '')).trim();
    if (majorMinor !== '') devices.push({ dir, majorMinor });
  }
  const holders: DeviceHolder[] = [];
  for (const d of devices) {
    for (const h of (await readdir(join(d.dir, 'holders')).catch(() => [] as string[])).sort()) {
      const dmName = (await readFile(join(d.dir, 'holders', h, 'dm', 'name'), 'utf8').catch(() => '')).trim();
      holders.push(dmName !== '' ? { name: dmName, deviceMapper: true } : { name: h, deviceMapper: false });
    }
  }
  const wanted = new Set(devices.map((d) => d.majorMinor));
  const mountinfo = await readFile(opts.mountinfoPath ?? '/proc/self/mountinfo', 'utf8').catch(() => '');
  const mounts = parseMountInfo(mountinfo)
    .filter((m) => wanted.has(m.majorMinor))
    .map((m) => m.mountPoint);
  return { mounts: [...new Set(mounts)], holders };
}
