import { runTool, ToolError } from '../host/run-tool.js';

/**
 * How a run is made to read as zeroes without writing them:
 * - `punch`: may deallocate (a hole in a file; on a block device a zero-out that may
 *   unmap, which the kernel does only where the device guarantees zeroes after it);
 * - `zero-range`: stays allocated (an unwritten extent; a zero-out without unmap).
 */
export type ZeroMode = 'punch' | 'zero-range';

/**
 * Runs util-linux `fallocate` with `args` (the options; the file is the last argument)
 * on the volume open as `fd` in this process; rejects (a ToolError) when it fails.
 */
export type FallocateRunner = (args: readonly string[], fd: number) => Promise<unknown>;

/**
 * The tool gets the volume's descriptor and opens /proc/self/fd/3: the inode the pair
 * opened where the path policy found it, never the path again (it may have been swapped
 * for another file since).
 */
export const runFallocate: FallocateRunner = (args, fd) => runTool('fallocate', [...args, '/proc/self/fd/3'], { fds: [fd], timeoutMs: 60_000 });

export interface ZeroerLogger {
  warn(message: string, meta?: Record<string, unknown>): void;
}

export interface RangeZeroerOptions {
  /** The volume's descriptor, open for writing. */
  fd: number;
  isBlockDevice: boolean;
  /** The filesystem's block size (files) or the device's block size; rounded up to 4 KiB. */
  blockSize: number;
  /** Aligned runs shorter than this are left to the caller: spawning the tool costs ms. Default 1 MiB. */
  minBytes?: number;
  /** Default: runFallocate (util-linux is in the sidecar image, and on every host the tests run on). */
  run?: FallocateRunner;
  /**
   * Writes the volume's dirty pages back. A block device this process holds with O_EXCL
   * refuses (EBUSY) to zero a range of its page cache that is dirty: the kernel can only
   * invalidate, not truncate, pages of a device another opener holds exclusively.
   */
  writeBack: () => Promise<void>;
  logger?: ZeroerLogger;
}

export const DEFAULT_MIN_ZERO_BYTES = 1024 * 1024;
const MIN_ALIGN = 4096;
const MAX_ALIGN = 1024 * 1024;

/**
 * Zeroes large runs of a volume with `fallocate --punch-hole` or `--zero-range` (Node has
 * no fallocate), so a replicated zero run neither allocates a thin or sparse volume nor
 * costs the time of writing zeroes. Only the block-aligned middle of a run is handed to
 * the tool; the caller writes the unaligned head and tail, and whole runs the volume
 * cannot zero this way (remembered per mode after the first refusal, logged once).
 */
export class RangeZeroer {
  readonly #path: string;
  readonly #opts: RangeZeroerOptions;
  readonly #align: number;
  readonly #minBytes: number;
  readonly #run: FallocateRunner;
  readonly #unsupported = new Set<ZeroMode>();

  constructor(path: string, opts: RangeZeroerOptions) {
    this.#path = path;
    this.#opts = opts;
    const bs = opts.blockSize;
    // Anything not a sane power of two: 4 KiB, a multiple of every logical block size.
    this.#align = Number.isInteger(Math.log2(bs)) && bs >= MIN_ALIGN && bs <= MAX_ALIGN ? bs : MIN_ALIGN;
    this.#minBytes = Math.max(opts.minBytes ?? DEFAULT_MIN_ZERO_BYTES, this.#align);
    this.#run = opts.run ?? runFallocate;
  }

  /** The aligned middle of the run the tool would zero, or null: too short, or the volume cannot. */
  middle(offset: number, length: number, mode: ZeroMode): { offset: number; length: number } | null {
    if (this.#unsupported.has(mode)) return null;
    const start = Math.ceil(offset / this.#align) * this.#align;
    const end = Math.floor((offset + length) / this.#align) * this.#align;
    return end - start >= this.#minBytes ? { offset: start, length: end - start } : null;
  }

  /**
   * Zeroes a run `middle()` gave. False when the volume cannot or the tool failed: the
   * run is then unchanged or partly zeroed, and the caller writes zeroes over it.
   */
  async zero(offset: number, length: number, mode: ZeroMode): Promise<boolean> {
    if (this.#unsupported.has(mode)) return false;
    const args = [mode === 'punch' ? '--punch-hole' : '--zero-range', '--keep-size', '--offset', String(offset), '--length', String(length)];
    let err = await this.#try(args);
    if (err !== null && this.#opts.isBlockDevice && /resource busy/i.test(err.stderr)) {
      await this.#opts.writeBack();
      err = await this.#try(args);
    }
    if (err === null) return true;
    // Never started (no fallocate in this image) or refused by the filesystem or device.
    const missing = err.exitCode === undefined && typeof (err.cause as NodeJS.ErrnoException | undefined)?.code === 'string';
    if (missing || /not supported|unsupported|not implemented|inappropriate ioctl/i.test(err.stderr)) {
      this.#unsupported.add(mode);
      if (missing) this.#unsupported.add(mode === 'punch' ? 'zero-range' : 'punch');
      this.#opts.logger?.warn(`volume cannot ${mode === 'punch' ? 'punch holes' : 'zero ranges'}: zero runs are written as zeroes from now on`, { volume: this.#path, error: err.message });
      return false;
    }
    this.#opts.logger?.warn('zeroing a run with fallocate failed: writing zeroes instead', { volume: this.#path, offset, length, error: err.message });
    return false;
  }

  async #try(args: readonly string[]): Promise<ToolError | null> {
    try {
      await this.#run(args, this.#opts.fd);
      return null;
    } catch (err) {
      if (err instanceof ToolError) return err;
      return new ToolError('fallocate', args, undefined, '', err);
    }
  }
}
