import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { crc32c } from '@node-rs/crc32';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Volume } from '../../volume/volume.js';
import type { DecodedRun } from '../wire/frame-builder.js';
import { GroupJournal } from './group-journal.js';

const KiB = 1024;

describe('GroupJournal', () => {
  let dir: string;
  let volume: Volume;
  let journal: GroupJournal;
  const image = (): Buffer => readFileSync(join(dir, 'v.img'));
  const data = (offset: number, fill: number, length = 4 * KiB): DecodedRun => ({ offset, length, zero: false, data: Buffer.alloc(length, fill) });

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bm-journal-'));
    writeFileSync(join(dir, 'v.img'), Buffer.alloc(256 * KiB, 1));
    volume = await Volume.open(join(dir, 'v.img'));
    journal = await GroupJournal.open(join(dir, 'journal'), volume);
  });

  afterEach(async () => {
    await journal.close();
    await volume.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('stages frames without touching the volume, then applies them all at once in order', async () => {
    await journal.stage(7, [data(0, 0xaa), { offset: 64 * KiB, length: 8 * KiB, zero: true }]);
    await journal.stage(7, [data(0, 0xbb, 2 * KiB)]);
    expect(image().equals(Buffer.alloc(256 * KiB, 1))).toBe(true);
    await journal.seal(7, 2);
    expect(await journal.apply(7)).toEqual({ records: 3, bytes: 14 * KiB });
    const img = image();
    // The later frame's bytes win where they overlap.
    expect(img.subarray(0, 2 * KiB).equals(Buffer.alloc(2 * KiB, 0xbb))).toBe(true);
    expect(img.subarray(2 * KiB, 4 * KiB).equals(Buffer.alloc(2 * KiB, 0xaa))).toBe(true);
    expect(img.subarray(64 * KiB, 72 * KiB).equals(Buffer.alloc(8 * KiB))).toBe(true);
    expect(img.subarray(72 * KiB, 80 * KiB).equals(Buffer.alloc(8 * KiB, 1))).toBe(true);
    // The file stays until its commit record is gone (GroupCommitter removes it then).
    expect(await journal.groupsOnDisk()).toEqual([7]);
    await journal.remove(7);
    expect(await journal.groupsOnDisk()).toEqual([]);
  });

  it('refuses to seal a group with missing frames or another group, and drops a superseded group', async () => {
    await journal.stage(1, [data(0, 0xaa)]);
    await expect(journal.seal(1, 2)).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    await expect(journal.seal(2, 1)).rejects.toThrow(/not staged/);
    // A newer group replaces the one never committed.
    await journal.stage(2, [data(4 * KiB, 0xcc)]);
    expect(await journal.groupsOnDisk()).toEqual([2]);
    await journal.seal(2, 1);
    await journal.apply(2);
    expect(image().subarray(0, 4 * KiB).equals(Buffer.alloc(4 * KiB, 1))).toBe(true);
    expect(image().subarray(4 * KiB, 8 * KiB).equals(Buffer.alloc(4 * KiB, 0xcc))).toBe(true);
  });

  it('replays a sealed group after a restart, idempotently, and discards unsealed leftovers', async () => {
    await journal.stage(5, [data(8 * KiB, 0xdd)]);
    await journal.seal(5, 1);
    // As after a crash mid-apply: a fresh journal object over the same files.
    const again = await GroupJournal.open(join(dir, 'journal'), volume);
    await again.apply(5);
    await again.apply(5);
    expect(image().subarray(8 * KiB, 12 * KiB).equals(Buffer.alloc(4 * KiB, 0xdd))).toBe(true);
    await again.stage(6, [data(0, 0xee)]);
    await again.close();
    const third = await GroupJournal.open(join(dir, 'journal'), volume);
    await third.discardAll();
    expect(readdirSync(join(dir, 'journal'))).toEqual([]);
    expect(image().subarray(0, 4 * KiB).equals(Buffer.alloc(4 * KiB, 1))).toBe(true);
  });

  it('refuses to apply a journal whose bytes changed on disk, writing nothing', async () => {
    await journal.stage(9, [data(12 * KiB, 0x77)]);
    await journal.seal(9, 1);
    const fh = await open(join(dir, 'journal', '9.jnl'), 'r+');
    await fh.write(Buffer.from([0x78]), 0, 1, 100);
    await fh.close();
    await expect(journal.apply(9)).rejects.toMatchObject({ code: 'STATE_CORRUPT' });
    expect(image().subarray(12 * KiB, 16 * KiB).equals(Buffer.alloc(4 * KiB, 1))).toBe(true);
  });

  it('seals an empty member of a multi-volume group without a file', async () => {
    await journal.seal(3, 0);
    expect(await journal.apply(3)).toBe('missing');
  });

  it('checks the whole group before its first write: a bad later record leaves the volume untouched', async () => {
    await journal.stage(11, [data(0, 0x11)]);
    await journal.stage(11, [data(16 * KiB, 0x22)]);
    await journal.stage(11, [data(32 * KiB, 0x33)]);
    await journal.seal(11, 3);
    // Flip a byte in the second record's data (records: 24-byte header + 4 KiB).
    const fh = await open(join(dir, 'journal', '11.jnl'), 'r+');
    await fh.write(Buffer.from([0x99]), 0, 1, 24 + 4 * KiB + 24 + 100);
    await fh.close();
    await expect(journal.verify(11)).rejects.toMatchObject({ code: 'STATE_CORRUPT' });
    await expect(journal.apply(11)).rejects.toMatchObject({ code: 'STATE_CORRUPT' });
    // Not even the first, good record was written.
    expect(image().equals(Buffer.alloc(256 * KiB, 1))).toBe(true);
  });

  it('refuses a record that points outside the volume even with a matching checksum', async () => {
    await journal.stage(12, [data(0, 0x44)]);
    await journal.seal(12, 1);
    const fh = await open(join(dir, 'journal', '12.jnl'), 'r+');
    const h = Buffer.alloc(24);
    await fh.read(h, 0, 24, 0);
    h.writeBigUInt64LE(BigInt(1 << 30), 8);
    h.writeUInt32LE(crc32c(Buffer.alloc(4 * KiB, 0x44), crc32c(h.subarray(0, 20))), 20);
    await fh.write(h, 0, 24, 0);
    await fh.close();
    await expect(journal.apply(12)).rejects.toThrow(/malformed/);
    expect(image().equals(Buffer.alloc(256 * KiB, 1))).toBe(true);
  });

  it('refuses a sealed group cut short at a record boundary, or with a record dropped or bytes appended', async () => {
    const sealed = async (group: number): Promise<Buffer> => {
      await journal.stage(group, [data(0, 0x61)]);
      await journal.stage(group, [data(16 * KiB, 0x62)]);
      await journal.seal(group, 2);
      return readFileSync(join(dir, 'journal', `${group}.jnl`));
    };
    const rec = 24 + 4 * KiB;
    const cases: [string, (b: Buffer) => Buffer, RegExp][] = [
      ['cut after the first record', (b) => b.subarray(0, rec), /no seal after 1 records/],
      ['cut to nothing', (b) => b.subarray(0, 0), /no seal after 0 records/],
      ['the second record dropped', (b) => Buffer.concat([b.subarray(0, rec), b.subarray(2 * rec)]), /seal does not match/],
      ['the records swapped', (b) => Buffer.concat([b.subarray(rec, 2 * rec), b.subarray(0, rec), b.subarray(2 * rec)]), /seal does not match/],
      ['bytes after the seal', (b) => Buffer.concat([b, Buffer.alloc(1)]), /bytes after the seal/],
    ];
    let group = 20;
    for (const [what, cut, reason] of cases) {
      const file = join(dir, 'journal', `${group}.jnl`);
      writeFileSync(file, cut(await sealed(group)));
      const outcome = await journal.apply(group).then(
        () => 'applied',
        (err: Error & { code?: string }) => `${err.code}: ${err.message}`,
      );
      expect({ what, outcome }).toEqual({ what, outcome: expect.stringMatching(new RegExp(`^STATE_CORRUPT: .*${reason.source}`)) });
      group++;
    }
    expect(image().equals(Buffer.alloc(256 * KiB, 1))).toBe(true);
  });

  it('moves a bad group aside for inspection', async () => {
    await journal.stage(13, [data(0, 0x55)]);
    await journal.seal(13, 1);
    const kept = await journal.quarantine(13);
    expect(kept).toBe(join(dir, 'journal', 'quarantine', '13.jnl'));
    // One record and the seal.
    expect(readFileSync(kept).length).toBe(24 + 4 * KiB + 24);
    expect(await journal.groupsOnDisk()).toEqual([]);
    expect(await journal.verify(13)).toBe('missing');
  });
});
