import { lstat, mkdir, open, rmdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import { mountsAt } from './mount-table.js';
import { ToolError, runTool } from '../host/run-tool.js';

/** Filesystems the node side formats itself (an unknown fs_type is refused, not guessed). */
const MKFS_TYPES = new Set(['ext4', 'ext3', 'ext2', 'xfs']);

/**
 * The mount(8), umount(8), blkid(8) and mkfs(8) calls the CSI node services make, each
 * safe to repeat: CSI calls are retried, so every step checks before it acts.
 */
export class HostMounts {
  async isMountPoint(path: string): Promise<boolean> {
    return (await mountsAt(path)).length > 0;
  }

  /** Bind-mounts `source` (a directory, or a device node onto a file) on `target`, once. */
  async bind(source: string, target: string, opts: { readonly?: boolean } = {}): Promise<void> {
    if (await this.isMountPoint(target)) return;
    await runTool('mount', ['--bind', source, target]);
    // A bind mount takes the source's flags; read-only needs a remount of the bind itself.
    if (opts.readonly === true) await runTool('mount', ['-o', 'remount,bind,ro', target]);
  }

  /** Mounts the filesystem on `device` at `target`, once. */
  async mount(device: string, target: string, fsType: string, flags: readonly string[] = []): Promise<void> {
    if (await this.isMountPoint(target)) return;
    await runTool('mount', ['-t', fsType, ...(flags.length > 0 ? ['-o', flags.join(',')] : []), device, target]);
  }

  /** Unmounts everything stacked on `target` (nothing when it is not a mount point). */
  async unmount(target: string): Promise<void> {
    // A bound limit: a mount that will not go away must fail the call, not spin.
    for (let i = 0; i < 16 && (await this.isMountPoint(target)); i++) await runTool('umount', [target]);
    if (await this.isMountPoint(target)) throw new ToolError('umount', [target], undefined, 'still mounted');
  }

  /** The filesystem type on `device`, or '' when blkid finds none. */
  async filesystemOf(device: string): Promise<string> {
    try {
      // -p probes the device itself, not blkid's cache (which may predate a mkfs).
      return (await runTool('blkid', ['-p', '-s', 'TYPE', '-o', 'value', device])).trim();
    } catch (err) {
      // Exit 2: nothing identified on the device.
      if (err instanceof ToolError && err.exitCode === 2) return '';
      throw err;
    }
  }

  /**
   * Puts a `fsType` filesystem on `device` unless it already has one: never formats over
   * existing data. Returns the type found or made.
   */
  async ensureFilesystem(device: string, fsType: string): Promise<string> {
    const found = await this.filesystemOf(device);
    if (found !== '') return found;
    if (!MKFS_TYPES.has(fsType)) throw new InvalidArgumentError(`cannot format ${fsType}: supported are ${[...MKFS_TYPES].join(', ')}`);
    await runTool(`mkfs.${fsType}`, ['-q', device], { timeoutMs: 600_000 });
    return fsType;
  }

  /** Creates the directory a filesystem is published at (its parent must exist, per CSI). */
  async ensureDirectory(path: string): Promise<void> {
    await mkdir(path, { recursive: false }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  }

  /** Creates the empty file a block device node is bind-mounted onto. */
  async ensureFile(path: string): Promise<void> {
    await mkdir(dirname(path), { recursive: true });
    await (await open(path, 'a')).close();
  }

  /** Removes what ensureDirectory/ensureFile made; missing is fine. Never recursive: a leftover mount must not be emptied. */
  async removeTarget(path: string): Promise<void> {
    const st = await lstat(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (st === undefined) return;
    if (st.isDirectory()) await rmdir(path);
    else await unlink(path);
  }
}
