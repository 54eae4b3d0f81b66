import { readFile, stat } from 'node:fs/promises';
import { InvalidArgumentError } from '../errors.js';

/**
 * The block device behind a mount point, from /proc/self/mountinfo: the kubelet stages a
 * CSI filesystem volume as a mount (…/globalmount), and the sidecar replicates the
 * device under it. Returns `/dev/block/MAJOR:MINOR`.
 */
export function mountSourceDevice(mountPoint: string, mountinfo: string): string {
  const target = mountPoint.replace(/\/+$/, '');
  let found: string | undefined;
  for (const line of mountinfo.split('\n')) {
    // id parent major:minor root mount-point options ... - fstype source super-options
    const f = line.split(' ');
    if (f.length < 5) continue;
    // mountinfo escapes spaces and the like as octal (\040).
    const mp = f[4]!.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
    // The last entry wins: a later mount over the same point hides earlier ones.
    if (mp === target) found = f[2];
  }
  if (found === undefined) throw new InvalidArgumentError(`volume ${mountPoint} is a directory but not a mount point`);
  if (/^0:/.test(found)) throw new InvalidArgumentError(`volume ${mountPoint} is mounted from a virtual filesystem (device ${found}), not a block device`);
  return `/dev/block/${found}`;
}

/** `path` itself, or the device mounted there when it is a directory. */
export async function resolveVolumePath(path: string, mountinfoPath = '/proc/self/mountinfo'): Promise<string> {
  const st = await stat(path).catch(() => undefined);
  if (st === undefined || !st.isDirectory()) return path;
  return mountSourceDevice(path, await readFile(mountinfoPath, 'utf8'));
}
