import { readFile, stat } from 'node:fs/promises';
import { InvalidArgumentError } from '../errors.js';

/** Linux dev_t as Node reports it (st_rdev): the glibc encoding of major and minor. */
export function splitDevT(rdev: number): { major: number; minor: number } {
  const dev = BigInt(rdev);
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  return { major, minor };
}

/**
 * The kernel's own node (/dev/loop3, /dev/nvme0n1) for a block device reached through
 * any path, such as a device node bind-mounted onto a file: device-mapper tables and
 * the splice records name the device, not a path a later unmount would invalidate.
 * Falls back to `path` itself when sysfs does not name the device (it still opens the
 * same device).
 */
export async function resolveBlockDevice(path: string, opts: { sysfs?: string; dev?: string } = {}): Promise<string> {
  const st = await stat(path);
  if (!st.isBlockDevice()) throw new InvalidArgumentError(`${path} is not a block device`);
  const { major, minor } = splitDevT(st.rdev);
  let name: string | undefined;
  try {
    const uevent = await readFile(`${opts.sysfs ?? '/sys'}/dev/block/${major}:${minor}/uevent`, 'utf8');
    name = /^DEVNAME=(.+)$/m.exec(uevent)?.[1];
  } catch {
    name = undefined;
  }
  if (name === undefined) return path;
  const candidate = `${opts.dev ?? '/dev'}/${name}`;
  // Only when that node is the same device: a container's /dev may differ from the host's.
  const same = await stat(candidate).then(
    (c) => c.isBlockDevice() && c.rdev === st.rdev,
    () => false,
  );
  return same ? candidate : path;
}
