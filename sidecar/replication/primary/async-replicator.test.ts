import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import winston from 'winston';
import { DirtyTracker } from '../../bitmap/dirty-tracker.js';
import { FakeLink } from '../../../test/helpers/fake-link.js';
import { openTempVolume, type TempVolume } from '../../../test/helpers/temp-volume.js';
import { waitFor } from '../../../test/helpers/wait-for.js';
import type { Volume } from '../../volume/volume.js';
import { AsyncReplicator, GroupAbortedError } from './async-replicator.js';
import { PairMeta } from '../lineage/pair-meta.js';

const MiB = 1 << 20;
const BLOCK = 65536;
const logger = winston.createLogger({ silent: true });

describe('AsyncReplicator: copy-aside budget', () => {
  let tmp: TempVolume;
  let dir: string;
  let volume: Volume;
  let tracker: DirtyTracker;

  beforeEach(async () => {
    tmp = await openTempVolume('bm-async-', 64 * MiB);
    ({ dir, volume } = tmp);
    tracker = await DirtyTracker.open({ path: join(dir, 'dirty.log'), volumeBytes: 64 * MiB, blockSize: BLOCK, sweepIntervalMs: 0 });
  });

  afterEach(async () => {
    await tracker.close();
    await tmp.remove();
  });

  /** A replicator whose link is never started: cutting and copying aside need none. */
  async function replicator(asideBudgetBytes: number): Promise<AsyncReplicator> {
    const meta = await PairMeta.open(join(dir, 'state'), 'primary');
    return new AsyncReplicator({ volume, tracker, meta, peer: '127.0.0.1:1', remotePair: 'p', logger, onWork: () => undefined, asideBudgetBytes });
  }

  /** One application write of a whole block, through the replicator's gates. */
  async function write(r: AsyncReplicator, block: number): Promise<void> {
    const ticket = await r.beforeLocalWrite(block * BLOCK, BLOCK);
    await volume.write(block * BLOCK, Buffer.alloc(BLOCK, block + 1));
    await r.afterLocalWrite(ticket);
  }

  it('abandons the draining group once writes would copy more than the budget aside, and gives its blocks back', async () => {
    const r = await replicator(2 * BLOCK);
    for (const b of [0, 1, 2, 3]) await write(r, b);
    r.cut(7);
    expect(r.hasChanges).toBe(false);
    // Two overwrites of unsent group blocks fit the budget; the third does not.
    await write(r, 0);
    await write(r, 1);
    expect(r.groupsAbandoned).toBe(0);
    await write(r, 2);
    expect(r.groupsAbandoned).toBe(1);
    // The group can no longer be sent (the secondary keeps its previous group)...
    await expect(r.drain(new AbortController().signal)).rejects.toBeInstanceOf(GroupAbortedError);
    r.groupDone(false, Date.now());
    // ...and every block of it is out of sync again, for the next group.
    expect(r.outOfSyncBytes).toBe(4 * BLOCK);
    r.close();
  });

  it('a write whose copy aside cannot be read is refused, and no later group waits for it to land', async () => {
    const r = await replicator(8 * BLOCK);
    for (const b of [0, 1]) await write(r, b);
    r.cut(1);
    const read = volume.read.bind(volume);
    volume.read = (offset: number, length: number) => (offset === 0 ? Promise.reject(new Error('EIO (injected)')) : read(offset, length));
    await expect(r.beforeLocalWrite(0, BLOCK)).rejects.toThrow(/EIO/);
    volume.read = read;
    r.groupDone(false, Date.now());
    // The next group starts from the writes after the cut: the refused one counted as
    // still in flight held it until its deadline.
    r.cut(2);
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new Error('held for a write that never lands')), 2000);
    try {
      await expect(r.drain(deadline.signal)).rejects.not.toThrow(/never lands/);
    } finally {
      clearTimeout(timer);
    }
    r.close();
  });

  it('copies aside within the budget without abandoning anything', async () => {
    const r = await replicator(8 * BLOCK);
    for (const b of [0, 1, 2, 3]) await write(r, b);
    r.cut(7);
    for (const b of [0, 1, 2, 3]) await write(r, b);
    expect(r.groupsAbandoned).toBe(0);
    expect(r.bytesWritten).toBe(8 * BLOCK);
    r.close();
  });
});

