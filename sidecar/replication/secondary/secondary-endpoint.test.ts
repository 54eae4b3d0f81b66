import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import winston from 'winston';
import type { HandshakeRequest__Output } from '../../../proto/gen/blockmirror/replication/v1/HandshakeRequest.js';
import { openSecondaryEndpoint } from '../../../test/helpers/open-secondary-endpoint.js';
import { openTempVolume, type TempVolume } from '../../../test/helpers/temp-volume.js';
import { BlockBitmap } from '../../bitmap/block-bitmap.js';
import { DirtyTracker } from '../../bitmap/dirty-tracker.js';
import type { Volume } from '../../volume/volume.js';
import { frameChecksum } from '../wire/frame-builder.js';
import type { GenerationIds } from '../lineage/generation-ids.js';
import { PairMeta } from '../lineage/pair-meta.js';
import type { SecondaryEndpoint } from './secondary-endpoint.js';

const MiB = 1 << 20;
const BLOCK = 65536;
const logger = winston.createLogger({ silent: true });

describe('SecondaryEndpoint', () => {
  let tmp: TempVolume;
  let dir: string;
  let volume: Volume;
  let ep: SecondaryEndpoint;
  const state = (): string => join(dir, 'state');

  beforeEach(async () => {
    tmp = await openTempVolume('bm-sec-', 4 * MiB);
    ({ dir, volume } = tmp);
    ep = await openSecondaryEndpoint('db', volume, BLOCK, state(), logger);
  });

  afterEach(() => tmp.remove());

  /** A primary of the previous release: its generation only. */
  const hello: HandshakeRequest__Output = { pairId: 'db', volumeBytes: 4 * MiB, blockSize: BLOCK, primaryGeneration: 'gen-a', syncedSecondaryGeneration: '', mode: 'sync', generations: null };
  /** A primary that sends its generation ids. */
  const from = (g: GenerationIds): HandshakeRequest__Output => ({ ...hello, primaryGeneration: g.current, generations: { ...g, history: [...g.history] } });
  const ids = (current: string, bitmap = '', history: string[] = []): GenerationIds => ({ current, bitmap, history });
  const frame = (sessionId: string, offset: number, fill: number, durable = true) => {
    const data = Buffer.alloc(4096, fill);
    const runs = [{ offset, length: 4096, zero: false }];
    return { sessionId, sequence: 1, runs, payload: data, crc32c: frameChecksum(runs, data), durable, group: 0 };
  };

  it('refuses a primary with another volume size or block size', async () => {
    await expect(ep.handshake({ ...hello, volumeBytes: 8 * MiB })).rejects.toThrow(/volume size mismatch/);
    await expect(ep.handshake({ ...hello, blockSize: 4096 })).rejects.toThrow(/block size mismatch/);
    expect(ep.connected).toBe(false);
  });

  it('asks an older primary for a full sync until one completed, then only for the same generations', async () => {
    const first = await ep.handshake(hello);
    expect(first.fullSyncRequired).toBe(true);
    await ep.markSynced(first.sessionId);
    expect(ep.consistent).toBe(true);
    const again = await ep.handshake({ ...hello, syncedSecondaryGeneration: first.secondaryGeneration });
    expect(again.fullSyncRequired).toBe(false);
    // Another primary lineage would overwrite the only complete copy: refused, as that release expects.
    await expect(ep.handshake({ ...hello, primaryGeneration: 'gen-b' })).rejects.toThrow(/generation mismatch/);
  });

  it('takes the generation ids a primary sends at MarkSynced, and a delta from its newer generation', async () => {
    const s1 = await ep.handshake(from(ids('g1')));
    expect(s1.fullSyncRequired).toBe(true);
    expect(s1.generations).toEqual({ current: '', bitmap: '', history: [] });
    await ep.markSynced(s1.sessionId, { current: 'g1', bitmap: '', history: [] });
    // The primary wrote during an outage (new generation g2, its log covering g1 on).
    const s2 = await ep.handshake(from(ids('g2', 'g1', ['g1'])));
    expect({ full: s2.fullSyncRequired, verdict: s2.verdict, mine: s2.generations?.current }).toEqual({ full: false, verdict: '', mine: 'g1' });
    await ep.markSynced(s2.sessionId, { current: 'g2', bitmap: 'g1', history: ['g1'] });
    // The bitmap is the primary's business: the secondary keeps the lineage.
    expect((await PairMeta.load(state(), 'secondary')).generations).toEqual({ current: 'g2', bitmap: '', history: ['g1'] });
  });

  it('knows its primary\'s current generation from the handshake, in session or refused, and from MarkSynced', async () => {
    expect(ep.peerGeneration).toBe('');
    const s1 = await ep.handshake(from(ids('g1')));
    // In session (no verdict): the status's peer generation once came only from a refusal.
    expect({ session: s1.sessionId !== '', verdict: ep.verdict, peer: ep.peerGeneration }).toEqual({ session: true, verdict: null, peer: 'g1' });
    await ep.markSynced(s1.sessionId, { current: 'g2', bitmap: 'g1', history: ['g1'] });
    expect(ep.peerGeneration).toBe('g2');
    ep.endSession(s1.sessionId);
    // Gone: the last one known stays.
    expect(ep.peerGeneration).toBe('g2');
    // Another lineage, refused: the refused dialler's.
    const r = await ep.handshake(from(ids('x9')));
    expect({ session: r.sessionId, peer: ep.peerGeneration }).toEqual({ session: '', peer: 'x9' });
  });

  it('refuses a split brain with both generations named, shows it, and takes the primary only once told to discard its data', async () => {
    const meta = await PairMeta.load(state(), 'secondary');
    // This side was a primary that wrote alone after g1 (g2); the dialler was promoted (g3).
    await meta.adopt(ids('g2', '', ['g1']), { primaryDemoted: false });
    ep = await openSecondaryEndpoint('db', volume, BLOCK, state(), logger);
    const r = await ep.handshake(from(ids('g3', 'g1', ['g1'])));
    expect(r.sessionId).toBe('');
    expect(r.verdict).toBe('split-brain');
    expect(r.reason).toMatch(/since generation g1: the primary holds g3 .* this side \(secondary\) holds g2/);
    expect(ep.state).toBe('SplitBrain');
    expect(ep.lastError).toBe(r.reason);
    await (await PairMeta.load(state(), 'secondary')).setDiscardMyData();
    ep = await openSecondaryEndpoint('db', volume, BLOCK, state(), logger);
    const ok = await ep.handshake(from(ids('g3', 'g1', ['g1'])));
    expect(ok.sessionId).not.toBe('');
    // Its own log does not cover g1 (no bitmap): the winner copies everything.
    expect(ok.fullSyncRequired).toBe(true);
  });

  it('tells a stale primary it is stale instead of taking its data', async () => {
    const meta = await PairMeta.load(state(), 'secondary');
    await meta.adopt(ids('g1'), { primaryDemoted: false });
    await meta.promote({ nowMs: 1, pointMs: 0 });
    await meta.demote();
    const newer = meta.generations;
    ep = await openSecondaryEndpoint('db', volume, BLOCK, state(), logger);
    const r = await ep.handshake(from(ids('g1')));
    expect(r.verdict).toBe('dialer-stale');
    expect(r.generations?.current).toBe(newer.current);
  });

  it('sends its divergent blocks with a delta, and forgets them only once told it holds the primary\'s generation', async () => {
    const meta = await PairMeta.load(state(), 'secondary');
    await meta.adopt(ids('g1'), { primaryDemoted: false });
    const log = await DirtyTracker.open({ path: join(state(), 'dirty.log'), volumeBytes: 4 * MiB, blockSize: BLOCK, sweepIntervalMs: 0 });
    await log.beforeWrite(3 * BLOCK, 100);
    await log.beforeWrite(40 * BLOCK + 5, 1);
    await log.close();
    ep = await openSecondaryEndpoint('db', volume, BLOCK, state(), logger);
    const r = await ep.handshake(from(ids('g3', 'g1', ['g1'])));
    expect(r.fullSyncRequired).toBe(false);
    const bits = new BlockBitmap(64, r.divergentBlocks);
    expect(r.divergentBlocks.length).toBe(8);
    expect([bits.nextSet(0), bits.nextSet(4), bits.nextSet(41), bits.count]).toEqual([3, 40, -1, 2]);
    // A resync frame marks the volume as at no point in time, durably, before it lands.
    await ep.apply(frame(r.sessionId, 3 * BLOCK, 9), 'resync');
    expect((await PairMeta.load(state(), 'secondary')).data.inconsistent).toBe(true);
    expect(ep.consistent).toBe(false);
    // A new session before MarkSynced sends them again.
    const again = await ep.handshake(from(ids('g3', 'g1', ['g1'])));
    expect(new BlockBitmap(64, again.divergentBlocks).count).toBe(2);
    await ep.markSynced(again.sessionId, { current: 'g3', bitmap: 'g1', history: ['g1'] }, true);
    const after = await PairMeta.load(state(), 'secondary');
    expect({ current: after.current, inconsistent: after.data.inconsistent, primaryDemoted: after.data.primaryDemoted }).toEqual({ current: 'g3', inconsistent: false, primaryDemoted: true });
    expect(ep.consistent).toBe(true);
    const third = await ep.handshake(from(ids('g3', 'g1', ['g1'])));
    expect(third.divergentBlocks.length).toBe(0);
    // A primary is back: promoting this side needs force again.
    expect((await PairMeta.load(state(), 'secondary')).data.primaryDemoted).toBe(false);
  });

  it('writes a good frame durably and refuses a corrupt one without writing anything', async () => {
    const { sessionId } = await ep.handshake(hello);
    const data = Buffer.alloc(8192, 7);
    await ep.apply({ sessionId, sequence: 1, runs: [{ offset: 65536, length: 8192, zero: false }], payload: data, crc32c: frameChecksum([{ offset: 65536, length: 8192, zero: false }], data), durable: true, group: 0 });
    expect(readFileSync(join(dir, 'v.img')).subarray(65536, 65536 + 8192).equals(data)).toBe(true);
    const bad = Buffer.alloc(4096, 9);
    await expect(ep.apply({ sessionId, sequence: 2, runs: [{ offset: 0, length: 4096, zero: false }], payload: bad, crc32c: (frameChecksum([{ offset: 0, length: 4096, zero: false }], bad) ^ 1) >>> 0, durable: true, group: 0 })).rejects.toMatchObject({ code: 'FRAME_CORRUPT' });
    expect(readFileSync(join(dir, 'v.img')).subarray(0, 4096).equals(Buffer.alloc(4096))).toBe(true);
    expect(ep.stats.crcErrors).toBe(1);
    await ep.apply({ sessionId, sequence: 3, runs: [{ offset: 65536, length: 4096, zero: true }], payload: Buffer.alloc(0), crc32c: frameChecksum([{ offset: 65536, length: 4096, zero: true }], Buffer.alloc(0)), durable: false, group: 0 });
    expect(readFileSync(join(dir, 'v.img')).subarray(65536, 65536 + 4096).equals(Buffer.alloc(4096))).toBe(true);
  });

  it('refuses frames outside a session', async () => {
    await expect(ep.apply(frame('nope', 0, 1, false))).rejects.toThrow(/unknown session/);
  });

  it('makes the frames written before MarkSynced durable before recording the complete image', async () => {
    const { sessionId } = await ep.handshake(hello);
    // An initial-copy frame: written, not durable.
    await ep.apply(frame(sessionId, 0, 5, false), 'resync');
    const flush = jest.spyOn(volume, 'flush');
    await ep.markSynced(sessionId);
    expect(flush).toHaveBeenCalled();
    expect(ep.consistent).toBe(true);
  });

  it('reports InSync to a sync primary and Replicating to an async one', async () => {
    const s1 = await ep.handshake(hello);
    await ep.markSynced(s1.sessionId);
    expect(ep.state).toBe('InSync');
    await ep.handshake({ ...hello, mode: 'async', syncedSecondaryGeneration: s1.secondaryGeneration });
    expect(ep.state).toBe('Replicating');
  });

  it('shows what it cannot apply as Retrying with the error until applies succeed again', async () => {
    const s1 = await ep.handshake(hello);
    await ep.markSynced(s1.sessionId);
    jest.spyOn(volume, 'write').mockRejectedValueOnce(Object.assign(new Error('write on v.img failed: ENOSPC: no space left on device'), { code: 'VOLUME_IO' }));
    await expect(ep.apply(frame(s1.sessionId, 0, 5, false))).rejects.toThrow(/ENOSPC/);
    expect(ep.state).toBe('Retrying');
    expect(ep.lastError).toMatch(/ENOSPC/);
    expect(ep.stats.applyErrors).toBe(1);
  });

  it("starts a new session only once the frames of the one it replaces are written: a late one never lands over the new session's data", async () => {
    const s1 = await ep.handshake(from(ids('g1')));
    // A frame of the first session whose first run stalls (a slow disk), the second run after it.
    let release = (): void => undefined;
    const gate = new Promise<void>((res) => (release = res));
    const write = volume.write.bind(volume);
    let stall = true;
    volume.write = async (offset: number, data: Buffer) => {
      if (stall) {
        stall = false;
        await gate;
      }
      return write(offset, data);
    };
    const data = Buffer.alloc(8192, 1);
    const runs = [
      { offset: 0, length: 4096, zero: false },
      { offset: BLOCK, length: 4096, zero: false },
    ];
    const late = ep.write({ sessionId: s1.sessionId, sequence: 1, runs, payload: data, crc32c: frameChecksum(runs, data), durable: false, group: 0 }, 'resync');
    // The primary gave that session up (its blocks count out of sync there) and starts another.
    let started = false;
    const next = ep.handshake(from(ids('g1'))).then((r) => {
      started = true;
      return r;
    });
    await new Promise((res) => setTimeout(res, 100));
    expect(started).toBe(false);
    // Frames of the replaced session arriving meanwhile are refused.
    await expect(ep.write(frame(s1.sessionId, 2 * BLOCK, 3), 'mirror')).rejects.toThrow(/unknown session/);
    release();
    await late;
    const s2 = await next;
    // The new session resends the block: its data stays.
    await ep.apply(frame(s2.sessionId, BLOCK, 2), 'resync');
    expect((await volume.read(BLOCK, 4096)).equals(Buffer.alloc(4096, 2))).toBe(true);
    expect((await volume.read(2 * BLOCK, 4096)).equals(Buffer.alloc(4096, 0))).toBe(true);
  });
});
