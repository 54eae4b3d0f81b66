import { afterEach, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { attachFuse, attachLoop, mountExt4 } from './helpers/nbd-fuse-mount.js';
import { run, runOk } from './helpers/run-cli.js';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { SidecarProcess } from './helpers/sidecar-process.js';
import { waitFor } from './helpers/wait-for.js';

// Acceptance tests with real NBD clients (qemu-io, qemu-img, nbdinfo, nbdcopy, fio,
// nbdfuse + loop + ext4) against a real sidecar process, all on loopback.

const KiB = 1024;
const MiB = 1024 * KiB;
const TEST_TIMEOUT = 120_000;

// ---------------------------------------------------------------------------------
// Everything a test sets up is released in reverse order after it.
const cleanup = new CleanupStack();
const track = cleanup.track.bind(cleanup);
afterEach(() => cleanup.releaseAll(), 60_000);

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bm-nbd-clients-'));
  track(`temp dir ${dir}`, () => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function startSidecar(stateDir: string): Promise<{ sc: SidecarProcess; stop: () => Promise<void> }> {
  const sc = await SidecarProcess.start({ stateDir });
  const stop = track(`sidecar pid ${sc.child.pid}`, async () => {
    const exited = await Promise.race([sc.stop(), new Promise<null>((r) => setTimeout(() => r(null), 15_000).unref())]);
    if (exited === null) await sc.kill9();
  });
  return { sc, stop };
}

/** A sparse volume file of exactly `bytes`. */
async function sparseFile(path: string, bytes: number): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.truncate(bytes);
  } finally {
    await fh.close();
  }
}

interface Exported {
  name: string;
  volume: string;
  socket: string;
  /** nbd://127.0.0.1:PORT/NAME */
  tcpUri: string;
  /** nbd+unix:///NAME?socket=PATH */
  unixUri: string;
  port: number;
}

async function createPair(sc: SidecarProcess, dir: string, name: string, volumeBytes: number): Promise<Exported> {
  const volume = join(dir, `${name}.img`);
  await sparseFile(volume, volumeBytes);
  // A bare name: the sidecar places it in its run directory (status says where).
  await sc.cli('pair', 'create', name, '--volume', volume, '--role', 'primary', '--nbd-listen', '127.0.0.1:0', '--nbd-socket', `${name}.sock`);
  return exportOf(sc, name, volume);
}

async function exportOf(sc: SidecarProcess, name: string, volume: string): Promise<Exported> {
  const st = await sc.status(name);
  expect(st.nbdAddress).toMatch(/^127\.0\.0\.1:\d+$/);
  const port = Number(st.nbdAddress.split(':')[1]);
  expect(port).toBeGreaterThan(0);
  return {
    name,
    volume,
    socket: st.nbdSocket,
    tcpUri: `nbd://${st.nbdAddress}/${name}`,
    unixUri: `nbd+unix:///${name}?socket=${st.nbdSocket}`,
    port,
  };
}

async function sha256File(path: string, limit?: number): Promise<string> {
  const h = createHash('sha256');
  const stream = createReadStream(path, limit === undefined ? {} : { start: 0, end: limit - 1 });
  for await (const chunk of stream) h.update(chunk as Buffer);
  return h.digest('hex');
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

// ---------------------------------------------------------------------------------
/** Every regular file under `root`, relative path → sha256. */
async function hashTree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (dir === root && e.name === 'lost+found') continue;
        await walk(p);
      } else if (e.isFile()) {
        out.set(relative(root, p), await sha256File(p));
      }
    }
  };
  await walk(root);
  return out;
}

// ---------------------------------------------------------------------------------

