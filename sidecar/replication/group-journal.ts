import { crc32c } from '@node-rs/crc32';
import { mkdir, open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { BlockmirrorError, StateCorruptError } from '../errors.js';
import { syncDir } from '../fs/write-file-atomic.js';
import type { Volume } from '../volume/volume.js';
import type { DecodedRun } from './frame-builder.js';

export class GroupRejectedError extends BlockmirrorError {
  constructor(message: string) {
    super('FAILED_PRECONDITION', message);
    this.name = 'GroupRejectedError';
  }
}

// Record header: magic, flags (bit 0: zero run), offset, length, crc32c of header and data.
const MAGIC = 0x314a4d42; // "BMJ1"
const HEADER = 24;
const FLAG_ZERO = 1;
const READ_CHUNK = 4 << 20;

interface Staging {
  group: number;
  fh: FileHandle;
  path: string;
  frames: number;
  bytes: number;
  end: number;
}

/**
 * A secondary pair's staging area for consistency groups (STATE/pairs/NAME/journal/).
 * Frames of a group are appended to GROUP.jnl and touch nothing else; only a group that
 * is complete and committed is applied to the volume, so the volume is always at the
 * last complete group. A group superseded by a newer one, or left by a lost session,
 * is discarded. The commit decision itself is the group commit log's, not the journal's.
 */
export class GroupJournal {
  readonly #dir: string;
  readonly #volume: Volume;
  #staging: Staging | null = null;
  /** Group whose commit has begun: never discarded under it. */
  #committing = 0;
  // Staging, sealing, applying and discarding run one at a time, in call order.
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(dir: string, volume: Volume) {
    this.#dir = dir;
    this.#volume = volume;
  }

  static async open(dir: string, volume: Volume): Promise<GroupJournal> {
    await mkdir(dir, { recursive: true });
    return new GroupJournal(dir, volume);
  }

  /** Group files present on disk (leftovers of an earlier run included). */
  async groupsOnDisk(): Promise<number[]> {
    const names = await readdir(this.#dir);
    return names.flatMap((n) => (/^\d+\.jnl$/.test(n) ? [Number(n.slice(0, -4))] : []));
  }

  get stagedGroup(): number {
    return this.#staging?.group ?? 0;
  }

  /** Appends a verified frame's runs to `group`; a different group still staged is discarded first. */
  stage(group: number, runs: DecodedRun[]): Promise<void> {
    return this.#serial(async () => {
      if (this.#staging?.group !== group) {
        await this.#discardStaging();
        const path = this.#path(group);
        this.#staging = { group, fh: await open(path, 'w'), path, frames: 0, bytes: 0, end: 0 };
      }
      const s = this.#staging;
      const parts: Buffer[] = [];
      for (const r of runs) {
        const h = Buffer.alloc(HEADER);
        h.writeUInt32LE(MAGIC, 0);
        h.writeUInt32LE(r.zero ? FLAG_ZERO : 0, 4);
        h.writeBigUInt64LE(BigInt(r.offset), 8);
        h.writeUInt32LE(r.length, 16);
        const data = r.zero ? EMPTY : r.data;
        h.writeUInt32LE(crc32c(data, crc32c(h.subarray(0, 20))), 20);
        parts.push(h);
        if (!r.zero) parts.push(data);
      }
      const n = parts.reduce((a, b) => a + b.length, 0);
      await writevFully(s.fh, parts, s.end);
      s.end += n;
      s.frames++;
      s.bytes += runs.reduce((a, r) => a + r.length, 0);
    });
  }

  /**
   * Makes the staged group durable before it is committed: it must be the group staged,
   * with exactly the frames the primary had acknowledged.
   */
  seal(group: number, frames: number): Promise<void> {
    return this.#serial(async () => {
      const s = this.#staging;
      // A member with nothing to send in this group (the others had changes).
      if (frames === 0 && s?.group !== group) return;
      if (s?.group !== group) throw new GroupRejectedError(`group ${group} is not staged here (staged: ${s?.group ?? 'none'})`);
      if (s.frames !== frames) throw new GroupRejectedError(`group ${group}: ${s.frames} frames staged, the primary sent ${frames}`);
      // The commit record that follows must never point at data a power cut could lose.
      await s.fh.datasync();
      await s.fh.close();
      this.#committing = group;
      this.#staging = null;
    });
  }

  /**
   * Writes a committed group to the volume, durably, and removes its file. Idempotent:
   * after a crash in the middle, applying again from the start gives the same volume.
   */
  apply(group: number): Promise<{ bytes: number }> {
    return this.#serial(async () => {
      const path = this.#path(group);
      let bytes = 0;
      let fh: FileHandle;
      try {
        fh = await open(path, 'r');
      } catch (err) {
        // Nothing staged for this member, or applied and removed before a crash.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { bytes };
        throw err;
      }
      try {
        const { size } = await fh.stat();
        let at = 0;
        let buf = Buffer.alloc(0);
        let bufAt = 0;
        // Records are read sequentially through a window of the file.
        const need = async (from: number, n: number): Promise<Buffer> => {
          if (from < bufAt || from + n > bufAt + buf.length) {
            const len = Math.min(Math.max(n, READ_CHUNK), size - from);
            if (len < n) throw new StateCorruptError(`${path}: truncated record at byte ${from}`);
            buf = Buffer.alloc(len);
            await readFully(fh, buf, from);
            bufAt = from;
          }
          return buf.subarray(from - bufAt, from - bufAt + n);
        };
        while (at < size) {
          const h = Buffer.from(await need(at, HEADER));
          if (h.readUInt32LE(0) !== MAGIC) throw new StateCorruptError(`${path}: bad record at byte ${at}`);
          const zero = (h.readUInt32LE(4) & FLAG_ZERO) !== 0;
          const offset = Number(h.readBigUInt64LE(8));
          const length = h.readUInt32LE(16);
          const data = zero ? EMPTY : await need(at + HEADER, length);
          if (crc32c(data, crc32c(h.subarray(0, 20))) !== h.readUInt32LE(20)) throw new StateCorruptError(`${path}: checksum mismatch at byte ${at}`);
          if (zero) {
            await this.#volume.writeZeroes(offset, length);
          } else {
            await this.#volume.write(offset, data);
          }
          bytes += length;
          at += HEADER + (zero ? 0 : length);
        }
      } finally {
        await fh.close();
      }
      // Durable on the volume before the journal (the only other copy) goes.
      await this.#volume.flush();
      await rm(path, { force: true });
      if (this.#committing === group) this.#committing = 0;
      return { bytes };
    });
  }

  /** Drops the group being staged (a lost session, an abandoned group). */
  discard(): Promise<void> {
    return this.#serial(() => this.#discardStaging());
  }

  /** Removes every group file (at start, once recorded commits are applied). */
  discardAll(): Promise<void> {
    return this.#serial(async () => {
      await this.#discardStaging();
      for (const g of await this.groupsOnDisk()) await rm(this.#path(g), { force: true });
      await syncDir(this.#dir);
    });
  }

  async close(): Promise<void> {
    await this.#queue.catch(() => undefined);
    await this.#staging?.fh.close().catch(() => undefined);
    this.#staging = null;
  }

  async #discardStaging(): Promise<void> {
    const s = this.#staging;
    if (!s) return;
    this.#staging = null;
    await s.fh.close().catch(() => undefined);
    if (s.group !== this.#committing) await rm(s.path, { force: true });
  }

  #path(group: number): string {
    return join(this.#dir, `${group}.jnl`);
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}

const EMPTY = Buffer.alloc(0);

async function writevFully(fh: FileHandle, parts: Buffer[], position: number): Promise<void> {
  let bufs = parts;
  let at = position;
  while (bufs.length > 0) {
    const { bytesWritten } = await fh.writev(bufs, at);
    at += bytesWritten;
    let left = bytesWritten;
    const rest: Buffer[] = [];
    for (const b of bufs) {
      if (left >= b.length) left -= b.length;
      else {
        rest.push(b.subarray(left));
        left = 0;
      }
    }
    bufs = rest;
  }
}

async function readFully(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new StateCorruptError(`unexpected end of journal at byte ${position + done}`);
    done += bytesRead;
  }
}
