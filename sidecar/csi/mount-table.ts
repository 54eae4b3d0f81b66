import { readFile, realpath } from 'node:fs/promises';
import { resolve } from 'node:path';

export interface MountEntry {
  /** major:minor of the mounted filesystem's device (for a bind mount: of the source's filesystem). */
  majorMinor: string;
  /** The path inside the source filesystem that is mounted (a bind mount of a subtree or file). */
  root: string;
  mountPoint: string;
  fsType: string;
  source: string;
}

/** mountinfo escapes space, tab, newline and backslash as three octal digits. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses /proc/<pid>/mountinfo (proc(5)); lines it cannot read are skipped. */
export function parseMountInfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    // Optional fields end with a lone "-"; fstype and source follow it.
    const dash = f.indexOf('-', 6);
    if (f.length < 10 || dash < 0 || dash + 2 >= f.length) continue;
    out.push({ majorMinor: f[2]!, root: unescape(f[3]!), mountPoint: unescape(f[4]!), fsType: f[dash + 1]!, source: unescape(f[dash + 2]!) });
  }
  return out;
}

/**
 * The mounts stacked on `path`, oldest first (empty when it is not a mount point).
 * Compared through realpath too, since the kernel records the resolved path.
 */
export async function mountsAt(path: string, mountInfo = '/proc/self/mountinfo'): Promise<MountEntry[]> {
  const want = new Set([resolve(path)]);
  try {
    want.add(await realpath(path));
  } catch {
    // a path that does not exist is not a mount point; mountinfo decides below
  }
  return parseMountInfo(await readFile(mountInfo, 'utf8')).filter((m) => want.has(m.mountPoint));
}
