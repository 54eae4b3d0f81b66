import { crc32c } from '@node-rs/crc32';
import { mkdir, open, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { BlockmirrorError, StateCorruptError } from '../../errors.js';
import { syncDir } from '../../fs/write-file-atomic.js';
import type { Volume } from '../../volume/volume.js';
import type { DecodedRun } from '../wire/frame-builder.js';

export class GroupRejectedError extends BlockmirrorError {
  constructor(message: string) {
    super('FAILED_PRECONDITION', message);
    this.name = 'GroupRejectedError';
  }
}

// Record header: magic, flags (bit 0: zero run), offset, length, crc32c of header and data.
const MAGIC = 0x314a4d42; // "BMJ1"
// The seal, last in a sealed file: magic, records (u32), total run bytes (u64), crc32c of
// every record's checksum in order (u32), crc32c of its first 20 bytes. Each record
// checks only itself; the seal is what makes a file cut at a record boundary, a record
// dropped, repeated or moved, or bytes appended, fail the check.
const SEAL_MAGIC = 0x454a4d42; // "BMJE"
const HEADER = 24;
const FLAG_ZERO = 1;
const READ_CHUNK = 4 << 20;

interface Staging {
  group: number;
  fh: FileHandle;
  path: string;
  frames: number;
  records: number;
  bytes: number;
  /** crc32c over the records' checksums, in order (see SEAL_MAGIC). */
  chain: number;
  end: number;
}

/** What a journal file holds, once every record of it checked out. */
export interface JournalSummary {
  records: number;
  bytes: number;
}

/**
 * A secondary pair's staging area for consistency groups (STATE/pairs/NAME/journal/).
 * Frames of a group are appended to GROUP.jnl and touch nothing else; only a group that
 * is complete and committed is applied to the volume, so the volume is always at the
 * last complete group. A group superseded by a newer one, or left by a lost session,
 * is discarded. The commit decision itself is the group commit log's, not the journal's.
 * A group is checked whole before its first byte reaches the volume: a bad record never
 * leaves a group half-applied.
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
        this.#staging = { group, fh: await open(path, 'w'), path, frames: 0, records: 0, bytes: 0, chain: 0, end: 0 };
      }
      const s = this.#staging;
      const parts: Buffer[] = [];
      let chain = s.chain;
      for (const r of runs) {
        const h = Buffer.alloc(HEADER);
        h.writeUInt32LE(MAGIC, 0);
        h.writeUInt32LE(r.zero ? FLAG_ZERO : 0, 4);
        h.writeBigUInt64LE(BigInt(r.offset), 8);
        h.writeUInt32LE(r.length, 16);
        const data = r.zero ? EMPTY : r.data;
        h.writeUInt32LE(crc32c(data, crc32c(h.subarray(0, 20))), 20);
        chain = crc32c(h.subarray(20, 24), chain);
        parts.push(h);
        if (!r.zero) parts.push(data);
      }
      const n = parts.reduce((a, b) => a + b.length, 0);
      await writevFully(s.fh, parts, s.end);
      s.end += n;
      s.frames++;
      s.chain = chain;
      s.records += runs.length;
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
      // The commit record that follows must never point at data a power cut could lose:
      // the file's data, and its name in the directory (a new file's entry is durable
      // only once the directory is synced; without it a power cut could leave a commit
      // record naming a journal that no longer exists).
      await writevFully(s.fh, [sealRecord(s.records, s.bytes, s.chain)], s.end);
      await s.fh.datasync();
      await s.fh.close();
      await syncDir(this.#dir);
      this.#committing = group;
      this.#staging = null;
    });
  }

  /**
   * Reads a sealed group whole and checks every record (magic, checksum, inside the
   * volume) and the seal after them, without writing anything. 'missing' when there is no file for the group.
   * Throws StateCorruptError naming the file and the first bad record.
   */
  verify(group: number): Promise<JournalSummary | 'missing'> {
    return this.#serial(() => this.#scan(group, null));
  }

  /**
   * Writes a committed group to the volume, durably. The whole group is verified first,
   * so a bad record refuses the group before anything is written. Idempotent: after a
   * crash in the middle, applying again from the start gives the same volume. The file
   * stays until `remove` (the commit record is cleared first, see GroupCommitter).
   */
  apply(group: number): Promise<JournalSummary | 'missing'> {
    return this.#serial(async () => {
      const checked = await this.#scan(group, null);
      if (checked === 'missing') return checked;
      const applied = await this.#scan(group, this.#volume);
      // Durable on the volume before the journal (the only other copy) may go.
      await this.#volume.flush();
      if (this.#committing === group) this.#committing = 0;
      return applied;
    });
  }

  /** Removes an applied group's file, durably. */
  remove(group: number): Promise<void> {
    return this.#serial(async () => {
      await rm(this.#path(group), { force: true });
      await syncDir(this.#dir);
    });
  }

  /**
   * Moves a group file that failed its checks aside (journal/quarantine/), so that it is
   * kept for inspection but never applied; returns where it went.
   */
  quarantine(group: number): Promise<string> {
    return this.#serial(async () => {
      const dir = join(this.#dir, 'quarantine');
      await mkdir(dir, { recursive: true });
      const to = join(dir, `${group}.jnl`);
      await rename(this.#path(group), to);
      await syncDir(dir);
      await syncDir(this.#dir);
      return to;
    });
  }

  /**
   * Reads group `group`'s records in order, checking each; with a volume, also writes
   * them to it (call that only after a pass without one has checked the whole file).
   */
  async #scan(group: number, volume: Volume | null): Promise<JournalSummary | 'missing'> {
    const path = this.#path(group);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
      throw err;
    }
    let records = 0;
    let bytes = 0;
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
      let chain = 0;
      let sealed = false;
      while (at < size) {
        const h = Buffer.from(await need(at, HEADER));
        if (h.readUInt32LE(0) === SEAL_MAGIC) {
          const seal = sealRecord(records, bytes, chain);
          if (at + HEADER !== size) throw new StateCorruptError(`${path}: ${size - at - HEADER} bytes after the seal at byte ${at}`);
          if (!h.equals(seal)) throw new StateCorruptError(`${path}: the seal does not match the ${records} records before it`);
          sealed = true;
          break;
        }
        if (h.readUInt32LE(0) !== MAGIC) throw new StateCorruptError(`${path}: bad record at byte ${at}`);
        const flags = h.readUInt32LE(4);
        const zero = (flags & FLAG_ZERO) !== 0;
        const offset = Number(h.readBigUInt64LE(8));
        const length = h.readUInt32LE(16);
        if ((flags & ~FLAG_ZERO) !== 0 || length === 0 || offset + length > this.#volume.size) {
          throw new StateCorruptError(`${path}: record at byte ${at} is malformed (flags ${flags}, offset ${offset}, length ${length})`);
        }
        const data = zero ? EMPTY : await need(at + HEADER, length);
        if (crc32c(data, crc32c(h.subarray(0, 20))) !== h.readUInt32LE(20)) throw new StateCorruptError(`${path}: checksum mismatch at byte ${at}`);
        if (volume !== null) await (zero ? volume.writeZeroes(offset, length) : volume.write(offset, data));
        chain = crc32c(h.subarray(20, 24), chain);
        records++;
        bytes += length;
        at += HEADER + (zero ? 0 : length);
      }
      // A committed group is always sealed: a file without its seal was cut short.
      if (!sealed) throw new StateCorruptError(`${path}: no seal after ${records} records (${size} bytes): the file is incomplete`);
    } finally {
      await fh.close();
    }
    return { records, bytes };
  }

  /** Drops the group being staged (a lost session, an abandoned group). */
  discard(): Promise<void> {
    return this.#serial(() => this.#discardStaging());
  }

  /** Removes every group file but `keep` (at start, once recorded commits are settled). */
  discardAll(keep: ReadonlySet<number> = new Set()): Promise<void> {
    return this.#serial(async () => {
      await this.#discardStaging();
      for (const g of await this.groupsOnDisk()) if (!keep.has(g)) await rm(this.#path(g), { force: true });
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

function sealRecord(records: number, bytes: number, chain: number): Buffer {
  const h = Buffer.alloc(HEADER);
  h.writeUInt32LE(SEAL_MAGIC, 0);
  h.writeUInt32LE(records, 4);
  h.writeBigUInt64LE(BigInt(bytes), 8);
  h.writeUInt32LE(chain, 16);
  h.writeUInt32LE(crc32c(h.subarray(0, 20)), 20);
  return h;
}

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
