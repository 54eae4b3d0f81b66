import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NbdTestClient } from './helpers/nbd-test-client.js';
import { run, runOk } from './helpers/run-cli.js';
import { SidecarProcess } from './helpers/sidecar-process.js';

const MiB = 1 << 20;
const TiB = 1024 * 1024 * MiB;
const NBD_ENOSPC = 28;

/** Fills the filesystem at `dir` with a file until it is full; returns the file. */
async function fill(dir: string): Promise<string> {
  const filler = join(dir, 'filler');
  // dd stops with ENOSPC when the tmpfs is full; that is the point.
  await run('dd', ['if=/dev/zero', `of=${filler}`, 'bs=64k'], { timeoutMs: 30_000 });
  return filler;
}

describe('a full disk gets a clear error and loses nothing', () => {
  let dir: string;
  const mounts: string[] = [];
  let sc: SidecarProcess | undefined;

  const tmpfs = async (name: string, size: string): Promise<string> => {
    const m = join(dir, name);
    mkdirSync(m);
    await runOk('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', m]);
    mounts.push(m);
    return m;
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'bm-full-'));
  });

  afterAll(async () => {
    await sc?.kill9();
    for (const m of mounts) await run('umount', ['-l', m]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('the volume filesystem runs full: writes fail with ENOSPC, earlier data and the sidecar survive', async () => {
    const vdir = await tmpfs('vol', '8m');
    const volume = join(vdir, 'vol.img');
    writeFileSync(volume, '');
    truncateSync(volume, 64 * MiB); // sparse: larger than the filesystem holding it
    sc = await SidecarProcess.start({ stateDir: join(dir, 'state1') });
    await sc.cli('pair', 'create', 'full', '--volume', volume, '--role', 'primary', '--nbd-listen', '127.0.0.1:0');
    const c = await NbdTestClient.connectExport({ tcp: (await sc.status('full')).nbdAddress }, 'full');
    const first = Buffer.alloc(MiB, 0x5a);
    expect((await c.write(0, first)).error).toBe(0);
    const errors: number[] = [];
    for (let off = MiB; off < 32 * MiB; off += MiB) errors.push((await c.write(off, Buffer.alloc(MiB, 0x33))).error);
    expect(errors).toContain(NBD_ENOSPC);
    expect(errors.every((e) => e === 0 || e === NBD_ENOSPC)).toBe(true);
    // Same connection, still serving; the first megabyte is intact.
    const r = await c.read(0, MiB);
    expect(r.error).toBe(0);
    expect(r.data.equals(first)).toBe(true);
    await c.disconnect();
    expect((await sc.status('full')).state).toBe('Standalone');
    expect((await sc.stop()).code).toBe(0);
    sc = undefined;
  });

  it('the state filesystem runs full: a write that cannot be recorded is refused and never reaches the volume', async () => {
    const sdir = await tmpfs('state', '1m');
    sc = await SidecarProcess.start({ stateDir: join(sdir, 'st') });
    // The dirty log is written whole when a pair is created (every page checksummed): a
    // 2 TiB volume's 4 MiB log does not fit, and the pair is refused with a clear error.
    const big = join(dir, 'vol-big.img');
    writeFileSync(big, '');
    truncateSync(big, 2 * TiB);
    await expect(sc.cli('pair', 'create', 'big', '--volume', big, '--role', 'primary', '--nbd-listen', '127.0.0.1:0')).rejects.toThrow(/no room for the dirty log/);
    // 64 GiB sparse: a 140 KiB log.
    const volume = join(dir, 'vol2.img');
    writeFileSync(volume, '');
    truncateSync(volume, 64 * 1024 * MiB);
    const far = 48 * 1024 * MiB;
    await sc.cli('pair', 'create', 'rec', '--volume', volume, '--role', 'primary', '--nbd-listen', '127.0.0.1:0');
    const c = await NbdTestClient.connectExport({ tcp: (await sc.status('rec')).nbdAddress }, 'rec');
    // Extent 0 becomes hot while there is room.
    expect((await c.write(0, Buffer.alloc(4096, 1))).error).toBe(0);
    // With every page allocated, rewriting the intent page needs no room here; on a
    // copy-on-write filesystem (btrfs, ZFS) every overwrite does. A hole punched into
    // the intent page (file page 1) makes this filesystem need room for it too.
    await runOk('fallocate', ['--punch-hole', '--offset', '4096', '--length', '4096', join(sdir, 'st', 'pairs', 'rec', 'dirty.log')]);
    const filler = await fill(sdir);
    // A cold extent needs its intent bit written: no room, so the write must fail...
    const refused = await c.write(far, Buffer.alloc(4096, 2));
    expect(refused.error).not.toBe(0);
    // ...and its data must not be on the volume (it would be an untracked change).
    const after = await c.read(far, 4096);
    expect(after.data.equals(Buffer.alloc(4096))).toBe(true);
    // A hot extent still takes writes: its record is already durable.
    expect((await c.write(8192, Buffer.alloc(4096, 3))).error).toBe(0);
    // Room again: the same write now succeeds and is tracked.
    unlinkSync(filler);
    expect((await c.write(far, Buffer.alloc(4096, 2))).error).toBe(0);
    const st = await sc.status('rec');
    expect(st.dirtyBlocks).toBe(2);
    await c.disconnect();
    expect((await sc.stop()).code).toBe(0);
    sc = undefined;
  });
});
