import { afterEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { startTrackedSidecar } from './helpers/start-tracked-sidecar.js';
import { FaultProxy } from './helpers/fault-proxy.js';
import { NbdTestClient } from './helpers/nbd-test-client.js';
import { chainPrefix, ChainWriter, type ChainLayout } from './helpers/ordered-writes.js';
import { sha256File, sparseFile, StateRecorder } from './helpers/replication-harness.js';
import { runCli } from './helpers/run-cli.js';
import { SidecarProcess, type PairStatusJson } from './helpers/sidecar-process.js';
import { waitFor } from './helpers/wait-for.js';

// Asynchronous replication with consistency groups between two real sidecars on
// loopback, a fault proxy in front of the secondary's peer port. The workload is a
// chain of dependent writes: write i (a record holding i) goes to slot i mod SLOTS and is
// issued only after write i-1 was acknowledged. Whatever happens, the secondary volume
// must hold a prefix of that chain: for some P, every slot holds the last write <= P
// that maps to it — a real past state of the primary, never a write without the ones
// before it.

const KiB = 1024;
const MiB = 1024 * KiB;
const VOLUME = 16 * MiB;
const BLOCK = 64 * KiB;
/** Slots are a tracking block apart, so each write dirties exactly one block. */
const SLOTS = 128;
const ALLOWED = ['Initializing', 'Replicating', 'Retrying'];
const MAX_COORDINATION_MS = 20;

const cleanup = new CleanupStack();
const track = cleanup.track.bind(cleanup);
afterEach(() => cleanup.releaseAll(), 60_000);

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bm-async-'));
  track(`temp dir ${dir}`, () => rm(dir, { recursive: true, force: true }));
  return dir;
}

function startSidecar(stateDir: string, args: string[] = []): Promise<SidecarProcess> {
  return startTrackedSidecar(cleanup, stateDir, args);
}