describe('real NBD clients against a real sidecar', () => {
  it(
    'qemu-io writes patterns over TCP that read back over the Unix socket; qemu-img sees the exact volume',
    async () => {
      const dir = await tempDir();
      const { sc } = await startSidecar(join(dir, 'state'));
      const size = 64 * MiB;
      const ex = await createPair(sc, dir, 'qio', size);
      expect(ex.socket).toBe(join(dir, 'state', 'run', 'qio.sock'));

      // The model of what the volume must contain; `unspecified` ranges (discarded) are not compared.
      const model = Buffer.alloc(size);
      const unspecified: [number, number][] = [];
      const writes: [pattern: number, offset: number, length: number][] = [
        [0x5c, 0, 512],
        [0xab, 1000, 3000], // unaligned both ends
        [0x3d, 65_535, 131_073], // straddles 64 KiB tracking blocks
        [0x77, 4 * MiB, MiB],
        [0x99, 8 * MiB, 128 * KiB],
        [0xe7, size - 5000, 5000], // ends exactly at the end of the volume
        [0x42, size - 8195, 1], // a single byte near the end
      ];
      const writeCmds = writes.flatMap(([p, o, l]) => ['-c', `write -P 0x${p.toString(16)} ${o} ${l}`]);
      const w = await runOk('qemu-io', ['-f', 'raw', ...writeCmds, ex.tcpUri]);
      for (const [p, o, l] of writes) {
        expect(w).toContain(`wrote ${l}/${l} bytes at offset ${o}`);
        model.fill(p, o, o + l);
      }

      // write_zeroes in the middle of written data, and a discard: both accepted.
      const z = await runOk('qemu-io', ['-f', 'raw', '-c', `write -z ${4 * MiB + 4096} ${64 * KiB}`, '-c', `discard ${8 * MiB} ${64 * KiB}`, ex.tcpUri]);
      expect(z).toContain(`wrote ${64 * KiB}/${64 * KiB} bytes at offset ${4 * MiB + 4096}`);
      expect(z).toContain(`discard ${64 * KiB}/${64 * KiB} bytes at offset ${8 * MiB}`);
      model.fill(0, 4 * MiB + 4096, 4 * MiB + 4096 + 64 * KiB);
      unspecified.push([8 * MiB, 64 * KiB]);

      // Read everything back over the Unix socket, in a separate qemu-io process.
      const reads: [pattern: number, offset: number, length: number][] = [
        [0x5c, 0, 512],
        [0x00, 512, 488], // the gap between the first two writes stayed zero
        [0xab, 1000, 3000],
        [0x00, 4000, 65_535 - 4000],
        [0x3d, 65_535, 131_073],
        [0x77, 4 * MiB, 4096],
        [0x00, 4 * MiB + 4096, 64 * KiB],
        [0x77, 4 * MiB + 4096 + 64 * KiB, MiB - 4096 - 64 * KiB],
        [0x99, 8 * MiB + 64 * KiB, 64 * KiB], // beyond the discarded range
        [0x00, size - 8196, 1],
        [0x42, size - 8195, 1],
        [0x00, size - 8194, 8194 - 5000], // between the single byte and the last write
        [0xe7, size - 5000, 5000],
      ];
      // (sanity of the hand-written ranges above)
      for (const [p, o, l] of reads) expect(model.subarray(o, o + l).equals(Buffer.alloc(l, p))).toBe(true);
      const readCmds = reads.flatMap(([p, o, l]) => ['-c', `read -P 0x${p.toString(16)} ${o} ${l}`]);
      const r = await run('qemu-io', ['-f', 'raw', '-r', ...readCmds, ex.unixUri]);
      expect(r.stdout + r.stderr).not.toContain('verification failed');
      expect(r.code).toBe(0);
      for (const [, o, l] of reads) expect(r.stdout).toContain(`read ${l}/${l} bytes at offset ${o}`);

      // The pattern check is real: a wrong expectation fails.
      const neg = await run('qemu-io', ['-f', 'raw', '-r', '-c', 'read -P 0xab 0 512', ex.unixUri]);
      expect(neg.code).not.toBe(0);
      expect(neg.stdout + neg.stderr).toContain('Pattern verification failed');

      // The backing file holds exactly the model (outside the discarded range).
      const onDisk = await readFile(ex.volume);
      expect(onDisk.length).toBe(size);
      for (const [o, l] of unspecified) onDisk.copy(model, o, o, o + l);
      expect(sha256(onDisk)).toBe(sha256(model));

      // qemu-img compare: identical to the backing file, different from an empty volume.
      const same = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', ex.tcpUri, ex.volume]);
      expect(same.stdout).toContain('Images are identical');
      expect(same.code).toBe(0);
      const blank = join(dir, 'blank.img');
      await sparseFile(blank, size);
      const differ = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', ex.unixUri, blank]);
      expect(differ.code).toBe(1);

      // qemu-img convert the export to a local raw file: same bytes as the volume.
      const copy = join(dir, 'copy.raw');
      await runOk('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', ex.unixUri, copy]);
      expect((await stat(copy)).size).toBe(size);
      expect(await sha256File(copy)).toBe(sha256(onDisk));

      const st = await sc.status('qio');
      expect(st.bytesWritten).toBeGreaterThanOrEqual(writes.reduce((a, [, , l]) => a + l, 0));
      expect(st.dirtyBlocks).toBeGreaterThan(0);
    },
    TEST_TIMEOUT,
  );

  it(
    'nbdinfo reports the export; nbdcopy round-trips 32 MiB of random data',
    async () => {
      const dir = await tempDir();
      const { sc } = await startSidecar(join(dir, 'state'));
      const size = 32 * MiB;
      const ex = await createPair(sc, dir, 'copy', size);

      const info = JSON.parse(await runOk('nbdinfo', ['--json', ex.tcpUri])) as { exports: Record<string, unknown>[] };
      expect(info.exports).toHaveLength(1);
      const e = info.exports[0]!;
      expect(e['export-name']).toBe('copy');
      expect(e['export-size']).toBe(size);
      expect(e).toMatchObject({ is_read_only: false, can_flush: true, can_fua: true, can_multi_conn: true, can_zero: true, can_trim: true, block_size_maximum: 32 * MiB });
      expect((await runOk('nbdinfo', ['--size', ex.unixUri])).trim()).toBe(String(size));

      const list = JSON.parse(await runOk('nbdinfo', ['--list', '--json', `nbd://127.0.0.1:${ex.port}`])) as { exports: { 'export-name': string }[] };
      expect(list.exports.map((x) => x['export-name'])).toEqual(['copy']);
      expect(await runOk('nbdinfo', ['--list', `nbd://127.0.0.1:${ex.port}`])).toContain('export="copy"');

      // Fill the export with junk first, so zero regions of the source must really be zeroed.
      const junk = join(dir, 'junk.bin');
      await writeFile(junk, randomBytes(size));
      await runOk('nbdcopy', [junk, ex.tcpUri]);
      expect(await sha256File(ex.volume)).toBe(await sha256File(junk));

      // The source: random data with a hole (8-12 MiB) and a written run of zeroes (20-21 MiB).
      const src = join(dir, 'src.bin');
      const fh = await open(src, 'w');
      try {
        await fh.truncate(size);
        await fh.write(randomBytes(8 * MiB), 0, 8 * MiB, 0);
        await fh.write(randomBytes(8 * MiB), 0, 8 * MiB, 12 * MiB);
        await fh.write(Buffer.alloc(MiB), 0, MiB, 20 * MiB);
        await fh.write(randomBytes(11 * MiB), 0, 11 * MiB, 21 * MiB);
      } finally {
        await fh.close();
      }
      expect((await stat(src)).size).toBe(size);
      const want = await sha256File(src);

      await runOk('nbdcopy', ['--flush', src, ex.tcpUri]);
      expect(await sha256File(ex.volume)).toBe(want);

      const out = join(dir, 'out.bin');
      await runOk('nbdcopy', [ex.unixUri, out]);
      expect((await stat(out)).size).toBe(size);
      expect(await sha256File(out)).toBe(want);

      // The copy went through the sidecar's write path, tracked block by block.
      const st = await sc.status('copy');
      expect(st.bytesWritten).toBeGreaterThanOrEqual(size);
      expect(st.dirtyBlocks).toBe(size / st.blockSize);
    },
    TEST_TIMEOUT,
  );

  it(
    'fio verify jobs through the NBD engine pass and are tracked as dirty',
    async () => {
      const dir = await tempDir();
      const { sc } = await startSidecar(join(dir, 'state'));
      const size = 64 * MiB;
      const ex = await createPair(sc, dir, 'fio', size);

      interface FioJob {
        jobname: string;
        error: number;
        read: { io_bytes: number; total_ios: number };
        write: { io_bytes: number; total_ios: number };
      }
      let runs = 0;
      const fio = async (name: string, args: string[]): Promise<FioJob[]> => {
        const output = join(dir, `fio-${++runs}.json`);
        // Engine options (--uri) are only known after --ioengine, which belongs to a job (--name).
        const r = await run('fio', ['--output-format=json', `--output=${output}`, `--name=${name}`, '--ioengine=nbd', `--uri=${ex.tcpUri}`, '--verify_state_save=0', ...args], { cwd: dir });
        const text = await readFile(output, 'utf8').catch(() => '');
        if (r.code !== 0) throw new Error(`fio ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}\n${text}`);
        return (JSON.parse(text) as { jobs: FioJob[] }).jobs;
      };

      // Random 4 KiB writes covering the whole volume, then every block read back and checked.
      const j1 = await fio('v', ['--rw=randwrite', '--bs=4k', '--iodepth=16', `--size=${size}`, '--verify=crc32c', '--do_verify=1', '--verify_fatal=1']);
      expect(j1).toHaveLength(1);
      expect(j1[0]!.error).toBe(0);
      expect(j1[0]!.write.io_bytes).toBe(size);
      expect(j1[0]!.read.io_bytes).toBe(size); // the verify pass read everything

      // Two connections at once (multi-conn), each on its half, mixed sizes, reads and writes.
      const j2 = await fio('mix', [
        '--rw=randrw',
        '--bsrange=4k-256k',
        '--iodepth=8',
        '--numjobs=2',
        `--size=${size / 2}`,
        `--offset_increment=${size / 2}`,
        '--verify=md5',
        '--do_verify=1',
        '--verify_fatal=1',
      ]);
      expect(j2).toHaveLength(2);
      for (const j of j2) {
        expect(j.error).toBe(0);
        expect(j.write.io_bytes).toBeGreaterThan(0);
        expect(j.read.io_bytes).toBeGreaterThan(0);
      }

      // Unaligned sequential writes with a verify pass.
      const j3 = await fio('odd', ['--rw=write', '--bs=3584', '--ba=512', '--offset=1536', `--size=${8 * MiB}`, '--iodepth=4', '--verify=sha256', '--do_verify=1', '--verify_fatal=1']);
      expect(j3[0]!.error).toBe(0);
      expect(j3[0]!.write.io_bytes).toBeGreaterThan(0);

      const st = await sc.status('fio');
      const totalWritten = [...j1, ...j2, ...j3].reduce((a, j) => a + j.write.io_bytes, 0);
      expect(st.bytesWritten).toBe(totalWritten);
      expect(st.dirtyBlocks).toBeGreaterThan(0);
      expect(st.dirtyBlocks).toBe(size / st.blockSize); // job 1 wrote every block
      expect(st.outOfSyncBytes).toBe(size);
      await waitFor('fio connections to close', async () => (await sc.status('fio')).nbdConnections === 0);
    },
    TEST_TIMEOUT,
  );

  it(
    'ext4 through nbdfuse + loop survives fsck and a sidecar restart byte for byte',
    async () => {
      const dir = await tempDir();
      const stateDir = join(dir, 'state');
      const first = await startSidecar(stateDir);
      const size = 512 * MiB;
      const ex = await createPair(first.sc, dir, 'fs', size);
      const fuseDir = join(dir, 'fuse');
      const mnt = join(dir, 'mnt');

      // mkfs and populate through the export.
      const expected = new Map<string, string>();
      {
        const fuse = await attachFuse(track, ex.tcpUri, fuseDir, size);
        const loop = await attachLoop(track, fuse.file);
        await runOk('mkfs.ext4', ['-q', '-F', loop.dev]);
        const umount = await mountExt4(track, loop.dev, mnt);
        const files: [string, Buffer][] = [
          ['big-a.bin', randomBytes(5 * MiB)],
          ['big-b.bin', randomBytes(3 * MiB + 123)],
          ['empty', Buffer.alloc(0)],
        ];
        for (let d = 0; d < 8; d++) {
          for (let f = 0; f < 25; f++) files.push([join('tree', `d${d}`, `sub${f % 3}`, `f${f}.dat`), randomBytes(1 + ((d * 7919 + f * 104_729) % 20_000))]);
        }
        for (const [rel, data] of files) {
          await mkdir(join(mnt, rel, '..'), { recursive: true });
          await writeFile(join(mnt, rel), data);
          expected.set(rel, sha256(data));
        }
        await runOk('sync', ['-f', mnt]);
        // What the kernel reads back (possibly from cache) matches what was written.
        expect(await hashTree(mnt)).toEqual(expected);
        await umount();
        await loop.detach();
        await fuse.detach();
      }

      // fsck through the export, on a fresh attachment (nothing cached).
      {
        const fuse = await attachFuse(track, ex.tcpUri, fuseDir, size, true);
        const loop = await attachLoop(track, fuse.file, true);
        const r = await run('fsck.ext4', ['-n', '-f', loop.dev]);
        if (r.code !== 0) throw new Error(`fsck.ext4 -n -f exited ${r.code}\n${r.stdout}\n${r.stderr}`);
        expect(r.stdout).toMatch(/\d+\/\d+ files/);
        await loop.detach();
        await fuse.detach();
      }

      const before = await first.sc.status('fs');
      expect(before.dirtyBlocks).toBeGreaterThan(0);
      expect(before.bytesWritten).toBeGreaterThan(8 * MiB);

      // Graceful restart: pairs are restored from the state dir with their dirty bitmap.
      await first.stop();
      expect(first.sc.child.exitCode).toBe(0);
      const second = await startSidecar(stateDir);
      const list = JSON.parse(await second.sc.cli('pair', 'list', '-o', 'json')) as { name: string; state: string; volumePath: string }[];
      expect(list).toEqual([expect.objectContaining({ name: 'fs', state: 'Standalone', volumePath: ex.volume })]);
      const after = await second.sc.status('fs');
      expect(after.lastError).toBe('');
      expect(after.volumeBytes).toBe(size);
      expect(after.dirtyBlocks).toBe(before.dirtyBlocks);
      expect(after.outOfSyncBytes).toBe(before.outOfSyncBytes);
      const ex2 = await exportOf(second.sc, 'fs', ex.volume);
      expect(ex2.socket).toBe(ex.socket);

      // Remount through the restarted sidecar (over the Unix socket this time): same files, same bytes.
      {
        const fuse = await attachFuse(track, ex2.unixUri, fuseDir, size, true);
        const loop = await attachLoop(track, fuse.file, true);
        const umount = await mountExt4(track, loop.dev, mnt, true);
        const got = await hashTree(mnt);
        expect([...got.keys()].sort()).toEqual([...expected.keys()].sort());
        expect(got).toEqual(expected);
        await umount();
        await loop.detach();
        await fuse.detach();
      }
      // A read-only mount and reads change nothing.
      expect((await second.sc.status('fs')).dirtyBlocks).toBe(before.dirtyBlocks);
    },
    TEST_TIMEOUT,
  );
});