describe('AsyncReplicator: the initial copy and a refusing secondary', () => {
  let tmp: TempVolume;
  let tracker: DirtyTracker;
  let link: FakeLink;
  let r: AsyncReplicator | undefined;
  let meta: PairMeta;

  beforeEach(async () => {
    tmp = await openTempVolume('bm-async-', 4 * MiB);
    tracker = await DirtyTracker.open({ path: join(tmp.dir, 'dirty.log'), volumeBytes: 4 * MiB, blockSize: BLOCK, sweepIntervalMs: 0 });
    meta = await PairMeta.open(join(tmp.dir, 'state'), 'primary');
    r = new AsyncReplicator({
      volume: tmp.volume,
      tracker,
      meta,
      peer: 'unused',
      remotePair: 'p',
      logger,
      onWork: () => undefined,
      link: (onSession) => (link = new FakeLink(onSession)),
    });
    r.start();
  });

  afterEach(async () => {
    r?.close();
    await tracker.close();
    await tmp.remove();
  });

  it('makes the initial copy durable on the secondary before telling it the image is complete', async () => {
    const rep = r!;
    link.answer = () => 'ack';
    link.connect(true);
    await waitFor('full sync needed', () => rep.needsFullSync);
    rep.cut(0);
    const frames = await rep.drain(new AbortController().signal);
    expect(frames).toBeGreaterThan(0);
    await rep.fullSyncDone();
    // Group 0 frames are written without fdatasync: a durable barrier must come between
    // the last of them and MarkSynced, or a power cut there loses the copy silently.
    const synced = link.calls.indexOf('markSynced');
    expect(synced).toBeGreaterThan(0);
    expect(link.calls.slice(0, synced)).toContain('send resync durable');
    expect(link.calls.lastIndexOf('send resync durable')).toBeGreaterThan(link.calls.lastIndexOf('send resync'));
  });

  it('joins all-zero frames of a drain in a row into one zero run, keeping the data frames and their order', async () => {
    const rep = r!;
    await tmp.volume.write(MiB, Buffer.alloc(256 * 1024, 9));
    link.answer = () => 'ack';
    link.connect(true);
    await waitFor('full sync needed', () => rep.needsFullSync);
    rep.cut(0);
    const frames = await rep.drain(new AbortController().signal);
    const runs = link.sent.filter((f) => f.kind === 'resync').map((f) => f.frame.runs!.map((x) => [Number(x.offset), Number(x.length), x.zero]));
    expect(runs).toEqual([[[0, MiB, true]], [[MiB, 256 * 1024, false]], [[MiB + 256 * 1024, 3 * MiB - 256 * 1024, true]]]);
    expect(frames).toBe(3);
  });

  it('reads the frames of a drain ahead of the one being sent, and gives every block back when a read fails', async () => {
    const rep = r!;
    const vol = tmp.volume;
    const read = vol.read.bind(vol);
    let pending = 0;
    let most = 0;
    let failing = false;
    const bad = 40 * BLOCK;
    vol.read = async (offset: number, length: number) => {
      most = Math.max(most, ++pending);
      try {
        if (offset === bad && failing) throw new Error('EIO (injected)');
        return await read(offset, length);
      } finally {
        pending--;
      }
    };
    link.answer = () => 'ack';
    link.connect(true);
    await waitFor('full sync needed', () => rep.needsFullSync);
    rep.cut(0);
    await rep.drain(new AbortController().signal);
    // A frame is 4 blocks; one frame's reads at a time made the drain as slow as the disk.
    expect(most).toBeGreaterThan(4 * 4);
    await rep.fullSyncDone();
    rep.groupDone(true, 0);
    for (let b = 0; b < 64; b++) {
      const ticket = await rep.beforeLocalWrite(b * BLOCK, BLOCK);
      await vol.write(b * BLOCK, Buffer.alloc(BLOCK, b + 1));
      await rep.afterLocalWrite(ticket);
    }
    failing = true;
    const sentBefore = link.sent.length;
    rep.cut(1);
    await expect(rep.drain(new AbortController().signal)).rejects.toThrow(/EIO/);
    // Frames before the bad one went; the ones read after it did not.
    expect(link.sent.length - sentBefore).toBeLessThan(16);
    rep.groupDone(false, Date.now());
    expect(rep.outOfSyncBytes).toBe(64 * BLOCK);
  });

  it('tells the secondary the generation a group brought it to, unless a write it did not get was acknowledged after the cut', async () => {
    const rep = r!;
    // This primary wrote alone after g1 (now g2, g1 its bitmap); the secondary holds g1.
    const g1 = meta.current;
    await meta.markShared();
    await meta.diverge();
    const g2 = meta.current;
    link.answer = () => 'ack';
    link.connect(false, 'gen-b', { generations: { current: g1, bitmap: '', history: [] } });
    await waitFor('ready for groups', () => rep.ready);
    const write = async (block: number): Promise<void> => {
      const ticket = await rep.beforeLocalWrite(block * BLOCK, 4096);
      await tmp.volume.write(block * BLOCK, Buffer.alloc(4096, block));
      await rep.afterLocalWrite(ticket);
    };
    await write(1);
    rep.cut(10);
    // Paused after the cut: this write is acknowledged without the secondary, under g2.
    rep.setPaused(true);
    await write(2);
    rep.setPaused(false);
    await rep.drain(new AbortController().signal);
    rep.groupDone(true, Date.now());
    // Group 10 does not hold block 2: the secondary must not be told it holds g2. (The
    // attempt first makes later missed writes take a new generation, then looks.)
    await waitFor('the attempt after group 10', () => meta.data.shared);
    await new Promise((res) => setImmediate(res));
    expect(link.synced).toHaveLength(0);
    // The next group holds it: now it is told.
    rep.cut(11);
    await rep.drain(new AbortController().signal);
    rep.groupDone(true, Date.now());
    await waitFor('told the secondary it holds g2', () => link.synced.length >= 1);
    // Recorded after the call returns (peerAdopted): the replicator names the peer's generation once it is.
    await waitFor('the adoption recorded', () => rep.peerGeneration === g2);
    expect(link.synced).toHaveLength(1);
    expect(link.synced[0]!.generations.current).toBe(g2);
    expect(meta.generations.bitmap).toBe('');
  });

  it('shows a refusing secondary as Retrying with its error, and asks the coordinator to back off', async () => {
    const rep = r!;
    link.answer = () => 'ack';
    link.connect(true);
    await waitFor('full sync needed', () => rep.needsFullSync);
    rep.cut(0);
    await rep.drain(new AbortController().signal);
    await rep.fullSyncDone();
    rep.groupDone(true, 0);
    expect(rep.state).toBe('Replicating');
    // A group whose frames the secondary cannot stage (its state disk is full).
    link.answer = () => 'refuse';
    const ticket = await rep.beforeLocalWrite(0, BLOCK);
    await tmp.volume.write(0, Buffer.alloc(BLOCK, 3));
    await rep.afterLocalWrite(ticket);
    rep.cut(5);
    await expect(rep.drain(new AbortController().signal)).rejects.toMatchObject({ code: 'PEER_REFUSED' });
    rep.groupDone(false, Date.now());
    expect(rep.state).toBe('Retrying');
    expect(rep.lastError).toMatch(/ENOSPC/);
    expect(rep.retryAfterMs).toBeGreaterThanOrEqual(0);
    expect(rep.refusals).toBe(1);
    // The next group applies: healed, nobody resumed anything.
    link.answer = () => 'ack';
    rep.cut(6);
    await rep.drain(new AbortController().signal);
    rep.groupDone(true, Date.now());
    expect(rep.state).toBe('Replicating');
    expect(rep.lastError).toBe('');
  });
});
