import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import winston from 'winston';
import { InvalidArgumentError } from '../errors.js';
import { PathPolicy } from '../paths/path-policy.js';
import { DirtyTracker } from '../bitmap/dirty-tracker.js';
import { PairManager } from './pair-manager.js';

const logger = winston.createLogger({ silent: true });
let dir = '';
let managers: PairManager[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bm-pm-'));
});
afterEach(async () => {
  for (const m of managers) await m.close();
  managers = [];
  await rm(dir, { recursive: true, force: true });
});

/** Volumes live beside the state dir, in the test's temp dir; `prefixes` narrows that. */
function manager(prefixes: string[] = [dir]): PairManager {
  const stateDir = join(dir, 'state');
  const paths = new PathPolicy({ volumePrefixes: [stateDir, ...prefixes], runDir: join(stateDir, 'run') });
  const m = new PairManager({ stateDir, logger, paths, restartDelay: { initialMs: 10, maxMs: 40 } });
  managers.push(m);
  return m;
}

async function volumeFile(name: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, '');
  await truncate(path, 1 << 20);
  return path;
}

async function until<T>(what: string, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('PairManager', () => {
  it('a refused volume leaves no pair state behind', async () => {
    const m = manager();
    await m.start();
    await mkdir(join(dir, 'globalmount'));
    await expect(m.create({ name: 'p', volumePath: join(dir, 'globalmount'), role: 'primary', nbdListen: '127.0.0.1:0' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(m.list()).toEqual([]);
    expect(await readdir(join(dir, 'state', 'pairs')).catch(() => [])).toEqual([]);
  });

  it('a pair that cannot be restored is Retrying with its error, and starts once its volume is back', async () => {
    const path = await volumeFile('v.img');
    const first = manager();
    await first.start();
    await first.create({ name: 'p', volumePath: path, role: 'primary', nbdListen: '127.0.0.1:0' });
    await first.close();
    await rm(path);

    const m = manager();
    await m.start();
    const failing = await until('a second attempt', () => {
      const s = m.get('p');
      return s.retries >= 2 ? s : undefined;
    });
    expect(failing).toMatchObject({ state: 'Retrying', lastError: expect.stringContaining(`cannot open volume ${path}`) });
    await volumeFile('v.img');
    const running = await until('the pair to start', () => {
      const s = m.get('p');
      return s.state === 'Standalone' ? s : undefined;
    });
    expect(running).toMatchObject({ lastError: '', retries: 0, volumeBytes: 1 << 20 });
  });

  it('a deleted pair is not started again', async () => {
    const path = await volumeFile('v.img');
    const first = manager();
    await first.start();
    await first.create({ name: 'p', volumePath: path, role: 'primary', nbdListen: '127.0.0.1:0' });
    await first.close();
    await rm(path);
    const m = manager();
    await m.start();
    await m.delete('p');
    await volumeFile('v.img');
    // Nothing to poll for: the absence of a start, over several restart periods (10-40 ms).
    await new Promise((r) => setTimeout(r, 200));
    expect(m.list()).toEqual([]);
    expect(await readdir(join(dir, 'state', 'pairs'))).toEqual([]);
  });
});

describe('PairManager: a secondary announcing itself', () => {
  it('TLS files that cannot be read cost the announcement only: the pair is created, restarts and is served', async () => {
    // The site's certificate gone (say, mid-rotation) when a secondary tells its primary
    // it is ready: the hint is lost, the pair is not (its volume held, its state kept).
    const stateDir = join(dir, 'state');
    const paths = new PathPolicy({ volumePrefixes: [dir], runDir: join(stateDir, 'run') });
    const missing = { cert: join(dir, 'gone.crt'), key: join(dir, 'gone.key'), ca: join(dir, 'gone-ca.crt') };
    const m = new PairManager({ stateDir, logger, paths, tls: missing, peerTrustCa: 'remote CA', restartDelay: { initialMs: 10, maxMs: 40 } });
    managers.push(m);
    await m.start();
    expect(() => m.peerPortServing()).not.toThrow();
    const path = await volumeFile('v.img');
    const created = await m.create({ name: 's', volumePath: path, role: 'secondary', peer: '127.0.0.1:1' });
    expect(created).toMatchObject({ name: 's', role: 'secondary' });
    expect(await readdir(join(stateDir, 'pairs'))).toEqual(['s']);
    await m.close();
    // Restored at the next start, and announced once the peer port serves.
    const again = new PairManager({ stateDir, logger, paths, tls: missing, peerTrustCa: 'remote CA', restartDelay: { initialMs: 10, maxMs: 40 } });
    managers.push(again);
    await again.start();
    expect(() => again.peerPortServing()).not.toThrow();
    expect(again.get('s')).toMatchObject({ role: 'secondary', lastError: '' });
  });
});

describe('PairManager: demotions', () => {
  it('one at a time: a second demotion asked while the first waits never sees the export unfenced by the first one giving up', async () => {
    const path = await volumeFile('v.img');
    const m = manager();
    await m.start();
    // A primary whose secondary never answers: a demotion cannot ship, and gives up.
    await m.create({ name: 'p', volumePath: path, role: 'primary', peer: '127.0.0.1:1', nbdListen: '127.0.0.1:0' });
    const first = m.demote('p', { timeoutMs: 300 });
    const second = m.demote('p', { timeoutMs: 1500 });
    await expect(first).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    // The first gave up; the second runs now, fenced until it gives up in turn.
    await new Promise((res) => setTimeout(res, 300));
    expect(m.get('p')).toMatchObject({ role: 'primary', fenced: true });
    await expect(second).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    expect(m.get('p')).toMatchObject({ role: 'primary', fenced: false });
    // With force it goes through, after any other.
    await expect(m.demote('p', { force: true })).resolves.toMatchObject({ role: 'secondary' });
  });
});

describe('PairManager: restored pairs under a narrower path policy', () => {
  it('a restored pair whose volume is no longer allowed is never opened: Retrying with the refusal, and deletable', async () => {
    const path = await volumeFile('v.img');
    const first = manager();
    await first.start();
    await first.create({ name: 'p', volumePath: path, role: 'primary', nbdListen: '127.0.0.1:0' });
    await first.close();
    // The sidecar restarted without --allow-volume-prefix for the test's dir.
    const narrower = manager([]);
    await narrower.start();
    const st = narrower.get('p');
    expect(st.state).toBe('Retrying');
    expect(st.lastError).toMatch(/is not allowed: .*--allow-volume-prefix/);
    expect(st.nbdAddress).toBe('');
    // Retried (the refusal is cheap: nothing opened), never started.
    await until('two more attempts', () => (narrower.get('p').retries >= 3 ? true : undefined));
    expect(narrower.get('p').state).toBe('Retrying');
    await narrower.delete('p');
    expect(narrower.list()).toEqual([]);
  });
});

describe('PairManager: NBD sockets named by the operator', () => {
  it('places a bare socket name in the run directory only root can enter, and refuses paths in disguise', async () => {
    const volume = await volumeFile('vol.img');
    const pairs = manager();
    await pairs.start();
    const p = await pairs.create({ name: 'apps.db', volumePath: volume, role: 'primary', nbdSocket: 'apps.db.sock' });
    const run = join(dir, 'state', 'run');
    expect(p.nbdSocket).toBe(join(run, 'apps.db.sock'));
    expect((await stat(p.nbdSocket)).isSocket()).toBe(true);
    expect((await stat(run)).mode & 0o777).toBe(0o700);
    for (const bad of ['../x.sock', 'a/b.sock', '..', '.', 'x y']) {
      await expect(pairs.create({ name: 'other', volumePath: volume, role: 'primary', nbdSocket: bad })).rejects.toThrow(InvalidArgumentError);
    }
    expect(pairs.list().map((x) => x.name)).toEqual(['apps.db']);
  });

  it("a pair created with its volume's lineage continues it; deleting answers the lineage to keep, and a restart never goes back to it", async () => {
    const path = await volumeFile('v.img');
    const m = manager();
    await m.start();
    const created = await m.create({ name: 's', volumePath: path, role: 'secondary' }, { lineage: { role: 'secondary', generation: 'g2', history: ['g1'], consistent: false } });
    expect({ generation: created.generation, history: created.historyGenerations, consistent: created.consistent }).toEqual({ generation: 'g2', history: ['g1'], consistent: false });
    await m.close();
    // Restored from its own metadata, not from the lineage it was created with.
    const again = manager();
    await again.start();
    expect(again.get('s')).toMatchObject({ generation: 'g2', consistent: false });
    expect(await again.delete('s')).toEqual({ role: 'secondary', generation: 'g2', history: ['g1'], consistent: false });
    // A pair that never held a complete image has nothing to continue.
    await again.create({ name: 'fresh', volumePath: path, role: 'secondary' });
    expect(await again.delete('fresh')).toBeNull();
    // A primary's lineage, refused over a volume that was mid-resync: nothing left behind.
    await expect(again.create({ name: 'p', volumePath: path, role: 'primary' }, { lineage: { role: 'secondary', generation: 'g2', history: [], consistent: false } })).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    expect(await readdir(join(dir, 'state', 'pairs'))).toEqual([]);
  });

  it("a secondary deleted while it cannot run answers a primary's lineage when its dirty log on disk holds its own writes", async () => {
    const lineage = { role: 'secondary' as const, generation: 'g2', history: ['g1'], consistent: true };
    const m = manager();
    await m.start();
    const own = await volumeFile('own.img');
    const plain = await volumeFile('plain.img');
    await m.create({ name: 'own', volumePath: own, role: 'secondary' }, { lineage });
    await m.create({ name: 'plain', volumePath: plain, role: 'secondary' }, { lineage });
    await m.close();
    // Writes it made as a primary its peer never confirmed, kept in its dirty log (a demoted primary's).
    const t = await DirtyTracker.open({ path: join(dir, 'state', 'pairs', 'own', 'dirty.log'), volumeBytes: 1 << 20, blockSize: 65536, sweepIntervalMs: 0 });
    await t.beforeWrite(0, 4096);
    await t.checkpoint();
    await t.close();
    // Their volumes gone: neither starts again, and both are deleted so.
    await rm(own);
    await rm(plain);
    const again = manager();
    await again.start();
    expect(again.get('own').lastError).not.toBe('');
    expect(await again.delete('own')).toEqual({ ...lineage, role: 'primary' });
    expect(await again.delete('plain')).toEqual(lineage);
  });
});
