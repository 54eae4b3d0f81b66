import { afterEach, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { startTrackedSidecar } from './helpers/start-tracked-sidecar.js';
import { FaultProxy } from './helpers/fault-proxy.js';
import { NbdTestClient } from './helpers/nbd-test-client.js';
import { randomFile, sha256File, sparseFile } from './helpers/replication-harness.js';
import { runCli } from './helpers/run-cli.js';
import { SidecarProcess, type PairStatusJson } from './helpers/sidecar-process.js';

// Role changes between two real sidecar processes on loopback (issue 18, the sidecar's
// part): a planned switchover and back, a forced failover with the old primary killed
// and returning, a split brain left alone until one side is told to discard its data, and
// kill -9 during a demotion and right after a promotion's commit. Writes go through the
// NBD export; what was shipped is read from the pairs' status (bytesOnWire: payload bytes
// the primary sent since it became primary).

const KiB = 1024;
const MiB = 1024 * KiB;
const VOLUME = 128 * MiB;
/** Random data at the start of each volume: a full copy would ship it all (12.5 % of the volume). */
const FILLED = 16 * MiB;
const BLOCK = 64 * KiB;
const FIVE_PERCENT = VOLUME / 20;
const PAIR = 'db';
const EPERM = 1;

const cleanup = new CleanupStack();
const track = cleanup.track.bind(cleanup);
afterEach(() => cleanup.releaseAll(), 60_000);

type Mode = 'sync' | 'async';

/** One site: its sidecar, its volume, its state dir. */
interface Site {
  name: string;
  sc: SidecarProcess;
  img: string;
  state: string;
}

function startSidecar(state: string, args: string[] = []): Promise<SidecarProcess> {
  return startTrackedSidecar(cleanup, state, args);
}

async function json(sc: SidecarProcess, ...args: string[]): Promise<PairStatusJson> {
  return JSON.parse(await sc.cli(...args, '-o', 'json')) as PairStatusJson;
}

/** Settled with nothing left to ship: InSync (sync) or Replicating (async), nothing out of sync. */
function settled(mode: Mode): (s: PairStatusJson) => boolean {
  return (s) => s.role === 'primary' && s.state === (mode === 'sync' ? 'InSync' : 'Replicating') && s.outOfSyncBytes === 0;
}

/** The primary is settled and the secondary holds its generation (it was told the resync is complete). */
async function converged(primary: Site, secondary: Site, mode: Mode, what: string): Promise<PairStatusJson> {
  const p = await primary.sc.waitForPair(PAIR, `${what}: ${primary.name} settled`, settled(mode), 60_000);
  const s = await secondary.sc.waitForPair(PAIR, `${what}: ${secondary.name} holds ${primary.name}'s generation`, (x) => x.role === 'secondary' && x.generation !== '' && x.generation === p.generation && x.consistent, 30_000);
  expect(s.dirtyBlocks).toBe(0);
  return p;
}

interface Written {
  offset: number;
  data: Buffer;
}

/**
 * `n` writes of 4 KiB, each in its own tracking block, in [from, to): acknowledged by the
 * export (and flushed) before this returns.
 */
async function writeSome(site: Site, n: number, from: number, to: number): Promise<Written[]> {
  const st = await site.sc.rpcStatus(PAIR);
  const c = await NbdTestClient.connectExport({ tcp: st.nbdAddress }, PAIR);
  try {
    const blocks = new Set<number>();
    while (blocks.size < n) blocks.add(Math.floor(from / BLOCK) + Math.floor(Math.random() * ((to - from) / BLOCK)));
    const out: Written[] = [];
    for (const b of blocks) {
      const w = { offset: b * BLOCK + 4 * KiB * Math.floor(Math.random() * 16), data: randomBytes(4 * KiB) };
      expect((await c.write(w.offset, w.data)).error).toBe(0);
      out.push(w);
    }
    expect((await c.flush()).error).toBe(0);
    return out;
  } finally {
    await c.disconnect();
  }
}

/** Every write is in the image, byte for byte. */
async function expectWrites(img: string, writes: Written[]): Promise<void> {
  const fh = await open(img, 'r');
  try {
    for (const w of writes) {
      const got = Buffer.alloc(w.data.length);
      await fh.read(got, 0, got.length, w.offset);
      expect({ offset: w.offset, same: got.equals(w.data) }).toEqual({ offset: w.offset, same: true });
    }
  } finally {
    await fh.close();
  }
}

async function expectIdentical(a: Site, b: Site): Promise<string> {
  const [ha, hb] = await Promise.all([sha256File(a.img), sha256File(b.img)]);
  expect(hb).toBe(ha);
  return ha;
}

/**
 * The export refuses writes with EPERM; a secondary's refuses reads too (a primary being
 * demoted still serves them).
 */
async function expectFenced(site: Site): Promise<void> {
  const st = await site.sc.rpcStatus(PAIR);
  expect(st.fenced).toBe(true);
  const c = await NbdTestClient.connectExport({ tcp: st.nbdAddress }, PAIR);
  try {
    expect((await c.write(0, Buffer.alloc(4 * KiB, 1))).error).toBe(EPERM);
    expect((await c.read(0, 4 * KiB)).error).toBe(st.role === 'secondary' ? EPERM : 0);
  } finally {
    c.destroy();
  }
}

interface Rig {
  dir: string;
  a: Site;
  b: Site;
  /** A's and B's peer addresses as the other side dials them (through a proxy when asked). */
  toB: FaultProxy | undefined;
  toA: FaultProxy | undefined;
}

/**
 * A primary on A (random data in its first FILLED bytes) and a secondary on B that will
 * dial A once promoted; the initial copy done.
 */
async function startRig(mode: Mode, o: { proxies?: boolean; bArgs?: string[] } = {}): Promise<Rig> {
  const dir = await mkdtemp(join(tmpdir(), 'bm-roles-'));
  track(`temp dir ${dir}`, () => rm(dir, { recursive: true, force: true }));
  const a: Site = { name: 'A', img: join(dir, 'A.img'), state: join(dir, 'state-a'), sc: undefined as unknown as SidecarProcess };
  const b: Site = { name: 'B', img: join(dir, 'B.img'), state: join(dir, 'state-b'), sc: undefined as unknown as SidecarProcess };
  await randomFile(a.img, FILLED);
  await truncate(a.img, VOLUME);
  await sparseFile(b.img, VOLUME);
  a.sc = await startSidecar(a.state);
  b.sc = await startSidecar(b.state, o.bArgs);
  const proxy = async (target: string): Promise<FaultProxy> => {
    const p = await FaultProxy.start({ target });
    track(`proxy ${p.address}`, () => Promise.race([p.close(), new Promise<void>((r) => setTimeout(r, 2000).unref())]));
    return p;
  };
  const toB = o.proxies ? await proxy(b.sc.addresses.peer) : undefined;
  const toA = o.proxies ? await proxy(a.sc.addresses.peer) : undefined;
  const modeArgs = mode === 'async' ? ['--mode', 'async', '--group-interval-ms', '100'] : ['--write-timeout-ms', '1000'];
  // B knows where A is: it replicates there once promoted.
  await b.sc.cli('pair', 'create', PAIR, '--volume', b.img, '--role', 'secondary', '--peer', toA?.address ?? a.sc.addresses.peer, ...modeArgs);
  await a.sc.cli('pair', 'create', PAIR, '--volume', a.img, '--role', 'primary', '--peer', toB?.address ?? b.sc.addresses.peer, '--nbd-listen', '127.0.0.1:0', ...modeArgs);
  await converged(a, b, mode, 'initial copy');
  await expectIdentical(a, b);
  return { dir, a, b, toB, toA };
}

/** kill -9 a site's sidecar and start it again on the same state and peer port. */
async function restart(site: Site, kill = true): Promise<void> {
  const peer = site.sc.addresses.peer;
  if (kill) await site.sc.kill9();
  site.sc = await startSidecar(site.state, ['--peer-listen', peer]);
}

describe.each(['sync', 'async'] as const)('%s mode', (mode) => {
  it('switches over to B and back with nothing acknowledged lost, each direction shipping only its delta', async () => {
    const { a, b } = await startRig(mode);
    const before = await a.sc.rpcStatus(PAIR);
    expect(before.bytesOnWire).toBeGreaterThanOrEqual(FILLED);

    const onA = await writeSome(a, 16, 0, FILLED);
    const t0 = performance.now();
    const demoted = await json(a.sc, 'pair', 'demote', PAIR);
    const demoteMs = performance.now() - t0;
    expect({ role: demoted.role, fenced: demoted.fenced, generation: demoted.generation }).toEqual({ role: 'secondary', fenced: true, generation: before.generation });
    // Everything A acknowledged is on B before A calls itself a secondary.
    await expectWrites(b.img, onA);
    await expectIdentical(a, b);
    await expectFenced(a);
    const bBefore = await b.sc.rpcStatus(PAIR);
    expect({ primaryDemoted: bBefore.primaryDemoted, consistent: bBefore.consistent, generation: bBefore.generation }).toEqual({ primaryDemoted: true, consistent: true, generation: before.generation });

    const t1 = performance.now();
    const promoted = await json(b.sc, 'pair', 'promote', PAIR, '--nbd-listen', '127.0.0.1:0');
    const promoteMs = performance.now() - t1;
    expect(promoted.role).toBe('primary');
    expect(promoted.generation).not.toBe(before.generation);
    expect(promoted.bitmapGeneration).toBe(before.generation);
    const onB = await writeSome(b, 16, 0, FILLED);
    const bSettled = await converged(b, a, mode, 'after the switchover');
    await expectWrites(a.img, onB);
    await expectIdentical(a, b);
    // B shipped its own writes and nothing else: far from the 16 MiB a full copy sends.
    expect(bSettled.bytesOnWire).toBeGreaterThan(0);
    expect(bSettled.bytesOnWire).toBeLessThanOrEqual(16 * BLOCK);
    expect(bSettled.bytesOnWire).toBeLessThan(FIVE_PERCENT);

    // And back home.
    await json(b.sc, 'pair', 'demote', PAIR);
    await expectFenced(b);
    const home = await json(a.sc, 'pair', 'promote', PAIR);
    expect(home.role).toBe('primary');
    const back = await writeSome(a, 16, 0, FILLED);
    const aSettled = await converged(a, b, mode, 'after switching back');
    await expectWrites(b.img, back);
    await expectWrites(b.img, onB.filter((w) => !back.some((x) => Math.floor(x.offset / BLOCK) === Math.floor(w.offset / BLOCK))));
    await expectIdentical(a, b);
    expect(aSettled.bytesOnWire).toBeLessThanOrEqual(16 * BLOCK);
    expect(aSettled.bytesOnWire).toBeLessThan(FIVE_PERCENT);
    // Demotion and promotion on loopback: under a few seconds even on a loaded machine.
    expect(demoteMs).toBeLessThan(15_000);
    expect(promoteMs).toBeLessThan(15_000);
    process.stdout.write(`[${mode}] demote ${demoteMs.toFixed(0)} ms, promote ${promoteMs.toFixed(0)} ms; shipped after the switchover ${bSettled.bytesOnWire} B, after switching back ${aSettled.bytesOnWire} B (full copy: ${before.bytesOnWire} B)\n`);
  });

  it('fails over to B with A killed; A comes back, demotes itself and takes the union of both sides\' changes from B', async () => {
    const { a, b } = await startRig(mode);
    const gen1 = (await a.sc.rpcStatus(PAIR)).generation;
    // A's last writes, all in one 4 MiB extent of its dirty log: after kill -9 the whole
    // extent counts as unconfirmed, which the failback overwrites with B's data.
    const onA = await writeSome(a, 8, 4 * MiB, 8 * MiB);
    await a.sc.waitForPair(PAIR, 'A settled before the kill', settled(mode), 30_000);
    await a.sc.kill9();
    await b.sc.waitForPair(PAIR, 'B sees its primary gone', (s) => s.state === 'Retrying', 15_000);

    // Not demoted, so only with force.
    const refused = await runCli(['pair', 'promote', PAIR, '--control', b.sc.addresses.control]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/has not demoted.*force/);
    const t0 = performance.now();
    const promoted = await json(b.sc, 'pair', 'promote', PAIR, '--force', '--nbd-listen', '127.0.0.1:0');
    const rtoMs = performance.now() - t0;
    expect(promoted.role).toBe('primary');
    expect(promoted.bitmapGeneration).toBe(gen1);
    expect(promoted.lastPromotionTime).not.toBeNull();
    const onB = await writeSome(b, 16, 8 * MiB, FILLED);
    await expectWrites(b.img, onA);

    // A returns as the primary it was, learns that B holds a newer generation descending
    // from its own, and demotes itself for good.
    await restart(a, false);
    const aDemoted = await a.sc.waitForPair(PAIR, 'A demoted itself', (s) => s.role === 'secondary', 30_000);
    expect(aDemoted.fenced).toBe(true);
    expect(a.sc.log.some((l) => l.includes('this primary is stale: demoting itself'))).toBe(true);
    const bSettled = await converged(b, a, mode, 'failback resync');
    await expectIdentical(a, b);
    await expectWrites(a.img, onB);
    await expectWrites(a.img, onA);
    // The union: A's unconfirmed extent and B's blocks, never the 16 MiB of a full copy.
    expect(bSettled.bytesOnWire).toBeGreaterThan(0);
    expect(bSettled.bytesOnWire).toBeLessThanOrEqual(4 * MiB + 16 * BLOCK);
    expect(bSettled.bytesOnWire).toBeLessThan(FIVE_PERCENT);
    // A stays demoted across a restart.
    await restart(a);
    expect((await a.sc.rpcStatus(PAIR)).role).toBe('secondary');
    process.stdout.write(`[${mode}] forced promotion ${rtoMs.toFixed(0)} ms; failback shipped ${bSettled.bytesOnWire} B\n`);
  });
});

describe('split brain', () => {
  it('is detected on both sides, moves nothing, and is resolved by discarding one side\'s data exactly', async () => {
    const { a, b, toA, toB } = await startRig('sync', { proxies: true });
    const gen1 = (await a.sc.rpcStatus(PAIR)).generation;
    toB!.cut();
    toA!.cut();
    await a.sc.waitForPair(PAIR, 'A cut off', (s) => s.state === 'Retrying', 15_000);
    await b.sc.waitForPair(PAIR, 'B cut off', (s) => s.state === 'Retrying', 15_000);
    // A goes on writing alone (acknowledged: sync mode never suspends) ...
    const onA = await writeSome(a, 8, 0, 4 * MiB);
    // ... and B is promoted by force, and written.
    await json(b.sc, 'pair', 'promote', PAIR, '--force', '--nbd-listen', '127.0.0.1:0');
    const onB = await writeSome(b, 8, 8 * MiB, 12 * MiB);
    const [genA, genB] = [(await a.sc.rpcStatus(PAIR)).generation, (await b.sc.rpcStatus(PAIR)).generation];
    expect(new Set([gen1, genA, genB]).size).toBe(3);
    const [hashA, hashB] = [await sha256File(a.img), await sha256File(b.img)];
    const wire = { a: (await a.sc.rpcStatus(PAIR)).bytesOnWire, b: (await b.sc.rpcStatus(PAIR)).bytesOnWire };

    toB!.heal();
    toA!.heal();
    const sa = await a.sc.waitForPair(PAIR, 'A shows the split brain', (s) => s.state === 'SplitBrain', 20_000);
    const sb = await b.sc.waitForPair(PAIR, 'B shows the split brain', (s) => s.state === 'SplitBrain', 20_000);
    for (const s of [sa, sb]) {
      // Each side names what it holds, what the other holds and their common generation.
      expect(s.lastError).toContain(genA);
      expect(s.lastError).toContain(genB);
      expect(s.lastError).toContain(`since generation ${gen1}`);
    }
    // Nothing moves while nobody decides: observed for several handshake rounds.
    const end = Date.now() + 4000;
    while (Date.now() < end) {
      const [x, y] = [await a.sc.rpcStatus(PAIR), await b.sc.rpcStatus(PAIR)];
      expect({ a: x.state, b: y.state, wireA: x.bytesOnWire, wireB: y.bytesOnWire }).toEqual({ a: 'SplitBrain', b: 'SplitBrain', wireA: wire.a, wireB: wire.b });
      await new Promise((r) => setTimeout(r, 250));
    }
    expect([await sha256File(a.img), await sha256File(b.img)]).toEqual([hashA, hashB]);

    // A's changes lose: A demotes, and B's data overwrites A's changes and its own, exactly.
    const discarded = await json(a.sc, 'pair', 'discard-my-data', PAIR);
    expect({ role: discarded.role, discardMyData: discarded.discardMyData }).toEqual({ role: 'secondary', discardMyData: true });
    const bSettled = await converged(b, a, 'sync', 'after discarding A\'s data');
    expect(await sha256File(a.img)).toBe(hashB);
    expect(await sha256File(b.img)).toBe(hashB);
    await expectWrites(a.img, onB);
    // Only the union of both sides' changes since the common generation was shipped.
    expect(bSettled.bytesOnWire).toBeLessThanOrEqual(16 * BLOCK);
    expect((await a.sc.rpcStatus(PAIR)).discardMyData).toBe(false);
    expect(onA.length).toBe(8);
  });
});

describe('kill -9 during role changes', () => {
  it('a primary killed while its demotion waits for an unreachable secondary comes back a primary with every write', async () => {
    const { a, b, toB } = await startRig('sync', { proxies: true });
    const before = await writeSome(a, 8, 0, FILLED);
    await a.sc.waitForPair(PAIR, 'A settled', settled('sync'), 30_000);
    toB!.cut();
    await a.sc.waitForPair(PAIR, 'A cut off', (s) => s.state === 'Retrying', 15_000);
    const demoting = runCli(['pair', 'demote', PAIR, '--wait-ms', '60000', '--control', a.sc.addresses.control], { timeoutMs: 90_000 });
    await a.sc.waitForPair(PAIR, 'the demotion under way (export fenced)', (s) => s.fenced && s.role === 'primary', 15_000);
    await expectFenced(a);
    await restart(a);
    expect((await demoting).code).not.toBe(0);
    const back = await a.sc.rpcStatus(PAIR);
    expect({ role: back.role, fenced: back.fenced }).toEqual({ role: 'primary', fenced: false });
    const after = await writeSome(a, 8, 0, FILLED);
    toB!.heal();
    await converged(a, b, 'sync', 'after the restart');
    await expectWrites(b.img, [...before, ...after.filter((w) => !before.some((x) => Math.floor(x.offset / BLOCK) === Math.floor(w.offset / BLOCK)))]);
    await expectIdentical(a, b);
    // The demotion, done again, completes.
    expect((await json(a.sc, 'pair', 'demote', PAIR)).role).toBe('secondary');
  });

  it('a secondary killed right after its promotion commits comes back a primary of the new generation and fails back', async () => {
    const { a, b } = await startRig('sync', { bArgs: ['--crash-at', 'promote:after-commit'] });
    const gen1 = (await a.sc.rpcStatus(PAIR)).generation;
    const onA = await writeSome(a, 8, 0, FILLED);
    await json(a.sc, 'pair', 'demote', PAIR);
    const promote = await runCli(['pair', 'promote', PAIR, '--nbd-listen', '127.0.0.1:0', '--control', b.sc.addresses.control]);
    expect(promote.code).not.toBe(0);
    const died = await b.sc.exited;
    expect(died.signal).toBe('SIGKILL');
    await restart(b, false);
    const st = await b.sc.rpcStatus(PAIR);
    // The committed promotion survived: a primary of a new generation descending from gen1.
    // Its bitmap names gen1 until A (demoted at gen1) holds the new generation, which may
    // already be so when the status is read: then it is empty, never another id.
    expect({ role: st.role, descendsFromGen1: st.historyGenerations.includes(gen1) }).toEqual({ role: 'primary', descendsFromGen1: true });
    expect(st.generation).not.toBe(gen1);
    expect([gen1, '']).toContain(st.bitmapGeneration);
    await converged(b, a, 'sync', 'after the restart');
    const onB = await writeSome(b, 8, 0, FILLED);
    await converged(b, a, 'sync', 'after writes on B');
    await expectWrites(a.img, onB);
    await expectWrites(b.img, onA.filter((w) => !onB.some((x) => Math.floor(x.offset / BLOCK) === Math.floor(w.offset / BLOCK))));
    await expectIdentical(a, b);
  });
});
