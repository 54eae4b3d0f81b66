import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { sha256File, sparseFile } from './helpers/replication-harness.js';
import { run, runOk } from './helpers/run-cli.js';
import { SidecarProcess } from './helpers/sidecar-process.js';
import { waitFor } from './helpers/wait-for.js';

// Zero runs are applied without writing zeroes. A secondary whose volume is a 128 MiB
// sparse file on a 96 MiB tmpfs, holding 80 MiB of stale data, takes the initial copy of
// a mostly empty primary: zeroing the stale data must free it, not keep it allocated (the
// copy would otherwise run out of space at the primary's data). Then a real NBD client
// zeroes and discards large ranges on the primary: the primary's blocks are freed, and
// the secondary reads zeroes there too.

const MiB = 1024 * 1024;
const VOLUME = 128 * MiB;
const SMALL_FS = 96 * MiB;
const STALE = 80 * MiB;
const PAIR = 'sparse';
const TEST_TIMEOUT = 120_000;

const cleanup = new CleanupStack();
const track = cleanup.track.bind(cleanup);
afterEach(() => cleanup.releaseAll(), 60_000);

let root = '';
let small = '';
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'bm-sparse-'));
  small = join(root, 'small');
  await mkdir(small);
  await runOk('mount', ['-t', 'tmpfs', '-o', `size=${SMALL_FS},mode=0700`, 'bm-sparse', small]);
});
afterAll(async () => {
  if (small !== '') await run('umount', [small]);
  if (root !== '') await rm(root, { recursive: true, force: true });
});

async function startSidecar(stateDir: string): Promise<SidecarProcess> {
  const sc = await SidecarProcess.start({ stateDir });
  track(`sidecar pid ${sc.child.pid}`, async () => {
    const exited = await Promise.race([sc.stop(), new Promise<null>((r) => setTimeout(() => r(null), 15_000).unref())]);
    if (exited === null) await sc.kill9();
  });
  return sc;
}

/** Writes `bytes` of `fill` (or random data) at `offset`, a MiB at a time. */
async function fillRange(path: string, offset: number, bytes: number, fill?: number): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    for (let at = 0; at < bytes; at += MiB) await fh.write(fill === undefined ? randomBytes(MiB) : Buffer.alloc(MiB, fill), 0, MiB, offset + at);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

const allocated = async (path: string): Promise<number> => (await stat(path)).blocks * 512;

async function readsZero(path: string, offset: number, bytes: number): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    await fh.read(buf, 0, bytes, offset);
    return buf.every((b) => b === 0);
  } finally {
    await fh.close();
  }
}

describe.each(['sync', 'async'])('zero runs on a sparse secondary (%s)', (mode) => {
  it(
    'the initial copy punches out stale data on a secondary that could not hold it all; NBD WRITE_ZEROES and TRIM free blocks on both sides',
    async () => {
      const dir = join(root, `case-${mode}`);
      // Caught up: InSync in sync mode; an async pair stays Replicating.
      const current = mode === 'sync' ? 'InSync' : 'Replicating';
      await mkdir(dir);
      track(`dir ${dir}`, () => rm(dir, { recursive: true, force: true }));
      const aImg = join(dir, 'A.img');
      const bImg = join(small, 'B.img');
      track(`volume ${bImg}`, () => rm(bImg, { force: true }));
      // A: 24 MiB of data in a sparse 128 MiB volume, the last of it past B's stale data.
      await sparseFile(aImg, VOLUME);
      await fillRange(aImg, 8 * MiB, 8 * MiB);
      await fillRange(aImg, 96 * MiB, 16 * MiB);
      // B: 80 MiB of stale data that the copy must turn into zeroes. Written as zeroes,
      // 80 + 16 MiB past it would not fit in 96 MiB.
      await sparseFile(bImg, VOLUME);
      await fillRange(bImg, 0, STALE, 0x5a);
      expect(await allocated(bImg)).toBeGreaterThanOrEqual(STALE);

      const b = await startSidecar(join(dir, 'state-b'));
      await b.cli('pair', 'create', PAIR, '--volume', bImg, '--role', 'secondary');
      const a = await startSidecar(join(dir, 'state-a'));
      await a.cli('pair', 'create', PAIR, '--volume', aImg, '--role', 'primary', '--peer', b.addresses.peer, '--nbd-listen', '127.0.0.1:0', '--mode', mode, ...(mode === 'async' ? ['--group-interval-ms', '100'] : []));
      const inSync = await a.waitForPair(PAIR, 'initial copy in sync', (s) => s.state === current && s.outOfSyncBytes === 0, 60_000);
      expect(inSync.lastError).toBe('');
      await b.waitForPair(PAIR, 'secondary caught up', (s) => s.state === current, 20_000);
      expect((await b.status(PAIR)).lastError).not.toMatch(/ENOSPC|no space/i);
      expect(await sha256File(bImg)).toBe(await sha256File(aImg));
      // Only A's 24 MiB of data (and a few partial blocks) are allocated on B.
      const bAfterCopy = await allocated(bImg);
      expect(bAfterCopy).toBeLessThan(24 * MiB + 4 * MiB);

      // A real NBD client: WRITE_ZEROES that may unmap over the first data range, TRIM
      // over the second.
      const uri = `nbd://${inSync.nbdAddress}/${PAIR}`;
      const aBefore = await allocated(aImg);
      expect(aBefore).toBeGreaterThanOrEqual(24 * MiB);
      await runOk('qemu-io', ['-f', 'raw', '-c', `write -z -u ${8 * MiB} ${8 * MiB}`, '-c', `discard ${96 * MiB} ${16 * MiB}`, '-c', 'flush', uri]);
      expect(await readsZero(aImg, 8 * MiB, 8 * MiB)).toBe(true);
      expect(await readsZero(aImg, 96 * MiB, 16 * MiB)).toBe(true);
      expect(await allocated(aImg)).toBeLessThan(aBefore - 20 * MiB);
      // Synchronous mode: acknowledged means mirrored; async: the next group brings it.
      await waitFor('the zeroes on the secondary', async () => (await readsZero(bImg, 8 * MiB, 8 * MiB)) && (await readsZero(bImg, 96 * MiB, 16 * MiB)), { timeoutMs: 30_000, intervalMs: 100 });
      if (mode === 'sync') expect((await a.status(PAIR)).outOfSyncBytes).toBe(0);
      const s = await a.waitForPair(PAIR, 'in sync after the zeroes', (x) => x.state === current && x.outOfSyncBytes === 0, 30_000);
      expect(s.lastError).toBe('');
      expect(await allocated(bImg)).toBeLessThan(bAfterCopy - 20 * MiB);
      expect(await sha256File(bImg)).toBe(await sha256File(aImg));
    },
    TEST_TIMEOUT,
  );
});
