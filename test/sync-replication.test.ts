import { afterEach, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FaultProxy } from './helpers/fault-proxy.js';
import { NbdTestClient } from './helpers/nbd-test-client.js';
import { PatternCorruptProxy, varint } from './helpers/pattern-corrupt-proxy.js';
import { makePeerPki, type PeerPki } from './helpers/peer-pki.js';
import { metricSum, nonZeroBytes, randomFile, RandomWriter, scrapeMetrics, sha256File, sparseFile, StateRecorder, type RandomWriterOptions } from './helpers/replication-harness.js';
import { run, runCli, runOk } from './helpers/run-cli.js';
import { CleanupStack } from './helpers/cleanup-stack.js';
import { SidecarProcess } from './helpers/sidecar-process.js';
import { waitFor } from './helpers/wait-for.js';

// Synchronous replication between two real sidecar processes on loopback, with network
// faults injected by a TCP proxy in front of the secondary's peer port, processes killed
// with SIGKILL, corrupted bytes and peers that must be refused. Throughout each test the
// primary's state is sampled every ~100 ms: it must never leave the allowed states (in
// particular, it is never "Suspended").

const KiB = 1024;
const MiB = 1024 * KiB;
const VOLUME = 64 * MiB;
const PAIR = 'db';
const TEST_TIMEOUT = 120_000;
const ALLOWED = ['Initializing', 'InSync', 'Resyncing', 'Retrying'];
/** How long an outage is held (its invariants are checked all along). */
const OUTAGE_MS = 4_000;

