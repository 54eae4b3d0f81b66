import { afterEach, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GroupJournal } from '../sidecar/replication/secondary/group-journal.js';
import { Volume } from '../sidecar/volume/volume.js';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { mountCrashFs } from './helpers/crash-fs.js';
import { NbdTestClient } from './helpers/nbd-test-client.js';
import { sha256File } from './helpers/replication-harness.js';
import { SidecarProcess } from './helpers/sidecar-process.js';

// Power cuts (blockmirror-crashfs: everything not fsync'd is lost) at the moments each
// hole of issue 15 left open. Each of these failed before its fix.

const MiB = 1 << 20;
const cleanup = new CleanupStack();
afterEach(() => cleanup.releaseAll(), 60_000);

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bm-power-'));
  cleanup.track(`temp ${dir}`, () => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function sparse(path: string, bytes: number): Promise<void> {
  const fh = await open(path, 'w');
  await fh.truncate(bytes);
  await fh.close();
}

async function startSidecar(stateDir: string, args: string[] = []): Promise<SidecarProcess> {
  const sc = await SidecarProcess.start({ stateDir, args });
  cleanup.track(`sidecar ${sc.child.pid}`, () => sc.kill9());
  return sc;
}

describe('power cuts at the moments issue 15 found unprotected', () => {
  it('a sealed journal group is still there after a power cut (its directory entry was synced)', async () => {
    const dir = await tempDir();
    const fs = await mountCrashFs(dir, 'state', cleanup);
    const img = join(fs.dir, 'v.img');
    await sparse(img, 4 * MiB);
    await fs.syncAll();
    const volume = await Volume.open(img);
    const journal = await GroupJournal.open(join(fs.dir, 'journal'), volume);
    await fs.syncAll(); // the journal directory itself exists durably; its files are the question
    await journal.stage(42, [{ offset: 0, length: 4096, zero: false, data: Buffer.alloc(4096, 7) }]);
    await journal.seal(42, 1);
    await journal.close();
    await volume.close();
    // Everything unsynced is lost — but not the group a commit record may point at.
    await fs.cut({ mode: 'drop' });
    const v2 = await Volume.open(img);
    const again = await GroupJournal.open(join(fs.dir, 'journal'), v2);
    try {
      expect(await again.groupsOnDisk()).toEqual([42]);
      expect(await again.verify(42)).toEqual({ records: 1, bytes: 4096 });
    } finally {
      await again.close();
      await v2.close();
    }
  });

  it('async: the initial copy survives a power cut of the secondary right after it completed', async () => {
    const dir = await tempDir();
    const fs = await mountCrashFs(dir, 'b', cleanup);
    const imgA = join(dir, 'a.img');
    const imgB = join(fs.dir, 'b.img');
    await sparse(imgA, 16 * MiB);
    await sparse(imgB, 16 * MiB);
    const fh = await open(imgA, 'r+');
    await fh.write(randomBytes(6 * MiB), 0, 6 * MiB, MiB);
    await fh.close();
    await fs.syncAll();
    const bState = join(fs.dir, 'state');
    const b = await startSidecar(bState);
    await b.cli('pair', 'create', 'db', '--volume', imgB, '--role', 'secondary');
    const a = await startSidecar(join(dir, 'state-a'));
    await a.cli('pair', 'create', 'db', '--volume', imgA, '--role', 'primary', '--mode', 'async', '--peer', b.addresses.peer, '--group-interval-ms', '200');
    await a.waitForPair('db', 'the initial copy done', (s) => s.state === 'Replicating' && s.outOfSyncBytes === 0);
    // The primary has forgotten every block: only the secondary's disk holds the copy now.
    expect((await a.rpcStatus('db')).dirtyBlocks).toBe(0);
    const peer = b.addresses.peer;
    await b.kill9();
    await fs.cut({ mode: 'drop' });
    await startSidecar(bState, ['--peer-listen', peer]);
    // Before the fix the copy was lost here, while the secondary's metadata said complete.
    expect(await sha256File(imgB)).toBe(await sha256File(imgA));
    await a.waitForPair('db', 'replicating again', (s) => s.state === 'Replicating' && s.outOfSyncBytes === 0);
  });

  it("a primary's dirty log survives a power cut right after the pair was created", async () => {
    const dir = await tempDir();
    const fs = await mountCrashFs(dir, 'a', cleanup);
    const img = join(fs.dir, 'a.img');
    await sparse(img, 16 * MiB);
    await fs.syncAll();
    const state = join(fs.dir, 'state');
    let a = await startSidecar(state);
    await a.cli('pair', 'create', 'db', '--volume', img, '--role', 'primary', '--nbd-listen', '127.0.0.1:0');
    const c = await NbdTestClient.connectExport({ tcp: (await a.rpcStatus('db')).nbdAddress }, 'db');
    cleanup.track('nbd client', async () => c.destroy());
    for (let i = 0; i < 8; i++) expect((await c.write(i * MiB, Buffer.alloc(4096, i + 1), true)).error).toBe(0);
    expect((await a.rpcStatus('db')).dirtyBlocks).toBe(8);
    await a.kill9();
    c.destroy();
    await fs.cut({ mode: 'drop' });
    a = await startSidecar(state);
    // Standalone: nothing was ever confirmed, so all eight blocks are still owed to a peer.
    expect((await a.rpcStatus('db')).dirtyBlocks).toBeGreaterThanOrEqual(8);
  });

  it('a primary whose dirty log is gone (its metadata is not) counts the whole volume out of sync', async () => {
    const dir = await tempDir();
    const img = join(dir, 'a.img');
    await sparse(img, 16 * MiB);
    const state = join(dir, 'state');
    let a = await startSidecar(state);
    await a.cli('pair', 'create', 'db', '--volume', img, '--role', 'primary', '--nbd-listen', '127.0.0.1:0');
    expect((await a.rpcStatus('db')).dirtyBlocks).toBe(0);
    expect((await a.stop()).code).toBe(0);
    await unlink(join(state, 'pairs', 'db', 'dirty.log'));
    a = await startSidecar(state);
    expect((await a.rpcStatus('db')).dirtyBlocks).toBe((16 * MiB) / (64 * 1024));
    expect(a.log.some((l) => l.includes('the dirty log is missing'))).toBe(true);
  });
});
