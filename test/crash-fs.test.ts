// The power-loss filesystem (test/crashfs, blockmirror-crashfs) proved through real
// syscalls: Node's fs, dd, cmp, sha256sum, fallocate, rm.
//
// Why its semantics are those of a disk with a volatile write cache. Such a disk
// acknowledges a write once it is in the cache and keeps it only once a FLUSH (or a FUA
// write) has pushed it to stable media; the filesystem above turns fsync/fdatasync into
// exactly that. So at a power cut, everything written since the file's last fsync may be
// gone, and whatever was fsync'd is there: `cut drop`. The cache may also have written
// back any part of the rest, in any order, a 512-byte sector at a time (sectors are
// atomic, pages are not): `cut torn SEED` keeps a seeded random subset of the unsynced
// sectors, so a reader sees every sector either as last synced or as last written, and
// never bytes nobody wrote. A directory entry (create, unlink, rename, mkdir) is
// metadata in the directory and is durable once the directory is fsync'd: the strict
// POSIX reading, the worst a real filesystem may show (ext4 and xfs usually persist more,
// through their journal, which a test must not count on). A file's size and attributes
// are durable with its fsync or fdatasync; an O_SYNC/O_DSYNC write is durable at once.
//
// What it does not model: reordering between two synced states (a flush forbids it, so
// there is nothing to model); a torn sector (disks write 512-byte sectors atomically);
// an unsynced size change is lost or kept as a whole, independently of the data (torn);
// several intermediate versions of one unsynced sector (it is durable or latest);
// metadata-only journalling that makes a rename durable with another directory's fsync.
// Directories cannot move between parents (EXDEV; mv copies instead), and sync(1)/
// syncfs(2) do not reach a FUSE filesystem, so only fsync/fdatasync/O_DSYNC make data
// durable.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants,
  existsSync,
  fdatasyncSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { syncDir, writeFileAtomic } from '../sidecar/fs/write-file-atomic.js';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { CrashFs, crashFsBinary, type CrashFsMountOptions } from './helpers/crash-fs.js';
import { run } from './helpers/run-cli.js';
import { waitFor } from './helpers/wait-for.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const SECTOR = 512;

/** Bytes that differ at every position from their neighbours and from other seeds. */
function pattern(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = (i * 31 + seed * 101 + (i >> 9)) & 0xff;
  return b;
}

/** Writes `data` to `path` and makes it durable, name included. */
function writeDurable(path: string, dir: string, data: Buffer | string): Promise<void> {
  const fd = openSync(path, 'w');
  writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
  fsyncSync(fd);
  closeSync(fd);
  return syncDir(dir);
}

function mounted(dir: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === dir);
}

