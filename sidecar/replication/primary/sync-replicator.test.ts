import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import winston from 'winston';
import { FakeLink } from '../../../test/helpers/fake-link.js';
import { openTempVolume, type TempVolume } from '../../../test/helpers/temp-volume.js';
import { waitFor } from '../../../test/helpers/wait-for.js';
import { DirtyTracker } from '../../bitmap/dirty-tracker.js';
import type { HandshakeResponse__Output } from '../../../proto/gen/blockmirror/replication/v1/HandshakeResponse.js';
import { BlockBitmap } from '../../bitmap/block-bitmap.js';
import { VolumeIoError } from '../../errors.js';
import { PairMeta } from '../lineage/pair-meta.js';
import { payloadBytes } from '../wire/frame-coalescer.js';
import { SyncReplicator } from './sync-replicator.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const BLOCK = 64 * KiB;
const logger = winston.createLogger({ silent: true });

describe('SyncReplicator', () => {
  let tmp: TempVolume;
  let tracker: DirtyTracker;
  let link: FakeLink;
  let r: SyncReplicator | undefined;

  beforeEach(async () => {
    tmp = await openTempVolume('bm-syncrep-', 16 * MiB);
    tracker = await DirtyTracker.open({ path: join(tmp.dir, 'dirty.log'), volumeBytes: 16 * MiB, blockSize: BLOCK, sweepIntervalMs: 0 });
  });

  afterEach(async () => {
    r?.close();
    r = undefined;
    await tracker.close();
    await tmp.remove();
  });

  let meta: PairMeta;
  const start = async (
    extra: { maxInFlightBytes?: number; quietResyncWindowBytes?: number; resyncQuietMs?: number } = {},
    fullSyncRequired = false,
    answer: Partial<HandshakeResponse__Output> = {},
    before?: (m: PairMeta) => Promise<void>,
    beforeConnect?: (rep: SyncReplicator) => Promise<void>,
  ): Promise<SyncReplicator> => {
    meta = await PairMeta.open(join(tmp.dir, 'state'), 'primary');
    await before?.(meta);
    r = new SyncReplicator({
      volume: tmp.volume,
      tracker,
      meta,
      peer: 'unused',
      remotePair: 'p',
      logger,
      writeTimeoutMs: 60_000,
      ...extra,
      link: (onSession) => (link = new FakeLink(onSession)),
    });
    r.start();
    await beforeConnect?.(r);
    link.connect(fullSyncRequired, 'gen-b', answer);
    return r;
  };

  /**
   * An application write as the export does it: recorded, written locally, mirrored.
   * Resolves once it is handed to replication; `.acked` resolves with the answer.
   */
  const write = async (rep: SyncReplicator, offset: number, length: number, fill: number): Promise<{ acked: Promise<void> }> => {
    const ticket = await rep.beforeLocalWrite(offset, length);
    await tracker.beforeWrite(offset, length);
    const data = Buffer.alloc(length, fill);
    await tmp.volume.write(offset, data);
    return { acked: rep.afterLocalWrite(ticket, offset, [data], length) };
  };

  it('keeps a block dirty while a newer acknowledged write of it is not yet durable on the secondary', async () => {
    const rep = await start();
    // Write 1 of block 0, acknowledged (written on the secondary, not yet durable).
    const w1 = await write(rep, 0, 4 * KiB, 1);
    link.unanswered('mirror')[0]!.ack();
    await w1.acked;
    // A barrier goes out: it covers write 1 only.
    const barrier = rep.flushBarrier();
    const barrierFrame = link.unanswered('mirror')[0]!;
    expect(barrierFrame.frame.durable).toBe(true);
    // Write 2 of the same block is sent after the barrier and acknowledged before it:
    // on the secondary it may sit after the barrier, not yet durable.
    const w2 = await write(rep, 0, 4 * KiB, 2);
    link.unanswered('mirror').find((f) => f !== barrierFrame)!.ack();
    await w2.acked;
    barrierFrame.ack();
    await barrier;
    // A power cut of the secondary now could lose write 2: the block must stay dirty.
    expect(tracker.isDirty(0)).toBe(true);
    // The next barrier covers write 2 as well: clean.
    const next = rep.flushBarrier();
    link.unanswered('mirror')[0]!.ack();
    await next;
    expect(tracker.isDirty(0)).toBe(false);
    expect(rep.state).toBe('InSync');
  });

  it('acknowledges a write the secondary missed only once a new generation is durable, when the secondary may hold the current one', async () => {
    const rep = await start({}, false, {}, (m) => m.markShared());
    const first = meta.current;
    link.fail('test: the link is cut');
    const w = await write(rep, 3 * BLOCK, 4 * KiB, 5);
    await w.acked;
    // On disk by the time the application has its answer.
    const onDisk = await PairMeta.load(join(tmp.dir, 'state'), 'primary');
    expect(onDisk.generations).toEqual({ current: expect.not.stringMatching(new RegExp(`^${first}$`)) as unknown, bitmap: first, history: [first] });
    // One new generation for the whole outage.
    await (await write(rep, 5 * BLOCK, 4 * KiB, 6)).acked;
    expect(meta.current).toBe(onDisk.current);
  });

  it("ships the secondary's divergent blocks with its own, then tells it which generation it holds", async () => {
    // This primary wrote alone after g-old (a new generation, g-old its bitmap); the
    // secondary holds g-old plus block 7 it wrote as a primary that we never got.
    const divergent = new BlockBitmap(256);
    divergent.set(7);
    let old = '';
    const rep = await start({}, false, {}, async (m) => {
      old = m.current;
      await m.markShared();
      await m.diverge();
    });
    link.fail('test: a new session follows');
    link.answer = () => 'ack';
    await (await write(rep, 2 * BLOCK, 4 * KiB, 9)).acked;
    link.connect(false, 'gen-b', { generations: { current: old, bitmap: '', history: [] }, divergentBlocks: Buffer.from(divergent.toBytes()) });
    await waitFor('told the secondary it holds our generation', () => link.synced.length === 1, { timeoutMs: 10_000 });
    // The record that the peer adopted it is written after the call returns (peerAdopted):
    // the replicator names the peer's generation once it is.
    await waitFor('the adoption recorded', () => rep.peerGeneration === meta.current, { timeoutMs: 10_000 });
    const sentBlocks = link.sent.filter((f) => f.kind === 'resync').flatMap((f) => f.frame.runs!.map((run) => Number(run.offset) / BLOCK));
    expect(sentBlocks.sort((a, b) => a - b)).toEqual([2, 7]);
    expect(link.synced[0]!.generations.current).toBe(meta.current);
    expect(meta.generations.bitmap).toBe('');
    expect(tracker.isDirty(7)).toBe(false);
    expect(rep.state).toBe('InSync');
  });

  it('bounds the foreground bytes in flight to a stalled secondary; later writes wait their turn', async () => {
    const rep = await start({ maxInFlightBytes: 1 * MiB });
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 8; i++) writes.push((await write(rep, i * 256 * KiB, 256 * KiB, i + 1)).acked);
    const inFlight = (): number => link.unanswered('mirror').reduce((n, f) => n + payloadBytes(f.frame.payload), 0);
    // 1 MiB on the wire, the other four writes held back (unanswered, as the secondary is silent).
    expect(inFlight()).toBe(1 * MiB);
    expect(link.unanswered('mirror')).toHaveLength(4);
    // Each answer lets exactly the next write go, in order.
    link.unanswered('mirror')[0]!.ack();
    await waitFor('the fifth write sent', () => link.sent.length === 5, { timeoutMs: 2000 });
    expect(link.sent[4]!.frame.runs![0]!.offset).toBe(4 * 256 * KiB);
    expect(inFlight()).toBe(1 * MiB);
    link.answer = () => 'ack';
    for (const f of link.unanswered('mirror')) f.ack();
    await Promise.all(writes);
    expect(link.sent.filter((f) => f.kind === 'mirror')).toHaveLength(8);
  });

  it('a secondary that cannot apply makes the pair Retrying with the error, backs off, and heals by itself', async () => {
    const rep = await start();
    let refuse = true;
    link.answer = () => (refuse ? 'refuse' : 'ack');
    const w = await write(rep, 0, 4 * KiB, 7);
    // Answered to the application all the same: the block is durably out of sync.
    await w.acked;
    expect(rep.state).toBe('Retrying');
    expect(rep.lastError).toMatch(/ENOSPC/);
    expect(rep.outOfSyncBytes).toBe(BLOCK);
    // While refused, later writes are not mirrored, only tracked.
    const sentBefore = link.sent.length;
    await (await write(rep, BLOCK, 4 * KiB, 8)).acked;
    expect(link.sent.slice(sentBefore).filter((f) => f.kind === 'mirror')).toHaveLength(0);
    // Retries are paced by the backoff, not resent every 50 ms.
    const t0 = link.sent.length;
    await new Promise((res) => setTimeout(res, 2000));
    const attempts = link.sent.slice(t0).filter((f) => f.kind === 'resync').length;
    expect(attempts).toBeGreaterThan(0);
    expect(attempts).toBeLessThanOrEqual(6);
    expect(rep.refusals).toBeGreaterThanOrEqual(2);
    // Space returns: the next attempt applies, the pair heals without anyone resuming it.
    refuse = false;
    await waitFor('InSync again', () => rep.state === 'InSync', { timeoutMs: 20_000 });
    expect(rep.lastError).toBe('');
    expect(rep.outOfSyncBytes).toBe(0);
    expect(tracker.dirtyBlocks).toBe(0);
  });

  it('a secondary that takes the copy but cannot record it stays Retrying between attempts, then completes', async () => {
    link = undefined as unknown as FakeLink;
    const rep = await start({}, true);
    link.answer = () => 'ack';
    link.refuseMarkSynced = 'STATE_IO: ENOSPC: no space left on device';
    await waitFor('the first refused MarkSynced', () => rep.state === 'Retrying' && /ENOSPC/.test(rep.lastError), { timeoutMs: 20_000 });
    // Every later pass finds nothing to send and only records the copy: sampled across
    // several attempts, the pair never looks like a plain initial copy again.
    const seen = new Set<string>();
    const deadline = performance.now() + 2500;
    while (performance.now() < deadline) {
      seen.add(rep.state);
      await new Promise((res) => setTimeout(res, 5));
    }
    expect([...seen]).toEqual(['Retrying']);
    const attempts = link.calls.filter((c) => c === 'markSynced').length;
    expect(attempts).toBeGreaterThanOrEqual(2);
    expect(attempts).toBeLessThanOrEqual(8);
    link.refuseMarkSynced = undefined;
    await waitFor('InSync once the copy is recorded', () => rep.state === 'InSync', { timeoutMs: 20_000 });
    expect(rep.lastError).toBe('');
  });

  it('resumes a full sync to the same secondary image after the session ends, and starts over for another image', async () => {
    const full = 16 * MiB;
    // Data everywhere: frames of 256 KiB (all-zero ones would be joined).
    await tmp.volume.write(0, Buffer.alloc(full, 7));
    const rep = await start({}, true);
    // The secondary answers the first four resync frames and every barrier, then stalls.
    let answered = 0;
    link.answer = (f) => (f.kind === 'mirror' || ++answered <= 4 ? 'ack' : undefined);
    await waitFor('four frames answered', () => answered > 4);
    await rep.flushBarrier();
    // Four 256 KiB frames confirmed durable: clean in the dirty log.
    const left = tracker.dirtyBlocks * BLOCK;
    expect(left).toBe(full - 4 * 256 * KiB);
    // The session ends (a write timeout on a loaded link); the next one, to the same
    // image, goes on from what was durably confirmed.
    link.answer = undefined;
    link.fail('write timeout');
    link.connect(true);
    await waitFor('the resumed copy to be counted', () => rep.state === 'Initializing');
    expect(rep.outOfSyncBytes).toBe(left);
    // A restart of the primary resumes it too (the target is on disk with the pair).
    rep.close();
    r = undefined;
    const again = await start({}, true);
    expect(again.outOfSyncBytes).toBe(left);
    // Another secondary image (recreated: a new generation) needs everything again.
    link.fail('the secondary was recreated');
    link.connect(true, 'gen-b2');
    await waitFor('everything out of sync again', () => again.outOfSyncBytes === full);
    link.answer = () => 'ack';
    for (const f of link.unanswered('resync')) f.ack();
    await waitFor('InSync with the new image', () => again.state === 'InSync', { timeoutMs: 20_000 });
    expect(link.calls.filter((c) => c === 'markSynced')).toHaveLength(1);
  });

  it("tells the secondary it holds our generation only once the session's out-of-sync set is built", async () => {
    // A full copy's session: its blocks are marked dirty (durably) before they count out of
    // sync. A pass started meanwhile (here by a resume; a stale retry timer or a demotion's
    // nudge likewise) found nothing to ship and told an empty secondary it held a
    // complete image of our generation.
    await tmp.volume.write(0, Buffer.alloc(16 * MiB, 7));
    let release = (): void => undefined;
    const gate = new Promise<void>((res) => (release = res));
    const markAllDirty = tracker.markAllDirty.bind(tracker);
    tracker.markAllDirty = async () => {
      await gate;
      await markAllDirty();
    };
    const rep = await start({}, true);
    rep.setPaused(true);
    rep.setPaused(false);
    await new Promise((res) => setTimeout(res, 100));
    expect(link.calls.filter((c) => c === 'markSynced')).toHaveLength(0);
    expect(rep.state).toBe('Initializing');
    release();
    link.answer = () => 'ack';
    await waitFor('InSync after the copy', () => rep.state === 'InSync', { timeoutMs: 20_000 });
    expect(link.calls.filter((c) => c === 'markSynced')).toHaveLength(1);
    expect(link.sent.filter((f) => f.kind === 'resync').reduce((n, f) => n + payloadBytes(f.frame.payload), 0)).toBe(16 * MiB);
  });

  it('a session whose blocks cannot be recorded is dropped, and the next one copies', async () => {
    await tmp.volume.write(0, Buffer.alloc(16 * MiB, 7));
    const markAllDirty = tracker.markAllDirty.bind(tracker);
    tracker.markAllDirty = () => Promise.reject(new Error('ENOSPC: no space left on device'));
    const rep = await start({}, true);
    await waitFor('the session dropped', () => !link.connected && link.lastError.includes('ENOSPC'));
    expect(link.calls.filter((c) => c === 'markSynced')).toHaveLength(0);
    tracker.markAllDirty = markAllDirty;
    link.answer = () => 'ack';
    link.connect(true);
    await waitFor('InSync after the copy', () => rep.state === 'InSync', { timeoutMs: 20_000 });
  });

  it('a block this side cannot read fails the pass, leaves no block of it locked, and is copied by a later pass', async () => {
    await tmp.volume.write(0, Buffer.alloc(16 * MiB, 7));
    const vol = tmp.volume;
    const read = vol.read.bind(vol);
    let broken = true;
    // Block 8 (in the third 256 KiB frame) unreadable; the frames after it are read ahead.
    vol.read = (offset: number, length: number) => (broken && offset <= 8 * BLOCK && 8 * BLOCK < offset + length ? Promise.reject(new VolumeIoError('read failed: EIO', { errno: 'EIO' })) : read(offset, length));
    const rep = await start({}, true);
    link.answer = () => 'ack';
    await waitFor('the pass stopped at the unreadable frame', () => link.sent.some((f) => f.kind === 'resync') && rep.outOfSyncBytes > 0 && !link.sent.some((f) => !f.settled), { timeoutMs: 10_000 });
    // A block read ahead but never sent: a write to it goes through, it does not wait for a pass.
    const written = (async () => (await (await write(rep, 40 * BLOCK, 4 * KiB, 1)).acked, 'written'))();
    const stuck = new Promise<string>((res) => setTimeout(() => res('still waiting after 10 s'), 10_000).unref());
    expect(await Promise.race([written, stuck])).toBe('written');
    expect(rep.state).toBe('Initializing');
    expect(link.calls.filter((c) => c === 'markSynced')).toHaveLength(0);
    broken = false;
    await waitFor('InSync once the block reads again', () => rep.state === 'InSync', { timeoutMs: 10_000 });
    expect(link.calls.filter((c) => c === 'markSynced')).toHaveLength(1);
  });

  it("a secondary that takes a pass's frames but cannot make them durable stays Retrying and is retried with backoff", async () => {
    // Buffered writes succeed and the fdatasync fails (a full thin pool): every frame is
    // acknowledged, only the pass's closing barrier is refused.
    await tmp.volume.write(0, Buffer.alloc(MiB, 7));
    const rep = await start({}, true);
    let refuse = true;
    link.answer = (f) => (f.frame.durable && refuse ? 'refuse' : 'ack');
    await waitFor('the barrier refused', () => rep.state === 'Retrying' && /ENOSPC/.test(rep.lastError));
    const t0 = link.sent.length;
    await new Promise((res) => setTimeout(res, 2000));
    // Each pass resends the whole copy: paced by the backoff, not every 50 ms.
    const passes = link.sent.slice(t0).filter((f) => f.kind === 'mirror' && f.frame.durable).length;
    expect(passes).toBeGreaterThan(0);
    expect(passes).toBeLessThanOrEqual(6);
    expect(rep.state).toBe('Retrying');
    expect(rep.lastError).toMatch(/ENOSPC/);
    refuse = false;
    await waitFor('InSync once durable', () => rep.state === 'InSync', { timeoutMs: 20_000 });
    expect(link.calls.filter((c) => c === 'markSynced')).toHaveLength(1);
  });

  /** Fills the volume with data, and counts the reads made of it from then on. */
  const fillCountingReads = async (): Promise<{ count: number }> => {
    await tmp.volume.write(0, Buffer.alloc(16 * MiB, 7));
    const vol = tmp.volume;
    const read = vol.read.bind(vol);
    const reads = { count: 0 };
    vol.read = (offset: number, length: number) => {
      reads.count++;
      return read(offset, length);
    };
    return reads;
  };

  it('reads resync frames ahead of a full window, so the window and not the disk paces a resync', async () => {
    const reads = await fillCountingReads();
    // The application wrote just before (the last block, out of sync anyway): the
    // secondary stalls, and the window (16 frames of 256 KiB at its floor) fills.
    await start({ resyncQuietMs: 600_000 }, true, {}, undefined, async (rep) => void (await write(rep, 16 * MiB - BLOCK, BLOCK, 7)));
    await waitFor('a full window on the wire', () => link.unanswered('resync').length === 16);
    // The frames after the window are read (32 ahead, besides the one waiting to go).
    await waitFor('the frames after the window read', () => reads.count >= 16 + 32);
    expect(link.unanswered('resync')).toHaveLength(16);
  });

  it('fills a larger window while the application is quiet, and reads its worth ahead', async () => {
    const reads = await fillCountingReads();
    // No write yet: 6 MiB (24 frames) go out, past the controller's floor of 16.
    await start({ quietResyncWindowBytes: 6 * MiB }, true);
    await waitFor('the quiet window on the wire', () => link.unanswered('resync').length === 24);
    await waitFor('the frames after the window read', () => reads.count >= 24 + 32);
    expect(link.unanswered('resync')).toHaveLength(24);
  });

  it('joins all-zero resync frames in a row into one zero run, keeping the data frames and their order', async () => {
    await tmp.volume.write(4 * MiB, Buffer.alloc(256 * KiB, 9));
    const rep = await start({}, true);
    link.answer = () => 'ack';
    await waitFor('InSync after the copy', () => rep.state === 'InSync', { timeoutMs: 20_000 });
    const runs = link.sent.filter((f) => f.kind === 'resync').map((f) => f.frame.runs!.map((x) => [Number(x.offset), Number(x.length), x.zero]));
    expect(runs).toEqual([[[0, 4 * MiB, true]], [[4 * MiB, 256 * KiB, false]], [[4 * MiB + 256 * KiB, 12 * MiB - 256 * KiB, true]]]);
    expect(tracker.dirtyBlocks).toBe(0);
  });
});