async function cli(sc: SidecarProcess, ...args: string[]): Promise<string> {
  const r = await runCli([...args, '--control', sc.addresses.control], { timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`blockmirror ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

async function status(sc: SidecarProcess, pair: string): Promise<PairStatusJson> {
  return JSON.parse(await cli(sc, 'pair', 'status', pair, '-o', 'json')) as PairStatusJson;
}

const LAYOUT = (volumes: number): ChainLayout => ({ slots: SLOTS, stride: BLOCK, volumes });

/**
 * Dependent writes, one at a time, spread over the volumes in turn; counts what was
 * acknowledged. Stops on request; an error reply or a lost connection fails the test.
 */
class OrderedWriter {
  readonly #w: ChainWriter;

  constructor(clients: NbdTestClient[]) {
    this.#w = new ChainWriter(clients, LAYOUT(clients.length), { from: 1, fua: false });
  }

  get acked(): number {
    return this.#w.acked;
  }

  async stop(): Promise<void> {
    await this.#w.stop();
    if (this.#w.error) throw this.#w.error;
  }
}

/**
 * Checks that the images hold a prefix of the chain; returns its length P. Every slot
 * of every volume must hold exactly the last write <= P that maps to it.
 */
async function expectPrefix(images: string[], ackedBefore: number): Promise<number> {
  const r = await chainPrefix(images, LAYOUT(images.length));
  if ('error' in r) throw new Error(r.error);
  // Nothing the primary never acknowledged can be there (the one in flight aside).
  expect(r.prefix).toBeLessThanOrEqual(ackedBefore + 1);
  return r.prefix;
}

interface Rig {
  dir: string;
  a: SidecarProcess;
  b: SidecarProcess;
  bState: string;
  proxy: FaultProxy;
  aImgs: string[];
  bImgs: string[];
  pairs: string[];
  clients: NbdTestClient[];
  rec: StateRecorder[];
}

async function startRig(pairs: string[], extra: string[]): Promise<Rig> {
  const dir = await tempDir();
  const aImgs = pairs.map((p) => join(dir, `A-${p}.img`));
  const bImgs = pairs.map((p) => join(dir, `B-${p}.img`));
  for (const f of [...aImgs, ...bImgs]) await sparseFile(f, VOLUME);
  const bState = join(dir, 'state-b');
  const b = await startSidecar(bState);
  for (const [i, p] of pairs.entries()) await cli(b, 'pair', 'create', p, '--volume', bImgs[i]!, '--role', 'secondary');
  const proxy = await FaultProxy.start({ target: b.addresses.peer });
  // Bounded: after a secondary restarted behind it, the proxy may keep the record of a
  // connection whose sockets are gone (its sockets are destroyed either way).
  track(`proxy ${proxy.address}`, () => Promise.race([proxy.close(), new Promise<void>((r) => setTimeout(r, 2000).unref())]));
  const a = await startSidecar(join(dir, 'state-a'));
  for (const [i, p] of pairs.entries()) {
    await cli(a, 'pair', 'create', p, '--volume', aImgs[i]!, '--role', 'primary', '--mode', 'async', '--peer', proxy.address, '--nbd-listen', '127.0.0.1:0', '--max-coordination-ms', String(MAX_COORDINATION_MS), ...extra);
  }
  const rec = pairs.map((p) => new StateRecorder(() => a.addresses.metrics, p));
  for (const r of rec) track('state recorder', () => r.stop());
  for (const p of pairs) await a.waitForPair(p, `${p}: initial copy done`, (s) => s.state === 'Replicating' && s.outOfSyncBytes === 0);
  const clients: NbdTestClient[] = [];
  for (const p of pairs) {
    const st = await status(a, p);
    const c = await NbdTestClient.connectExport({ tcp: st.nbdAddress }, p);
    track(`nbd client ${p}`, async () => c.destroy());
    clients.push(c);
  }
  return { dir, a, b, bState, proxy, aImgs, bImgs, pairs, clients, rec };
}

/**
 * At a random moment: kill -9 the secondary or cut the link (then kill it, so its volume
 * can be read at rest); restart it with the link still cut — its recovery finishes or
 * drops the group in flight — and check the prefix; then heal.
 */
async function faultAndCheck(rig: Rig, w: OrderedWriter, fault: 'kill' | 'cut', lastPrefix: number): Promise<number> {
  // Replication has resumed since the last fault: a group formed after now gets applied.
  const resumedAfter = Date.now();
  for (const p of rig.pairs) {
    await rig.a.waitForPair(p, `${p}: a group applied after the last fault`, (s) => s.lastConsistencyPointTime !== null && Date.parse(s.lastConsistencyPointTime) > resumedAfter, 30_000);
  }
  await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 700)));
  const peerAddress = rig.b.addresses.peer;
  if (fault === 'cut') {
    rig.proxy.cut();
    for (const p of rig.pairs) await rig.a.waitForPair(p, `${p}: Retrying after the cut`, (s) => s.state === 'Retrying', 15_000);
    await rig.b.kill9();
  } else {
    await rig.b.kill9();
    rig.proxy.cut();
  }
  const ackedBefore = w.acked;
  rig.b = await startSidecar(rig.bState, ['--peer-listen', peerAddress]);
  const p = await expectPrefix(rig.bImgs, ackedBefore);
  // A group applied on the secondary is never taken back.
  expect(p).toBeGreaterThanOrEqual(lastPrefix);
  // The primary kept answering writes all along.
  const acked = w.acked;
  await waitFor('writes acknowledged during the outage', () => w.acked > acked + 20, { timeoutMs: 10_000 });
  rig.proxy.heal();
  return p;
}

async function convergeAndCompare(rig: Rig, w: OrderedWriter): Promise<void> {
  await w.stop();
  for (const p of rig.pairs) {
    const s = await rig.a.waitForPair(p, `${p}: everything applied on the secondary`, (x) => x.state === 'Replicating' && x.outOfSyncBytes === 0, 60_000);
    expect(s.groupsFormed).toBeGreaterThan(0);
    expect(s.retries).toBeGreaterThan(0);
    expect(s.lastConsistencyPointTime).not.toBeNull();
    expect(s.coordinationHoldMaxMs).toBeLessThanOrEqual(MAX_COORDINATION_MS);
  }
  for (const [i, a] of rig.aImgs.entries()) expect(await sha256File(rig.bImgs[i]!)).toBe(await sha256File(a));
  for (const r of rig.rec) {
    await r.stop();
    expect({ states: r.states, history: r.history() }).toEqual({ states: expect.arrayContaining(['Replicating', 'Retrying']) as unknown, history: r.history() });
    for (const s of r.states) expect(ALLOWED).toContain(s);
  }
}

describe('asynchronous replication with consistency groups', () => {
  it(
    'keeps the secondary at a prefix of dependent writes across kill -9 of the secondary and link cuts, then converges',
    async () => {
      const rig = await startRig(['db'], ['--group-interval-ms', '0']);
      const w = new OrderedWriter(rig.clients);
      let prefix = 0;
      for (const fault of ['kill', 'cut', 'kill', 'cut', 'kill'] as const) prefix = await faultAndCheck(rig, w, fault, prefix);
      expect(prefix).toBeGreaterThan(0);
      await convergeAndCompare(rig, w);
    },
    180_000,
  );

  it(
    'keeps two volumes of one consistency group at a common prefix of writes alternating between them',
    async () => {
      const rig = await startRig(['data', 'wal'], ['--consistency-group', 'pg', '--group-interval-ms', '0']);
      const w = new OrderedWriter(rig.clients);
      let prefix = 0;
      for (const fault of ['kill', 'cut', 'kill'] as const) prefix = await faultAndCheck(rig, w, fault, prefix);
      expect(prefix).toBeGreaterThan(0);
      await convergeAndCompare(rig, w);
    },
    180_000,
  );

  it('an idle async secondary stays Replicating — the link sends heartbeats in both modes — and never claims InSync', async () => {
    const rig = await startRig(['idle'], ['--group-interval-ms', '0']);
    const seen = new Set<string>();
    await rig.b.waitForPair('idle', 'the secondary replicating', (s) => {
      seen.add(s.state);
      return s.state === 'Replicating';
    });
    // Longer than the secondary's 5 s liveness deadline, with nothing written.
    const deadline = Date.now() + 7000;
    while (Date.now() < deadline) {
      seen.add((await rig.b.rpcStatus('idle')).state);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect([...seen].filter((x) => x !== 'Initializing')).toEqual(['Replicating']);
  });

  it('refuses a consistency group member that replicates to another sidecar, and a group without async mode', async () => {
    const rig = await startRig(['one'], ['--consistency-group', 'g1']);
    const extra = join(rig.dir, 'extra.img');
    await sparseFile(extra, VOLUME);
    const other = await runCli(['pair', 'create', 'two', '--volume', extra, '--role', 'primary', '--mode', 'async', '--peer', '127.0.0.1:1', '--consistency-group', 'g1', '--control', rig.a.addresses.control]);
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/consistency group g1 replicates to/);
    const sync = await runCli(['pair', 'create', 'three', '--volume', extra, '--role', 'primary', '--peer', rig.proxy.address, '--consistency-group', 'g1', '--control', rig.a.addresses.control]);
    expect(sync.code).not.toBe(0);
    expect(sync.stderr).toMatch(/consistency group needs --mode async/);
  });
});