describe('blockmirror-crashfs: a filesystem that loses unsynced writes at a power cut', () => {
  let base: string;
  let n = 0;
  const cleanup = new CleanupStack();

  const fresh = async (opts: CrashFsMountOptions = {}): Promise<CrashFs> => {
    const dir = join(base, `m${n++}`);
    mkdirSync(dir);
    const fs = await CrashFs.mount(dir, opts);
    cleanup.track(`crashfs ${dir}`, () => fs.unmount());
    return fs;
  };

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'bm-crashfs-'));
    await crashFsBinary(); // builds it if this checkout has not yet
  }, 300_000);

  afterEach(() => cleanup.releaseAll());

  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it('an unsynced write vanishes at a cut; fdatasync-ed data survives', async () => {
    const fs = await fresh();
    const p = join(fs.dir, 'f');
    const fd = openSync(p, 'w+');
    writeSync(fd, pattern(8 * KiB, 1), 0, 8 * KiB, 0);
    fdatasyncSync(fd);
    await syncDir(fs.dir);
    writeSync(fd, pattern(4 * KiB, 2), 0, 4 * KiB, 8 * KiB); // extends the file
    writeSync(fd, Buffer.alloc(100, 3), 0, 100, 50); // inside sector 0
    expect(readFileSync(p).length).toBe(12 * KiB);
    expect((await fs.stats()).dirtyBytes).toBe(4 * KiB + SECTOR);

    const cut = await fs.cut({ mode: 'drop' });
    expect(cut).toMatchObject({ droppedBytes: 4 * KiB + SECTOR, revertedSizes: 1, droppedEntries: 0 });
    expect(readFileSync(p)).toEqual(pattern(8 * KiB, 1));
    closeSync(fd);
    expect((await fs.stats()).dirtyBytes).toBe(0);

    // An O_DSYNC write (as a FUA write) is durable when it returns.
    const d = join(fs.dir, 'dsync');
    const dfd = openSync(d, constants.O_RDWR | constants.O_CREAT | constants.O_DSYNC);
    await syncDir(fs.dir);
    writeSync(dfd, 'dsync');
    closeSync(dfd);
    await fs.cut({ mode: 'drop' });
    expect(readFileSync(d, 'utf8')).toBe('dsync');
  });

  it('a file created and fsync-ed vanishes without an fsync of its directory, and stays with one', async () => {
    const fs = await fresh();
    await writeDurable(join(fs.dir, 'kept'), fs.dir, 'kept');
    const fd = openSync(join(fs.dir, 'lost'), 'wx+');
    writeSync(fd, 'lost');
    fsyncSync(fd);
    closeSync(fd);
    mkdirSync(join(fs.dir, 'sub')); // an unsynced mkdir is lost too

    const cut = await fs.cut({ mode: 'drop' });
    expect(cut.droppedEntries).toBe(2);
    expect(readdirSync(fs.dir)).toEqual(['kept']);
    expect(readFileSync(join(fs.dir, 'kept'), 'utf8')).toBe('kept');
  });

  it('a rename without an fsync of the directory reverts to the old file', async () => {
    const fs = await fresh();
    const a = join(fs.dir, 'a');
    await writeDurable(a, fs.dir, 'old');
    const oldIno = statSync(a).ino;
    const tmp = join(fs.dir, 'a.tmp');
    const fd = openSync(tmp, 'w');
    writeSync(fd, 'new');
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, a);
    expect(readFileSync(a, 'utf8')).toBe('new');

    expect((await fs.cut({ mode: 'drop' })).droppedEntries).toBe(1);
    expect(statSync(a).ino).toBe(oldIno);
    expect(readFileSync(a, 'utf8')).toBe('old');
    expect(existsSync(tmp)).toBe(false);
  });

  it('writeFileAtomic (temp, fsync, rename, fsync the directory) leaves exactly the old or the new content at any cut', async () => {
    const fs = await fresh();
    const file = join(fs.dir, 'state', 'pair.json');
    let durable = 'version 0';
    await writeFileAtomic(file, durable);
    await syncDir(fs.dir); // mkdir -p made state/; its entry in the root must be durable too
    const seen = { old: 0, new: 0 };
    for (let i = 1; i <= 40; i++) {
      const next = `version ${i} ${'x'.repeat(i * 97)}`;
      let acknowledged = false;
      const op = writeFileAtomic(file, next).then(
        () => (acknowledged = true),
        () => false, // the cut removed the temp file under it: never acknowledged
      );
      // Cut at a different point of the sequence each time.
      for (let k = 0; k < i % 8; k++) await new Promise((r) => setImmediate(r));
      const ackedBeforeCut = acknowledged;
      await fs.cut(i % 2 === 0 ? { mode: 'drop' } : { mode: 'torn', seed: i });
      // The writer runs on after the cut (a real one would have died with the power);
      // whatever it does then, the durable state after a second cut is still old or new.
      await op;
      await fs.cut({ mode: 'drop' });
      const got = readFileSync(file, 'utf8');
      expect([durable, next]).toContain(got);
      if (ackedBeforeCut) expect(got).toBe(next);
      seen[got === next ? 'new' : 'old']++;
      expect(readdirSync(join(fs.dir, 'state'))).toEqual(['pair.json']);
      durable = got;
    }
    // Both outcomes happened: the cuts did land at different points.
    expect(seen.old).toBeGreaterThan(0);
    expect(seen.new).toBeGreaterThan(0);
  });

  it('a torn cut keeps a seeded subset of the unsynced 512-byte sectors, never bytes nobody wrote', async () => {
    const SECTORS = 256;
    const old = Buffer.alloc(SECTORS * SECTOR, 0xaa);
    const cur = Buffer.alloc(SECTORS * SECTOR);
    for (let s = 0; s < SECTORS; s++) cur.fill(1 + (s % 100), s * SECTOR, (s + 1) * SECTOR); // never 0xaa
    cur.fill(0x55, 1000, 1100); // a write that covers only part of sectors 1 and 2
    const torn = async (seed: number): Promise<{ got: Buffer; keptBytes: number; droppedBytes: number }> => {
      const fs = await fresh();
      const p = join(fs.dir, 't');
      await writeDurable(p, fs.dir, old);
      const fd = openSync(p, 'r+');
      for (let off = 0; off < cur.length; off += 4 * KiB) writeSync(fd, cur, off, 4 * KiB, off);
      writeSync(fd, cur, 1000, 100, 1000);
      const { keptBytes, droppedBytes } = await fs.cut({ mode: 'torn', seed });
      const got = readFileSync(p);
      closeSync(fd);
      return { got, keptBytes, droppedBytes };
    };
    const a = await torn(7);
    expect(a.got.length).toBe(old.length);
    let kept = 0;
    for (let s = 0; s < SECTORS; s++) {
      const g = a.got.subarray(s * SECTOR, (s + 1) * SECTOR);
      const isOld = g.equals(old.subarray(s * SECTOR, (s + 1) * SECTOR));
      const isNew = g.equals(cur.subarray(s * SECTOR, (s + 1) * SECTOR));
      expect(isOld || isNew).toBe(true); // whole sectors: durable or last written
      if (isNew) kept++;
    }
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(SECTORS);
    expect(a.keptBytes).toBe(kept * SECTOR);
    expect(a.droppedBytes).toBe((SECTORS - kept) * SECTOR);
    // Reproducible: the same writes and the same seed give the same disk.
    expect((await torn(7)).got.equals(a.got)).toBe(true);
    expect((await torn(8)).got.equals(a.got)).toBe(false);
  });

  it('reads right after a cut see the durable state, through open descriptors and paths alike', async () => {
    const fs = await fresh();
    const f = join(fs.dir, 'f');
    await writeDurable(f, fs.dir, 'durable');
    const h = join(fs.dir, 'h');
    await writeDurable(h, fs.dir, 'h-old');
    const hIno = statSync(h).ino;
    const fd = openSync(f, 'r+');
    writeSync(fd, 'unsynced and longer', 0);
    const buf = Buffer.alloc(64);
    expect(buf.subarray(0, readSync(fd, buf, 0, 64, 0)).toString()).toBe('unsynced and longer');
    // Same size and not even read since: a write-through page cache would still hold the
    // new data, and nothing about the file's attributes would tell the kernel to drop it.
    const same = join(fs.dir, 'same');
    await writeDurable(same, fs.dir, Buffer.alloc(64 * KiB, 'A'));
    const sfd = openSync(same, 'r+');
    writeSync(sfd, Buffer.alloc(64 * KiB, 'B'), 0, 64 * KiB, 0);
    writeFileSync(join(fs.dir, 'g'), 'never durable');
    writeFileSync(join(fs.dir, 'h.tmp'), 'h-new');
    renameSync(join(fs.dir, 'h.tmp'), h);
    expect(statSync(h).ino).not.toBe(hIno);

    await fs.cut({ mode: 'drop' });
    expect(buf.subarray(0, readSync(fd, buf, 0, 64, 0)).toString()).toBe('durable');
    expect(fstatSync(fd).size).toBe(7);
    const sbuf = Buffer.alloc(64 * KiB);
    readSync(sfd, sbuf, 0, sbuf.length, 0);
    expect(sbuf.equals(Buffer.alloc(64 * KiB, 'A'))).toBe(true);
    expect(readFileSync(same).equals(Buffer.alloc(64 * KiB, 'A'))).toBe(true);
    closeSync(sfd);
    expect(existsSync(join(fs.dir, 'g'))).toBe(false);
    expect(statSync(h).ino).toBe(hIno);
    expect(readFileSync(h, 'utf8')).toBe('h-old');
    expect(readdirSync(fs.dir).sort()).toEqual(['f', 'h', 'same']);
    closeSync(fd);
  });

  it('runs full at its capacity (ENOSPC), and writes succeed again once it is raised or space is freed', async () => {
    const fs = await fresh({ capacityBytes: 8 * MiB });
    const df = await run('df', ['-B1', '--output=size,used', fs.dir]);
    expect(df.stdout.trim().split('\n')[1].trim().split(/\s+/).map(Number)).toEqual([8 * MiB, 0]);
    const fill = join(fs.dir, 'fill');
    const dd = await run('dd', ['if=/dev/zero', `of=${fill}`, 'bs=1M', 'count=16']);
    expect(dd.code).not.toBe(0);
    expect(dd.stderr).toMatch(/No space left on device/);
    expect(statSync(fill).size).toBe(8 * MiB);
    expect(() => writeFileSync(join(fs.dir, 'x'), 'x')).toThrow(expect.objectContaining({ code: 'ENOSPC' }));
    // Overwriting allocated space needs none.
    const fd = openSync(fill, 'r+');
    writeSync(fd, Buffer.alloc(MiB, 1), 0, MiB, 0);
    closeSync(fd);

    await expect(fs.setCapacity(-1)).rejects.toMatchObject({ code: 'CRASHFS_CONTROL' });
    await fs.setCapacity(16 * MiB);
    writeFileSync(join(fs.dir, 'x'), 'x');
    await fs.setCapacity(8 * MiB);
    expect(() => writeFileSync(join(fs.dir, 'y'), 'y')).toThrow(expect.objectContaining({ code: 'ENOSPC' }));
    truncateSync(fill, 4 * MiB); // truncating frees...
    writeFileSync(join(fs.dir, 'y'), 'y');
    expect((await fs.stats()).allocatedBytes).toBe(4 * MiB + 8 * KiB);
    rmSync(fill); // ...and so does unlinking
    await waitFor('the unlinked file to be forgotten', async () => (await fs.stats()).allocatedBytes === 8 * KiB);
    // So does a cut, of the files it takes away: x and y were never durable.
    await fs.cut({ mode: 'drop' });
    expect(readdirSync(fs.dir)).toEqual([]);
    await waitFor('the vanished files to be forgotten', async () => (await fs.stats()).allocatedBytes === 0);
  });

  it('a 1 GiB sparse volume file with a few MiB written costs a few MiB; dd and cmp agree with it', async () => {
    const fs = await fresh();
    const vol = join(fs.dir, 'vol.img');
    writeFileSync(vol, '');
    truncateSync(vol, GiB);
    const fd = openSync(vol, 'r+');
    for (const off of [0, 256 * MiB, 512 * MiB, GiB - MiB]) writeSync(fd, pattern(MiB, off / MiB), 0, MiB, off);
    fdatasyncSync(fd);
    closeSync(fd);
    await syncDir(fs.dir);
    const src = join(base, 'random.bin');
    writeFileSync(src, randomBytes(2 * MiB));
    const dd = await run('dd', [`if=${src}`, `of=${vol}`, 'bs=1M', 'seek=100', 'conv=notrunc,fsync']);
    expect(dd.code).toBe(0);

    const st = await fs.stats();
    expect(st.allocatedBytes).toBe(6 * MiB);
    expect(st.memoryBytes).toBe(6 * MiB); // synced pages are held once, not twice
    expect(statSync(vol).size).toBe(GiB);
    expect(statSync(vol).blocks * 512).toBe(6 * MiB);
    expect((await fs.cut({ mode: 'drop' })).droppedBytes).toBe(0);
    expect((await run('cmp', ['-n', String(2 * MiB), '-i', `0:${100 * MiB}`, src, vol])).code).toBe(0);
    const rfd = openSync(vol, 'r');
    const b = Buffer.alloc(MiB);
    readSync(rfd, b, 0, MiB, 512 * MiB);
    expect(b.equals(pattern(MiB, 512))).toBe(true);
    readSync(rfd, b, 0, MiB, 700 * MiB);
    expect(b.equals(Buffer.alloc(MiB))).toBe(true);
    closeSync(rfd);
  });

  it('supports what the tools and the sidecar do: open modes, append, symlinks, chmod, utimes, fallocate, sha256sum, rm -rf', async () => {
    const fs = await fresh();
    const t = join(fs.dir, 't');
    mkdirSync(join(t, 'sub', 'deeper'), { recursive: true });
    const src = join(base, 'tools.bin');
    writeFileSync(src, randomBytes(3 * MiB + 123));
    const a = join(t, 'sub', 'a');
    expect((await run('dd', [`if=${src}`, `of=${a}`, 'bs=64k'])).code).toBe(0);
    expect((await run('cmp', [src, a])).code).toBe(0);
    const sums = await run('sha256sum', [src, a]);
    const [s1, s2] = sums.stdout.trim().split('\n').map((l) => l.split(/\s+/)[0]);
    expect(s1).toBe(s2);

    // O_EXCL, r+, a
    expect(() => openSync(a, 'wx+')).toThrow(expect.objectContaining({ code: 'EEXIST' }));
    const log = join(t, 'log');
    writeFileSync(log, 'one\n', { flag: 'a' });
    writeFileSync(log, 'two\n', { flag: 'a' });
    const fd = openSync(log, 'r+');
    writeSync(fd, 'ONE', 0);
    closeSync(fd);
    expect(readFileSync(log, 'utf8')).toBe('ONE\ntwo\n');

    symlinkSync('sub/a', join(t, 'link'));
    expect(readlinkSync(join(t, 'link'))).toBe('sub/a');
    expect(readFileSync(join(t, 'link')).length).toBe(3 * MiB + 123);
    chmodSync(log, 0o600);
    expect(statSync(log).mode & 0o777).toBe(0o600);
    utimesSync(log, 1_000_000, 2_000_000);
    expect(statSync(log).mtimeMs).toBe(2_000_000_000);

    // fallocate: a punched hole reads as zeros and frees its pages; preallocation
    // counts against the capacity but holds no memory.
    const before = await fs.stats();
    expect((await run('fallocate', ['--punch-hole', '--offset', '4096', '--length', '8192', a])).code).toBe(0);
    const holed = readFileSync(a);
    expect(holed.length).toBe(3 * MiB + 123);
    expect(holed.subarray(4096, 12288).equals(Buffer.alloc(8192))).toBe(true);
    expect(holed.subarray(0, 4096).equals(readFileSync(src).subarray(0, 4096))).toBe(true);
    expect((await run('fallocate', ['-l', '1M', join(t, 'pre')])).code).toBe(0);
    const after = await fs.stats();
    expect(after.allocatedBytes).toBe(before.allocatedBytes - 8192 + MiB);
    expect(after.memoryBytes).toBe(before.memoryBytes - 8192);
    expect(statSync(join(t, 'pre')).size).toBe(MiB);

    expect((await run('rm', ['-rf', t])).code).toBe(0);
    expect(readdirSync(fs.dir)).toEqual([]);
    // Nothing was ever durable: once the kernel forgets the inodes, nothing is held.
    await waitFor('every inode to be freed', async () => {
      const st = await fs.stats();
      return st.inodes === 1 && st.allocatedBytes === 0 && st.memoryBytes === 0;
    });
  });

  it('a 4 KiB write round trip costs well under a millisecond', async () => {
    const fs = await fresh();
    const fd = openSync(join(fs.dir, 'bench'), 'w+');
    const buf = Buffer.alloc(4 * KiB, 1);
    const N = 4000;
    for (let i = 0; i < 256; i++) writeSync(fd, buf, 0, buf.length, i * buf.length); // allocate
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) writeSync(fd, buf, 0, buf.length, (i % 256) * buf.length);
    const perWriteUs = Number(process.hrtime.bigint() - t0) / 1000 / N;
    closeSync(fd);
    // Typically tens of microseconds; the bound leaves room for a loaded 2-core machine.
    expect(perWriteUs).toBeLessThan(1000);
  });

  it('unmount leaves no mount behind, even after the process was killed with SIGKILL', async () => {
    const fs = await fresh();
    writeFileSync(join(fs.dir, 'f'), 'x');
    expect(mounted(fs.dir)).toBe(true);
    fs.child.kill('SIGKILL');
    await waitFor('the process to exit', () => fs.child.exitCode !== null || fs.child.signalCode !== null);
    expect(() => readdirSync(fs.dir)).toThrow(expect.objectContaining({ code: 'ENOTCONN' }));
    await fs.unmount();
    expect(mounted(fs.dir)).toBe(false);
    expect(readdirSync(fs.dir)).toEqual([]);
    await fs.unmount(); // idempotent

    const busy = await fresh();
    const held = openSync(join(busy.dir, 'open'), 'w');
    await busy.unmount(); // busy: detached lazily, the process gone
    expect(mounted(busy.dir)).toBe(false);
    expect(busy.child.exitCode).toBe(0);
    try {
      closeSync(held);
    } catch {
      // ENOTCONN: the filesystem under it is gone, which is the point
    }
  });
});
