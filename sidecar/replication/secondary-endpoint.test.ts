import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import winston from 'winston';
import { openTempVolume, type TempVolume } from '../../test/helpers/temp-volume.js';
import type { Volume } from '../volume/volume.js';
import { frameChecksum } from './frame-builder.js';
import { GroupJournal } from './group-journal.js';
import { PairMeta } from './pair-meta.js';
import { SecondaryEndpoint } from './secondary-endpoint.js';

const MiB = 1 << 20;
const logger = winston.createLogger({ silent: true });

describe('SecondaryEndpoint', () => {
  let tmp: TempVolume;
  let dir: string;
  let volume: Volume;
  let ep: SecondaryEndpoint;

  beforeEach(async () => {
    tmp = await openTempVolume('bm-sec-', 4 * MiB);
    ({ dir, volume } = tmp);
    ep = new SecondaryEndpoint('db', volume, 65536, await PairMeta.open(join(dir, 'state')), await GroupJournal.open(join(dir, 'state', 'journal'), volume), logger);
  });

  afterEach(() => tmp.remove());

  const hello = { pairId: 'db', volumeBytes: 4 * MiB, blockSize: 65536, primaryGeneration: 'gen-a', syncedSecondaryGeneration: '', mode: 'sync' };

  it('refuses a primary with another volume size or block size', () => {
    expect(() => ep.handshake({ ...hello, volumeBytes: 8 * MiB })).toThrow(/volume size mismatch/);
    expect(() => ep.handshake({ ...hello, blockSize: 4096 })).toThrow(/block size mismatch/);
    expect(ep.connected).toBe(false);
  });

  it('asks for a full sync until one completed, then only for the same generations', async () => {
    const first = ep.handshake(hello);
    expect(first.fullSyncRequired).toBe(true);
    await ep.markSynced(first.sessionId);
    expect(ep.consistent).toBe(true);
    const again = ep.handshake({ ...hello, syncedSecondaryGeneration: first.secondaryGeneration });
    expect(again.fullSyncRequired).toBe(false);
    // Another primary lineage would overwrite the only complete copy: refused.
    expect(() => ep.handshake({ ...hello, primaryGeneration: 'gen-b' })).toThrow(/generation mismatch/);
  });

  it('writes a good frame durably and refuses a corrupt one without writing anything', async () => {
    const { sessionId } = ep.handshake(hello);
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
    const data = Buffer.alloc(512, 1);
    await expect(ep.apply({ sessionId: 'nope', sequence: 1, runs: [{ offset: 0, length: 512, zero: false }], payload: data, crc32c: frameChecksum([{ offset: 0, length: 512, zero: false }], data), durable: false, group: 0 })).rejects.toThrow(/unknown session/);
  });

  it('makes the frames written before MarkSynced durable before recording the complete image', async () => {
    const { sessionId } = ep.handshake(hello);
    const data = Buffer.alloc(4096, 5);
    const runs = [{ offset: 0, length: 4096, zero: false }];
    // An initial-copy frame: written, not durable.
    await ep.apply({ sessionId, sequence: 1, runs, payload: data, crc32c: frameChecksum(runs, data), durable: false, group: 0 });
    const flush = jest.spyOn(volume, 'flush');
    await ep.markSynced(sessionId);
    expect(flush).toHaveBeenCalled();
    expect(ep.consistent).toBe(true);
  });

  it('reports InSync to a sync primary and Replicating to an async one', async () => {
    const s1 = ep.handshake(hello);
    await ep.markSynced(s1.sessionId);
    expect(ep.state).toBe('InSync');
    ep.handshake({ ...hello, mode: 'async', syncedSecondaryGeneration: s1.secondaryGeneration });
    expect(ep.state).toBe('Replicating');
  });

  it('shows what it cannot apply as Retrying with the error until applies succeed again', async () => {
    const s1 = ep.handshake(hello);
    await ep.markSynced(s1.sessionId);
    const data = Buffer.alloc(4096, 5);
    const runs = [{ offset: 0, length: 4096, zero: false }];
    jest.spyOn(volume, 'write').mockRejectedValueOnce(Object.assign(new Error('write on v.img failed: ENOSPC: no space left on device'), { code: 'VOLUME_IO' }));
    await expect(ep.apply({ sessionId: s1.sessionId, sequence: 1, runs, payload: data, crc32c: frameChecksum(runs, data), durable: false, group: 0 })).rejects.toThrow(/ENOSPC/);
    expect(ep.state).toBe('Retrying');
    expect(ep.lastError).toMatch(/ENOSPC/);
    expect(ep.stats.applyErrors).toBe(1);
  });
});
