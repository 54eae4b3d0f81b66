import { mkdir, readFile, realpath, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { splitDevT } from '../csi/block-device.js';
import { InvalidArgumentError, PathNotAllowedError } from '../errors.js';

/**
 * Names what holds the block device `rdev` on this node's own records (the splice staged
 * it, a fence's CSI proxy holds it for a secondary), or null when nothing does.
 */
export type HeldDevice = (rdev: number) => Promise<string | null>;

export interface PathPolicyOptions {
  /**
   * Where pair volumes may land once resolved: each entry allows itself and everything
   * below it, so a directory (the state dir, the kubelet's volume directories) or one file
   * or device (/dev/loop3); an entry ending in `*` allows the names in its directory that
   * start with what precedes it (/dev/loop* for a lab's loop devices, never /dev/loop3/x).
   * Entries are resolved at each check: one made later counts.
   */
  volumePrefixes: readonly string[];
  /** The directory NBD sockets are made in (at or below it); made 0700 when first used. */
  runDir: string;
  /** Devices the node's own records hold, allowed wherever they are. */
  heldDevice?: HeldDevice;
  /** Where loop devices' backing files are read (default /sys). */
  sysfs?: string;
}

/** The block major of loop devices (Documentation/admin-guide/devices.txt). */
const LOOP_MAJOR = 7;

/** A bare socket name (what the operator sends): no path, no dot-only names. */
const SOCKET_NAME = /^(?!\.{1,2}$)[A-Za-z0-9._-]{1,100}$/;

/**
 * Confines the paths control calls name. The sidecar is privileged and sees the host's
 * /dev: without this a caller could replicate /dev/nvme0n1 to a peer of its choosing, or
 * have another program's socket unlinked. Each path is judged by where it lands (realpath:
 * `..` and symlinks followed) and only stat()ed, never opened, before it is allowed.
 */
export class PathPolicy {
  readonly #o: PathPolicyOptions;

  constructor(opts: PathPolicyOptions) {
    this.#o = { ...opts, volumePrefixes: opts.volumePrefixes.map((p) => resolve(p)), runDir: resolve(opts.runDir) };
  }

  get volumePrefixes(): readonly string[] {
    return this.#o.volumePrefixes;
  }

  get runDir(): string {
    return this.#o.runDir;
  }

  /**
   * The real path to open for the volume `path`, if it is allowed: it lands under an
   * allowed prefix, is a block device the splice or a fence holds, or is a loop device
   * over a file under an allowed prefix (it reaches nothing that file does not: tests and
   * the lab put their volumes there, a user's losetup too). A path that does not
   * exist is an InvalidArgumentError under an allowed prefix (a typo), else refused like
   * any other: whether a file exists outside them is none of the caller's business.
   */
  async volume(path: string, what = 'volume'): Promise<string> {
    if (!isAbsolute(path)) throw new InvalidArgumentError(`${what} path ${JSON.stringify(path)} must be absolute`);
    let real: string;
    try {
      real = await realpath(path);
    } catch (err) {
      if (await this.#underPrefix(resolve(path))) throw new InvalidArgumentError(`cannot open ${what} ${path}: ${(err as Error).message}`, { cause: err });
      throw this.#volumeRefusal(path, '', what);
    }
    if (await this.#underPrefix(real)) return real;
    const st = await stat(real).catch(() => null);
    if (st !== null && st.isBlockDevice()) {
      if (this.#o.heldDevice !== undefined && (await this.#o.heldDevice(st.rdev)) !== null) return real;
      const backing = await this.#loopBackingFile(st.rdev);
      if (backing !== null && (await this.#underPrefix(backing))) return real;
    }
    throw this.#volumeRefusal(path, real, what);
  }

  /** The real path of the file behind loop device `rdev`, or null (not a loop device, or gone). */
  async #loopBackingFile(rdev: number): Promise<string | null> {
    const { major, minor } = splitDevT(rdev);
    if (major !== LOOP_MAJOR) return null;
    const file = await readFile(`${this.#o.sysfs ?? '/sys'}/dev/block/${major}:${minor}/loop/backing_file`, 'utf8').catch(() => null);
    // The kernel names it from its own root: a file this process cannot reach resolves to nothing.
    return file === null ? null : realpath(file.trimEnd()).catch(() => null);
  }

  /**
   * Where to make the NBD socket `path`: a bare name goes in the run directory; an absolute
   * path must be a plain file name in a directory that resolves to the run directory or
   * below it. Answers the path with its directory resolved.
   */
  async socket(path: string): Promise<string> {
    if (!isAbsolute(path)) {
      if (!SOCKET_NAME.test(path)) throw new InvalidArgumentError(`NBD socket ${JSON.stringify(path)} must be an absolute path or a bare file name (letters, digits, '.', '_', '-')`);
      return join(await this.#ensureRunDir(), path);
    }
    const name = basename(path);
    if (name === '' || name === '.' || name === '..' || name.includes('\0') || path.endsWith(`${sep}.`) || path.endsWith(`${sep}..`)) {
      throw new InvalidArgumentError(`NBD socket ${JSON.stringify(path)} must end in a file name`);
    }
    const runDir = await this.#ensureRunDir();
    let parent: string;
    try {
      parent = await realpath(dirname(path));
    } catch (err) {
      if (within(resolve(dirname(path)), runDir) || within(resolve(dirname(path)), this.#o.runDir)) throw new InvalidArgumentError(`NBD socket ${path}: ${(err as Error).message}`, { cause: err });
      throw this.#socketRefusal(path, '');
    }
    if (!within(parent, runDir)) throw this.#socketRefusal(path, join(parent, name));
    return join(parent, name);
  }

  async #ensureRunDir(): Promise<string> {
    // Only root may enter it: the kernel's NBD client under the splice is an export's one user.
    await mkdir(this.#o.runDir, { recursive: true, mode: 0o700 });
    return realpath(this.#o.runDir);
  }

  async #underPrefix(real: string): Promise<boolean> {
    for (const p of this.#o.volumePrefixes) {
      // A prefix that is itself a symlink (a kubelet root dir moved elsewhere) counts where it lands.
      if (p.endsWith('*')) {
        const stem = join(await realpath(dirname(p)).catch(() => dirname(p)), basename(p).slice(0, -1));
        if (real.length > stem.length && real.startsWith(stem) && !real.slice(stem.length).includes(sep)) return true;
      } else if (within(real, await realpath(p).catch(() => p))) {
        return true;
      }
    }
    return false;
  }

  #volumeRefusal(path: string, real: string, what: string): PathNotAllowedError {
    const landed = real === '' ? 'does not exist and is' : real === path ? 'is' : `resolves to ${real},`;
    return new PathNotAllowedError(
      `${what} ${path} is not allowed: it ${landed} outside this sidecar's allowed volume paths (${this.#o.volumePrefixes.join(', ')}) and is no device that the node splice staged or a fence holds; to allow it, start the sidecar with --allow-volume-prefix (the chart: sidecar.allowedVolumePaths)`,
      { path, resolved: real },
    );
  }

  #socketRefusal(path: string, real: string): PathNotAllowedError {
    const landed = real === '' ? 'its directory does not exist and is' : real === path ? 'it is' : `it resolves to ${real},`;
    return new PathNotAllowedError(`NBD socket ${path} is not allowed: ${landed} outside this sidecar's run directory ${this.#o.runDir}; give a bare name (placed there) or a path in it (--run-dir)`, { path, resolved: real });
  }
}

/** `path` is `dir` or below it (both absolute and normalized). */
function within(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep);
}
