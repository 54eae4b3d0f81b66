import { close, constants, fdatasync, fstat, open, read, readFile, writev, writevSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { ClosedError, InvalidArgumentError, OutOfRangeError, VolumeIoError } from '../errors.js';
import { deviceNumber } from './device-usage.js';
import { RangeZeroer, type FallocateRunner, type ZeroerLogger } from './range-zeroer.js';
import { SyncBatcher } from './sync-batcher.js';

const openAsync = promisify(open);
const fstatAsync = promisify(fstat);
const closeAsync = promisify(close);

// Writes up to this size are issued inline (see writev). 1 MiB covers the usual
// largest NBD write; measured on 2 cores, inline 1 MiB writes ran ~13 % faster than
// through the pool (bench/RESULTS.md), at the cost of ~0.3 ms of event loop per write.
const INLINE_WRITE_MAX = 1024 * 1024;
// An inline write slower than this means the kernel is throttling or the device is slow...
const INLINE_WRITE_SLOW_MS = 10;
// ...so writes go through the thread pool for this long.
const INLINE_BACKOFF_MS = 1000;

export interface VolumeOptions {
  readOnly?: boolean;
  /**
   * Block devices: open with O_EXCL (no O_CREAT), which fails with EBUSY while the device
   * is mounted or claimed (device-mapper, md, another exclusive opener), and while it is
   * held, makes a mount or a device-mapper table over it fail.
   */
  exclusive?: boolean;
  /** Runs `fallocate` for long zero runs (default: util-linux's; see RangeZeroer). */
  fallocate?: FallocateRunner;
  /** Zero runs shorter than this are written as zeroes (default 1 MiB). */
  minFallocateBytes?: number;
  /** Told once when the volume turns out unable to punch holes or zero ranges. */
  logger?: ZeroerLogger;
  /** fdatasync of the volume's descriptor (default: node:fs's); tests inject its failures. */
  fdatasync?: (fd: number) => Promise<void>;
}

export interface WriteZeroesOptions {
  /**
   * The run may be deallocated (default): a hole, or a device zero-out that may unmap.
   * False (NBD_CMD_FLAG_NO_HOLE) keeps it allocated.
   */
  mayUnmap?: boolean;
}

/**
 * A volume: a regular file or a block device, addressed with positional I/O.
 * Every access is bounds-checked; `flush()` makes all completed writes durable.
 */

const ZERO_CHUNK = Buffer.alloc(1 << 20);
export class Volume {
  readonly path: string;
  readonly size: number;
  readonly readOnly: boolean;
  readonly isBlockDevice: boolean;
  #fd: number;
  #closed = false;
  #inlineBackoffUntil = 0;
  #syncer: SyncBatcher;
  /** The first failed fdatasync: every later flush fails with it (see flush). */
  #syncError: VolumeIoError | null = null;
  readonly #zeroer: RangeZeroer;

  private constructor(path: string, fd: number, size: number, readOnly: boolean, geometry: { isBlockDevice: boolean; blockSize: number }, options: VolumeOptions) {
    this.path = path;
    this.#fd = fd;
    this.size = size;
    this.readOnly = readOnly;
    this.isBlockDevice = geometry.isBlockDevice;
    const sync = options.fdatasync ?? fdatasyncP;
    this.#syncer = new SyncBatcher(() => sync(fd));
    this.#zeroer = new RangeZeroer(path, {
      fd,
      isBlockDevice: geometry.isBlockDevice,
      blockSize: geometry.blockSize,
      writeBack: () => this.flush(),
      ...(options.fallocate ? { run: options.fallocate } : {}),
      ...(options.minFallocateBytes !== undefined ? { minBytes: options.minFallocateBytes } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
    });
  }

  /** `path`: a regular file or a block device. */
  static async open(path: string, options: VolumeOptions = {}): Promise<Volume> {
    const readOnly = options.readOnly ?? false;
    let fd: number;
    try {
      fd = await openAsync(path, (readOnly ? constants.O_RDONLY : constants.O_RDWR) | (options.exclusive ? constants.O_EXCL : 0));
    } catch (err) {
      throw new InvalidArgumentError(`cannot open volume ${path}: ${(err as Error).message}`, { cause: err });
    }
    try {
      const st = await fstatAsync(fd);
      let size: number;
      if (st.isFile()) {
        size = st.size;
      } else if (st.isBlockDevice()) {
        size = await blockDeviceSize(st.rdev);
      } else {
        throw new InvalidArgumentError(`volume ${path} is neither a regular file nor a block device`);
      }
      if (size <= 0) throw new InvalidArgumentError(`volume ${path} is empty`);
      return new Volume(path, fd, size, readOnly, { isBlockDevice: st.isBlockDevice(), blockSize: st.blksize }, options);
    } catch (err) {
      await closeAsync(fd).catch(() => undefined);
      throw err;
    }
  }

  /** Reads `length` bytes at `offset` into a new buffer. */
  read(offset: number, length: number): Promise<Buffer> {
    this.#check(offset, length, false);
    const buf = Buffer.allocUnsafe(length);
    return new Promise((resolve, reject) => {
      const step = (done: number): void => {
        if (done === length) return resolve(buf);
        read(this.#fd, buf, done, length - done, offset + done, (err, n) => {
          if (err) return reject(ioError('read', this.path, err));
          // A short read inside the checked range means the file shrank under us.
          if (n === 0) return reject(new VolumeIoError(`short read from ${this.path} at ${offset + done}`, { errno: 'EIO' }));
          step(done + n);
        });
      };
      step(0);
    });
  }

  /**
   * Makes `length` bytes at `offset` read as zeroes (not yet durable). The aligned middle
   * of a long run is punched out or zeroed by the filesystem or device (fallocate), so a
   * thin or sparse volume is not allocated by zeroes and no zeroes are written; short
   * runs, the unaligned ends and volumes that cannot are written as zeroes.
   *
   * Durability: a punched hole or zeroed range is a change to the file's block map, which
   * reading the data back depends on, so fdatasync (flush) makes it durable like a write
   * (ext4 and xfs commit such metadata on fdatasync, per inode: the tool's own open of
   * the file counts); on a block device the zero-out is issued to the device and flush's
   * cache flush covers it.
   */
  async writeZeroes(offset: number, length: number, opts: WriteZeroesOptions = {}): Promise<void> {
    this.#check(offset, length, true);
    const mode = opts.mayUnmap === false ? 'zero-range' : 'punch';
    const mid = this.#zeroer.middle(offset, length, mode);
    if (mid !== null && (await this.#zeroer.zero(mid.offset, mid.length, mode))) {
      await this.#writeZeroChunks(offset, mid.offset - offset);
      await this.#writeZeroChunks(mid.offset + mid.length, offset + length - (mid.offset + mid.length));
      return;
    }
    await this.#writeZeroChunks(offset, length);
  }

  /**
   * The part of a run writeZeroes would zero without writing zeroes (aligned, long
   * enough, the volume able to), or null. With unmap allowed (the default): what a
   * discard can deallocate.
   */
  fastZeroRange(offset: number, length: number, opts: WriteZeroesOptions = {}): { offset: number; length: number } | null {
    return this.#zeroer.middle(offset, length, opts.mayUnmap === false ? 'zero-range' : 'punch');
  }

  /**
   * Writes zeroes a MiB at a time, leaving alone chunks that already read as zeroes: a
   * sparse volume whose hole cannot be punched stays sparse at least where it is. Skipping
   * is safe for durability: a chunk reading zero is zero on disk or in dirty pages the
   * next fdatasync writes back.
   */
  async #writeZeroChunks(offset: number, length: number): Promise<void> {
    for (let at = offset; at < offset + length; at += ZERO_CHUNK.length) {
      const n = Math.min(ZERO_CHUNK.length, offset + length - at);
      const current = await this.read(at, n);
      if (current.equals(ZERO_CHUNK.subarray(0, n))) continue;
      await this.write(at, ZERO_CHUNK.subarray(0, n));
    }
  }

  /** Writes `data` at `offset`; resolves when the kernel has it (not yet durable). */
  write(offset: number, data: Buffer): Promise<void> {
    return this.writev(offset, [data], data.length);
  }

  /**
   * Writes the concatenation of `chunks` (`length` bytes in all) at `offset`.
   *
   * Writes up to 1 MiB run synchronously on the calling thread: a pwrite into the page
   * cache costs a few microseconds per 4 KiB, several times less than a round trip
   * through libuv's thread pool, which otherwise caps small-block IOPS; for large writes
   * the pool also let up to 16 threads spin on the file's inode lock, taking CPU from
   * the clients on a small node. If one ever takes long (dirty-page throttling, a slow
   * device), writes go through the pool for a while so the event loop, and every other
   * client on it, keeps moving.
   */
  writev(offset: number, chunks: Buffer[], length: number): Promise<void> {
    this.#check(offset, length, true);
    if (length <= INLINE_WRITE_MAX && performance.now() >= this.#inlineBackoffUntil) {
      const started = performance.now();
      try {
        writeAllSync(this.#fd, chunks, offset);
      } catch (err) {
        return Promise.reject(ioError('write', this.path, err as NodeJS.ErrnoException));
      }
      const took = performance.now() - started;
      if (took > INLINE_WRITE_SLOW_MS) this.#inlineBackoffUntil = started + took + INLINE_BACKOFF_MS;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const step = (bufs: Buffer[], at: number): void => {
        writev(this.#fd, bufs, at, (err, n) => {
          if (err) return reject(ioError('write', this.path, err));
          const rest = dropFront(bufs, n);
          if (rest.length === 0) return resolve();
          step(rest, at + n);
        });
      };
      step(chunks, offset);
    });
  }

  /**
   * Makes every write that completed before this call durable (fdatasync). Concurrent
   * callers share one fdatasync when it started after their call.
   */
  flush(): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError(`volume ${this.path} is closed`));
    // Sticky: Linux reports a writeback error to one fdatasync only, and the pages it lost
    // are clean by then, so the next one returns 0 over writes that never reached the
    // disk. A FLUSH (or a durable frame's acknowledgement) after that would claim them
    // durable; until the volume is opened again, none may.
    if (this.#syncError !== null) return Promise.reject(this.#syncError);
    return this.#syncer.sync().catch((err: unknown) => {
      const e = ioError('fdatasync', this.path, err as NodeJS.ErrnoException);
      this.#syncError ??= e;
      throw this.#syncError;
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await closeAsync(this.#fd);
  }

  #check(offset: number, length: number, forWrite: boolean): void {
    if (this.#closed) throw new ClosedError(`volume ${this.path} is closed`);
    if (forWrite && this.readOnly) throw new InvalidArgumentError(`volume ${this.path} is read-only`);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw new OutOfRangeError(`invalid range offset=${offset} length=${length}`);
    }
    if (offset + length > this.size) {
      throw new OutOfRangeError(`range ${offset}+${length} is past the end of ${this.path} (${this.size} bytes)`);
    }
  }
}