// ---------------------------------------------------------------------------------
// Everything a test sets up is released in reverse order after it.
const cleanup = new CleanupStack();
const track = cleanup.track.bind(cleanup);
afterEach(() => cleanup.releaseAll(), 60_000);

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bm-sync-repl-'));
  track(`temp dir ${dir}`, () => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function startSidecar(stateDir: string, args: string[] = []): Promise<SidecarProcess> {
  const sc = await SidecarProcess.start({ stateDir, args });
  track(`sidecar pid ${sc.child.pid}`, async () => {
    const exited = await Promise.race([sc.stop(), new Promise<null>((r) => setTimeout(() => r(null), 15_000).unref())]);
    if (exited === null) {
      await sc.kill9();
      throw new Error(`sidecar pid ${sc.child.pid} did not stop within 15 s of SIGTERM`);
    }
  });
  return sc;
}

async function startProxy(target: string): Promise<FaultProxy> {
  const proxy = await FaultProxy.start({ target });
  track(`proxy ${proxy.address}`, () => proxy.close());
  return proxy;
}

// ---------------------------------------------------------------------------------
// The CLI and the pair's status

interface ReplStatus {
  name: string;
  role: string;
  state: string;
  volumePath: string;
  volumeBytes: number;
  outOfSyncBytes: number;
  resyncProgressPercent: number;
  lastInSyncTime: string | null;
  retries: number;
  lastError: string;
  nbdAddress: string;
  bytesWritten: number;
  bytesOnWire: number;
  bytesReplicated: number;
}

/** A sidecar and the CLI flags its control port needs (TLS). */
interface Node {
  sc: SidecarProcess;
  tls: string[];
}

async function cli(n: Node, ...args: string[]): Promise<string> {
  const r = await runCli([...args, '--control', n.sc.addresses.control, ...n.tls], { timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`blockmirror ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

async function status(n: Node): Promise<ReplStatus> {
  return JSON.parse(await cli(n, 'pair', 'status', PAIR, '-o', 'json')) as ReplStatus;
}

/** Polls the pair's status until `ok` holds; returns that status. */
async function until(n: Node, what: string, ok: (s: ReplStatus) => boolean, timeoutMs = 30_000): Promise<ReplStatus> {
  let last: ReplStatus | undefined;
  try {
    return await waitFor(
      what,
      async () => {
        last = await status(n);
        return ok(last) ? last : undefined;
      },
      { timeoutMs, intervalMs: 100 },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last status: ${JSON.stringify(last)}`, { cause: err });
  }
}

/** Checks `invariant` repeatedly for `ms` (an outage held on purpose, observed all along). */
async function holdFor(ms: number, invariant: () => Promise<void>): Promise<void> {
  const end = Date.now() + ms;
  do {
    await invariant();
    await new Promise((r) => setTimeout(r, 100));
  } while (Date.now() < end);
}

async function metrics(sc: SidecarProcess): Promise<string> {
  return scrapeMetrics(sc.addresses.metrics);
}

async function refused(sc: SidecarProcess, reason?: string): Promise<number> {
  return metricSum(await metrics(sc), 'blockmirror_peer_refused_total', reason === undefined ? {} : { reason });
}

function recordStates(n: () => Node): StateRecorder {
  const rec = new StateRecorder(() => n().sc.addresses.metrics, PAIR);
  track('state recorder', () => rec.stop());
  return rec;
}

async function assertStates(rec: StateRecorder, allowed: string[]): Promise<void> {
  await rec.stop();
  expect(rec.samples.length).toBeGreaterThan(3);
  const bad = rec.states.filter((s) => !allowed.includes(s));
  if (bad.length > 0) throw new Error(`primary was in ${bad.join(', ')} (allowed: ${allowed.join(', ')}); history: ${rec.history()}`);
}

async function startWriter(n: Node, opts: RandomWriterOptions): Promise<RandomWriter> {
  const { nbdAddress } = await status(n);
  const client = await NbdTestClient.connectExport({ tcp: nbdAddress }, PAIR);
  const w = new RandomWriter(client, opts);
  track('writer', async () => {
    await w.stop().catch(() => undefined);
    client.destroy();
  });
  return w;
}

async function stopWriter(w: RandomWriter): Promise<void> {
  await w.stop();
  if (!w.client.isClosed) await w.client.disconnect();
}

async function expectIdentical(a: string, b: string): Promise<void> {
  const [ha, hb] = await Promise.all([sha256File(a), sha256File(b)]);
  expect(hb).toBe(ha);
}

// ---------------------------------------------------------------------------------
// A primary A and a secondary B, each in its own sidecar, optionally through a proxy.

interface Rig {
  dir: string;
  aImg: string;
  bImg: string;
  aState: string;
  bState: string;
  a: Node;
  b: Node;
  proxy: FaultProxy | undefined;
  /** The address A's pair was given as its peer. */
  peer: string;
  rec: StateRecorder;
}

interface RigOptions {
  /** Writes A's volume (default: a sparse file of VOLUME bytes). */
  prepareA?: (path: string) => Promise<void>;
  /** Writes B's volume (default: a sparse file of VOLUME bytes). */
  prepareB?: (path: string) => Promise<void>;
  proxy?: boolean;
  /** Another way to A's peer: given B's peer address, returns the address A is to use. */
  peerVia?: (bPeer: string) => Promise<string>;
  primaryArgs?: string[];
  /** Runs after B and the proxy are up, before A's pair is created. */
  beforePrimary?: (r: { proxy: FaultProxy | undefined }) => void;
}

async function startRig(o: RigOptions = {}): Promise<Rig> {
  const dir = await tempDir();
  const aImg = join(dir, 'A.img');
  const bImg = join(dir, 'B.img');
  await (o.prepareA ?? ((p) => sparseFile(p, VOLUME)))(aImg);
  await (o.prepareB ?? ((p) => sparseFile(p, VOLUME)))(bImg);
  const aState = join(dir, 'state-a');
  const bState = join(dir, 'state-b');
  const b: Node = { sc: await startSidecar(bState), tls: [] };
  await cli(b, 'pair', 'create', PAIR, '--volume', bImg, '--role', 'secondary');
  const proxy = o.proxy ? await startProxy(b.sc.addresses.peer) : undefined;
  const peer = proxy?.address ?? (o.peerVia ? await o.peerVia(b.sc.addresses.peer) : b.sc.addresses.peer);
  const a: Node = { sc: await startSidecar(aState), tls: [] };
  o.beforePrimary?.({ proxy });
  await cli(a, 'pair', 'create', PAIR, '--volume', aImg, '--role', 'primary', '--peer', peer, '--nbd-listen', '127.0.0.1:0', ...(o.primaryArgs ?? []));
  const rig: Rig = { dir, aImg, bImg, aState, bState, a, b, proxy, peer, rec: undefined as unknown as StateRecorder };
  // From the moment the pair exists.
  rig.rec = recordStates(() => rig.a);
  return rig;
}

const inSync = (s: ReplStatus): boolean => s.state === 'InSync' && s.outOfSyncBytes === 0;

/** The writer runs on; the pair must go back to InSync with the volumes identical once it stops. */
async function convergeAndCompare(rig: Rig, w: RandomWriter | undefined, since: number): Promise<ReplStatus> {
  if (w) await stopWriter(w);
  const s = await until(rig.a, 'primary InSync after the fault', inSync, 60_000);
  expect(s.lastError).toBe('');
  expect(s.resyncProgressPercent).toBe(100);
  expect(s.lastInSyncTime).not.toBeNull();
  expect(Date.parse(s.lastInSyncTime!)).toBeGreaterThanOrEqual(since);
  await until(rig.b, 'secondary InSync', (x) => x.state === 'InSync', 20_000);
  await expectIdentical(rig.aImg, rig.bImg);
  if (w) {
    expect(w.errors).toEqual([]);
    expect(w.failures).toBe(0);
  }
  return s;
}

// ---------------------------------------------------------------------------------

describe('synchronous replication under faults', () => {
  for (const fault of ['cut', 'stall'] as const) {
    it(
      `acknowledges writes through a ${fault} of the link, then resyncs to identical volumes`,
      async () => {
        const rig = await startRig({ proxy: true, primaryArgs: ['--write-timeout-ms', '1000'] });
        await until(rig.a, 'initial sync of the empty volume', inSync);
        const w = await startWriter(rig.a, { from: 0, to: VOLUME });
        await waitFor('writes acknowledged while connected', () => w.acks >= 50, { timeoutMs: 20_000 });
        const before = await status(rig.a);

        const faultAt = Date.now();
        if (fault === 'cut') rig.proxy!.cut();
        else rig.proxy!.stall();
        const retrying = await until(rig.a, `Retrying after the ${fault}`, (s) => s.state === 'Retrying', 10_000);
        expect(retrying.lastError).not.toBe('');
        if (fault === 'stall') expect(retrying.lastError).toMatch(/timeout|deadline/i);
        // A write waits at most the write timeout, then counts as out of sync.
        await waitFor(`writes acknowledged during the ${fault}`, () => w.acksSince(faultAt + 1500) >= 20, { timeoutMs: 10_000 });
        let last = retrying;
        const secondaryStates: string[] = [];
        await holdFor(OUTAGE_MS, async () => {
          if (fault === 'cut') secondaryStates.push((await status(rig.b)).state);
          last = await status(rig.a);
          expect(last.state).toBe('Retrying');
          expect(last.lastError).not.toBe('');
          expect(w.oldestPendingMs).toBeLessThan(3_000);
        });
        expect(w.maxLatencySince(faultAt)).toBeLessThan(3_000);
        expect(last.outOfSyncBytes).toBeGreaterThan(retrying.outOfSyncBytes);
        expect(last.retries).toBeGreaterThan(before.retries);
        const acksDuringFault = w.acksSince(faultAt);
        expect(acksDuringFault).toBeGreaterThan(50);

        const healAt = Date.now();
        rig.proxy!.heal();
        await until(rig.a, 'reconnected after heal', (s) => s.state !== 'Retrying', 20_000);
        // Foreground writes go on while the out-of-sync blocks are resent.
        await waitFor('writes acknowledged after the heal', () => w.acksSince(healAt) >= 20, { timeoutMs: 10_000 });
        await convergeAndCompare(rig, w, healAt);
        await assertStates(rig.rec, ALLOWED);
        expect(rig.rec.states).toEqual(expect.arrayContaining(['InSync', 'Retrying']));
        // The proxy reset the secondary's connections too: seconds into the cut it has no
        // primary and must not claim to be InSync (checked last, so the rest is not masked).
        if (fault === 'cut' && secondaryStates.at(-1) !== 'Retrying') {
          throw new Error(`the secondary showed ${[...new Set(secondaryStates)].join(', ')} during a ${OUTAGE_MS} ms cut (last: ${secondaryStates.at(-1)}), not Retrying`);
        }
      },
      TEST_TIMEOUT,
    );
  }

  it(
    'returns to InSync by itself after kill -9 of the secondary mid-stream and its restart',
    async () => {
      const rig = await startRig({ primaryArgs: ['--write-timeout-ms', '1000'] });
      await until(rig.a, 'initial sync', inSync);
      const w = await startWriter(rig.a, { from: 0, to: VOLUME, depth: 8 });
      await waitFor('writes acknowledged', () => w.acks >= 100, { timeoutMs: 20_000 });
      const peerAddress = rig.b.sc.addresses.peer;

      const killedAt = Date.now();
      await rig.b.sc.kill9();
      await until(rig.a, 'Retrying with the secondary dead', (s) => s.state === 'Retrying' && s.lastError !== '', 10_000);
      await waitFor('writes acknowledged with the secondary dead', () => w.acksSince(killedAt + 1500) >= 20, { timeoutMs: 10_000 });
      expect((await status(rig.a)).outOfSyncBytes).toBeGreaterThan(0);

      // Same state dir and the same peer port (the primary's --peer).
      const restartedAt = Date.now();
      rig.b = { sc: await startSidecar(rig.bState, ['--peer-listen', peerAddress]), tls: [] };
      expect(rig.b.sc.addresses.peer).toBe(peerAddress);
      const restored = await status(rig.b);
      expect(restored.role).toBe('secondary');
      expect(restored.volumePath).toBe(rig.bImg);
      await until(rig.a, 'reconnected to the restarted secondary', (s) => s.state !== 'Retrying', 20_000);
      await waitFor('writes acknowledged after the restart', () => w.acksSince(restartedAt) >= 20, { timeoutMs: 10_000 });
      const s = await convergeAndCompare(rig, w, restartedAt);
      expect(s.retries).toBeGreaterThan(0);
      await assertStates(rig.rec, ALLOWED);
    },
    TEST_TIMEOUT,
  );

  it(
    'keeps the out-of-sync blocks across kill -9 of the primary during an outage',
    async () => {
      const rig = await startRig({ proxy: true, primaryArgs: ['--write-timeout-ms', '1000'] });
      await until(rig.a, 'initial sync', inSync);
      const w = await startWriter(rig.a, { from: 0, to: VOLUME });
      await waitFor('writes acknowledged', () => w.acks >= 30, { timeoutMs: 20_000 });
      const cutAt = Date.now();
      rig.proxy!.cut();
      await until(rig.a, 'Retrying after the cut', (s) => s.state === 'Retrying');
      await waitFor('writes acknowledged during the cut', () => w.acksSince(cutAt + 1500) >= 50, { timeoutMs: 10_000 });
      const beforeKill = await status(rig.a);
      expect(beforeKill.outOfSyncBytes).toBeGreaterThan(0);

      await rig.a.sc.kill9();
      await w.stop();
      w.client.destroy();
      expect(w.errors).toEqual([]);
      // The primary is dead: the secondary should notice (checked at the end, not to mask the rest).
      const secondaryNoticed = await until(rig.b, 'secondary Retrying with its primary dead', (x) => x.state === 'Retrying', 10_000).then(
        () => 'Retrying',
        (err: Error) => err.message,
      );

      // Restarted while the link is still down: what it must send comes from its state dir only.
      rig.a = { sc: await startSidecar(rig.aState), tls: [] };
      expect(rig.a.sc.log.some((l) => l.includes('recovered dirty extents'))).toBe(true);
      const restarted = await status(rig.a);
      expect(restarted.role).toBe('primary');
      expect(restarted.state).toBe('Retrying');
      // The recovered set is a superset of what was out of sync (whole intent extents).
      expect(restarted.outOfSyncBytes).toBeGreaterThanOrEqual(beforeKill.outOfSyncBytes);

      const healAt = Date.now();
      rig.proxy!.heal();
      await convergeAndCompare(rig, undefined, healAt);
      await assertStates(rig.rec, ALLOWED);
      expect(secondaryNoticed).toBe('Retrying');
    },
    TEST_TIMEOUT,
  );

  it(
    'refuses corrupted frames during the initial copy and during writes; the primary resends',
    async () => {
      const rig = await startRig({
        proxy: true,
        prepareA: (p) => randomFile(p, VOLUME),
        // 16 MiB/s: the initial copy of 64 MiB takes about 4 s.
        primaryArgs: ['--write-timeout-ms', '1000', '--resync-rate', String(16 * MiB)],
        // The first large chunk A sends is a frame of the initial copy.
        beforePrimary: ({ proxy }) => proxy!.corruptNext(),
      });
      const evidence = async (): Promise<{ crc: number; refusedAll: number; retries: number }> => ({
        crc: await refused(rig.b.sc, 'crc'),
        refusedAll: await refused(rig.b.sc),
        retries: (await status(rig.a)).retries,
      });
      await waitFor('a corrupted chunk during the initial copy', () => rig.proxy!.corruptions === 1, { timeoutMs: 20_000 });
      await waitFor('the corruption refused (crc) or the session dropped', async () => {
        const e = await evidence();
        return e.crc > 0 || e.refusedAll > 0 || e.retries > 0 ? e : undefined;
      });
      const copied = await until(rig.a, 'initial copy complete', inSync, 60_000);
      expect(copied.bytesOnWire).toBeGreaterThanOrEqual(VOLUME);
      await expectIdentical(rig.aImg, rig.bImg);

      // Now during foreground writes (large ones: the proxy corrupts chunks >= 16 KiB).
      const w = await startWriter(rig.a, { from: 0, to: VOLUME, sizes: [64 * KiB, 128 * KiB] });
      await waitFor('writes acknowledged', () => w.acks >= 20, { timeoutMs: 20_000 });
      for (let i = 0; i < 3; i++) {
        const e0 = await evidence();
        rig.proxy!.corruptNext();
        await waitFor(`corruption ${i + 2} injected`, () => rig.proxy!.corruptions === i + 2, { timeoutMs: 10_000 });
        await waitFor(`corruption ${i + 2} refused (crc) or the session dropped`, async () => {
          const e = await evidence();
          return e.crc > e0.crc || e.refusedAll > e0.refusedAll || e.retries > e0.retries;
        });
      }
      await convergeAndCompare(rig, w, 0);
      // Nearly every flipped byte lands in a payload: of four, at least one crc refusal.
      expect((await evidence()).crc).toBeGreaterThan(0);
      await assertStates(rig.rec, ALLOWED);
    },
    TEST_TIMEOUT,
  );

  it(
    'refuses a frame whose block offset was corrupted in transit, not only one whose payload was',
    async () => {
      let pp: PatternCorruptProxy | undefined;
      const rig = await startRig({
        peerVia: async (target) => {
          pp = await PatternCorruptProxy.start(target);
          track(`pattern proxy ${pp.address}`, () => pp!.close());
          return pp.address;
        },
        primaryArgs: ['--write-timeout-ms', '1000'],
      });
      await until(rig.a, 'initial sync', inSync);
      // A 64 KiB write at X travels as BlockRun { offset: X, length: 65536 }: 0x08 varint(X)
      // 0x10 varint(65536). X's varint is 80 80 d0 11; setting bit 0 of its second byte
      // moves the run 128 bytes up, still inside the volume.
      const X = 0x2340000;
      expect(varint(X).toString('hex')).toBe('8080d011');
      const client = await NbdTestClient.connectExport({ tcp: (await status(rig.a)).nbdAddress }, PAIR);
      track('NBD client', async () => client.destroy());
      pp!.arm(Buffer.concat([Buffer.from([0x08]), varint(X), Buffer.from([0x10]), varint(64 * KiB)]), 2, 0x01);
      for (let i = 0; i < 20 && pp!.flips === 0; i++) expect((await client.write(X, randomBytes(64 * KiB))).error).toBe(0);
      expect(pp!.flips).toBe(1);
      await client.disconnect();
      // Whatever happened to that frame, the pair must converge on identical volumes.
      await until(rig.a, 'primary InSync', inSync, 30_000);
      const [ha, hb] = await Promise.all([sha256File(rig.aImg), sha256File(rig.bImg)]);
      if (ha !== hb) {
        const [a, b] = await Promise.all([readFile(rig.aImg), readFile(rig.bImg)]);
        const pages: string[] = [];
        for (let at = 0; at < VOLUME; at += 4 * KiB) if (!a.subarray(at, at + 4 * KiB).equals(b.subarray(at, at + 4 * KiB))) pages.push(`0x${at.toString(16)}`);
        const st = await status(rig.a);
        throw new Error(
          `the secondary applied a frame whose run offset was corrupted (0x${X.toString(16)} -> 0x${(X + 128).toString(16)}): volumes differ in 4 KiB pages ${pages.join(', ')} ` +
            `while the primary reports ${st.state} with outOfSyncBytes ${st.outOfSyncBytes}; crc refusals on the secondary: ${await refused(rig.b.sc, 'crc')}`,
        );
      }
      expect(await refused(rig.b.sc)).toBeGreaterThan(0);
      await assertStates(rig.rec, ALLOWED);
    },
    TEST_TIMEOUT,
  );

  it(
    'copies a volume holding an ext4 filesystem without sending its zero regions, while writes go on',
    async () => {
      const VOL = 128 * MiB;
      const FS = 120 * MiB;
      const rig = await startRig({
        prepareA: async (p) => {
          await sparseFile(p, VOL);
          // The filesystem covers the first 120 MiB only: the writer uses the last 8 MiB.
          await runOk('mkfs.ext4', ['-q', '-F', p, `${FS / KiB}k`]);
          const mnt = join(p, '..', 'mnt');
          await mkdir(mnt);
          await runOk('mount', ['-o', 'loop', p, mnt]);
          const umount = track(`mount ${mnt}`, () => runOk('umount', [mnt]).then(() => undefined));
          await mkdir(join(mnt, 'dir'));
          for (let i = 0; i < 6; i++) await writeFile(join(mnt, i % 2 ? 'dir' : '', `file${i}`), randomBytes(2 * MiB + i * 4097));
          await umount();
        },
        prepareB: (p) => sparseFile(p, VOL),
        // 32 MiB/s of volume (zero runs included): the copy takes about 4 s.
        primaryArgs: ['--resync-rate', String(32 * MiB)],
      });
      const w = await startWriter(rig.a, { from: VOL - 8 * MiB, to: VOL, depth: 1, sizes: [4 * KiB, 16 * KiB], pauseMs: 5 });
      // With writes going on, some blocks always await the secondary's acknowledgement:
      // InSync here is the state; outOfSyncBytes reaches 0 once the writer has stopped.
      await until(rig.a, 'initial copy complete', (x) => x.state === 'InSync', 60_000);
      await stopWriter(w);
      const s = await convergeAndCompare(rig, undefined, 0);
      expect(w.errors).toEqual([]);
      expect(w.failures).toBe(0);

      const init = rig.rec.span('Initializing');
      expect(init).toBeDefined();
      expect(w.acksBetween(init!.from, init!.to)).toBeGreaterThan(0);

      const r = await run('e2fsck', ['-f', '-n', rig.bImg], { timeoutMs: 60_000 });
      expect(`${r.code} ${r.stdout}${r.stderr}`).toMatch(/^0 /);

      const nonZero = await nonZeroBytes(rig.aImg, 64 * KiB);
      expect(nonZero).toBeLessThan(VOL / 4);
      expect(s.bytesOnWire).toBeGreaterThan(0);
      expect(s.bytesOnWire).toBeLessThan(nonZero + s.bytesWritten + 4 * MiB);
      expect(s.bytesOnWire).toBeLessThan(VOL / 2);
      expect(s.bytesReplicated).toBeGreaterThanOrEqual(VOL);
      await assertStates(rig.rec, ALLOWED);
    },
    TEST_TIMEOUT,
  );
});

// ---------------------------------------------------------------------------------

describe('peers that must be refused', () => {
  it(
    'closes a connection that sends garbage to the peer port and counts it',
    async () => {
      const dir = await tempDir();
      const bImg = join(dir, 'B.img');
      await randomFile(bImg, VOLUME);
      const hash = await sha256File(bImg);
      const b: Node = { sc: await startSidecar(join(dir, 'state-b')), tls: [] };
      await cli(b, 'pair', 'create', PAIR, '--volume', bImg, '--role', 'secondary');
      const before = await refused(b.sc, 'garbage');

      const [host, port] = [b.sc.addresses.peer.replace(/:\d+$/, ''), Number(b.sc.addresses.peer.split(':').pop())];
      const sock = connect({ host, port });
      sock.on('error', () => undefined);
      track('garbage socket', async () => void sock.destroy());
      const closed = new Promise<void>((r) => sock.once('close', () => r()));
      await new Promise<void>((r) => sock.once('connect', () => r()));
      sock.write(Buffer.concat([Buffer.from('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'), randomBytes(64 * KiB)]));
      const gone = await Promise.race([closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 10_000).unref())]);
      if (!gone) sock.destroy();
      expect(gone).toBe(true);

      await waitFor('garbage counted', async () => (await refused(b.sc, 'garbage')) > before, { timeoutMs: 5_000 });
      expect((await status(b)).state).toBe('Initializing');
      expect(await sha256File(bImg)).toBe(hash);
    },
    TEST_TIMEOUT,
  );

  for (const c of [
    { what: 'a primary naming a pair the secondary does not have (--peer-pair)', args: ['--peer-pair', 'nosuch'], aBytes: VOLUME, reason: 'pair', error: /nosuch/ },
    { what: 'a primary whose volume size differs', args: [], aBytes: VOLUME + 32 * MiB, reason: 'handshake', error: /size/ },
  ]) {
    it(
      `keeps ${c.what} Retrying and leaves the secondary untouched`,
      async () => {
        let hash = '';
        const rig = await startRig({
          prepareA: (p) => randomFile(p, c.aBytes),
          prepareB: async (p) => {
            await randomFile(p, VOLUME);
            hash = await sha256File(p);
          },
          primaryArgs: c.args,
        });
        const s = await until(rig.a, 'refused handshakes', (x) => x.state === 'Retrying' && x.retries >= 5 && x.lastError !== '', 30_000);
        expect(s.lastError).toMatch(c.error);
        // B is fresh: every refusal it counted is one of A's handshakes.
        expect(await refused(rig.b.sc, c.reason)).toBeGreaterThanOrEqual(5);
        expect((await status(rig.b)).state).toBe('Initializing');
        expect(s.bytesOnWire).toBe(0);
        expect(await sha256File(rig.bImg)).toBe(hash);
        await assertStates(rig.rec, ['Retrying']);
      },
      TEST_TIMEOUT,
    );
  }

  it(
    'replicates over mutual TLS between sidecars of one CA and refuses a primary of another CA',
    async () => {
      const dir = await tempDir();
      const [good, rogue] = await Promise.all([makePeerPki(dir, 'good'), makePeerPki(dir, 'rogue')]);
      const sidecarTls = (p: PeerPki): string[] => ['--tls-cert', p.peer.cert, '--tls-key', p.peer.key, '--tls-ca', p.ca];
      const cliTls = (p: PeerPki): string[] => ['--tls-cert', p.client.cert, '--tls-key', p.client.key, '--tls-ca', p.ca];
      const img = (n: string): string => join(dir, n);
      await randomFile(img('A.img'), VOLUME);
      await sparseFile(img('B.img'), VOLUME);

      const b: Node = { sc: await startSidecar(img('state-b'), sidecarTls(good)), tls: cliTls(good) };
      await cli(b, 'pair', 'create', PAIR, '--volume', img('B.img'), '--role', 'secondary');
      let a: Node = { sc: await startSidecar(img('state-a'), sidecarTls(good)), tls: cliTls(good) };
      await cli(a, 'pair', 'create', PAIR, '--volume', img('A.img'), '--role', 'primary', '--peer', b.sc.addresses.peer, '--nbd-listen', '127.0.0.1:0');
      let rec = recordStates(() => a);
      await until(a, 'InSync over mutual TLS', inSync, 60_000);
      await until(b, 'secondary InSync', (x) => x.state === 'InSync');
      await expectIdentical(img('A.img'), img('B.img'));
      await assertStates(rec, ALLOWED);
      await a.sc.stop();
      const hash = await sha256File(img('B.img'));

      // Third sidecars, as primaries for B's pair, with certificates from another CA:
      // one trusting only that CA (it aborts the handshake on B's certificate), and one
      // trusting B's CA, so that refusing it is B's decision.
      const rogues = [
        { what: 'a primary of another CA', sidecar: sidecarTls(rogue), cli: cliTls(rogue) },
        {
          what: "a primary with another CA's certificate that trusts B's CA",
          // Its control port is driven with good's operator certificate (the CA it trusts).
          sidecar: ['--tls-cert', rogue.peer.cert, '--tls-key', rogue.peer.key, '--tls-ca', good.ca, '--operator-identity', 'spiffe://blockmirror/good/operator'],
          cli: ['--tls-cert', good.client.cert, '--tls-key', good.client.key, '--tls-ca', rogue.ca],
        },
      ];
      const refusals: string[] = [];
      for (const [i, r] of rogues.entries()) {
        const refusedBefore = await refused(b.sc);
        await copyFile(img('A.img'), img(`C${i}.img`));
        // Its own data lineage: were it accepted, a full sync would overwrite B.
        await writeFile(img(`C${i}.img`), randomBytes(MiB), { flag: 'r+' });
        a = { sc: await startSidecar(img(`state-c${i}`), r.sidecar), tls: r.cli };
        await cli(a, 'pair', 'create', PAIR, '--volume', img(`C${i}.img`), '--role', 'primary', '--peer', b.sc.addresses.peer, '--nbd-listen', '127.0.0.1:0');
        rec = recordStates(() => a);
        const s = await until(a, `${r.what} refused repeatedly`, (x) => x.state === 'Retrying' && x.retries >= 5 && x.lastError !== '', 30_000);
        expect(s.bytesOnWire).toBe(0);
        expect(s.bytesReplicated).toBe(0);
        expect(await sha256File(img('B.img'))).toBe(hash);
        await assertStates(rec, ['Retrying']);
        await a.sc.stop();
        const refusedAfter = await refused(b.sc);
        refusals.push(`${r.what}: refused_total ${refusedBefore} -> ${refusedAfter}, its last error: ${s.lastError}`);
      }
      // B refused the second one itself: that must be counted (checked last, not to mask the rest).
      if (/refused_total (\d+) -> \1,/.test(refusals[1]!)) {
        const bLog = b.sc.log.filter((l) => /tls|certif|refused|handshake/i.test(l)).slice(-5);
        throw new Error(`the secondary did not count refusing a client certificate of another CA in blockmirror_peer_refused_total:\n${refusals.join('\n')}\nits log about it: ${bLog.length ? bLog.join('\n') : '(nothing)'}`);
      }
    },
    TEST_TIMEOUT,
  );
});