function fdatasyncP(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

function ioError(op: string, path: string, err: NodeJS.ErrnoException): VolumeIoError {
  return new VolumeIoError(`${op} on ${path} failed: ${err.message}`, { cause: err, errno: err.code });
}

/** Size of a block device from sysfs (Node has no BLKGETSIZE64 ioctl). */
async function blockDeviceSize(rdev: number): Promise<number> {
  const { major, minor } = deviceNumber(rdev);
  const sectors = Number((await promisify(readFile)(`/sys/dev/block/${major}:${minor}/size`, 'utf8')).trim());
  return sectors * 512;
}

function writeAllSync(fd: number, chunks: Buffer[], offset: number): void {
  let bufs = chunks;
  let at = offset;
  while (bufs.length > 0) {
    const n = writevSync(fd, bufs, at);
    bufs = dropFront(bufs, n);
    at += n;
  }
}

/** The buffers left after the first `n` bytes were written (short writes are legal). */
function dropFront(bufs: Buffer[], n: number): Buffer[] {
  let i = 0;
  let left = n;
  while (i < bufs.length && left >= bufs[i]!.length) {
    left -= bufs[i]!.length;
    i++;
  }
  if (i === bufs.length) return [];
  const rest = bufs.slice(i);
  if (left > 0) rest[0] = rest[0]!.subarray(left);
  return rest;
}
