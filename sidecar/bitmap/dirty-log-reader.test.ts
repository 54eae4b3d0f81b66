import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { crc32c } from '@node-rs/crc32';
import fc from 'fast-check';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BlockmirrorError } from '../errors.js';
import { DirtyTracker } from './dirty-tracker.js';
import { layoutFor } from './dirty-log-format.js';

// Fuzzing replays: a failure prints fast-check's seed and path; rerun with
//   FUZZ_SEED=<seed> FUZZ_PATH=<path> node --experimental-vm-modules node_modules/jest/bin/jest.js \
//     --selectProjects unit --testPathPatterns dirty-log-reader
// and FUZZ_RUNS=<n> for a longer run.
function fuzz(defaultRuns: number): fc.Parameters<unknown> {
  return {
    numRuns: Number(process.env.FUZZ_RUNS ?? defaultRuns),
    ...(process.env.FUZZ_SEED ? { seed: Number(process.env.FUZZ_SEED) } : {}),
    ...(process.env.FUZZ_PATH ? { path: process.env.FUZZ_PATH } : {}),
  };
}

const KiB = 1024;
const MiB = 1 << 20;
/** Codes with which open may refuse a log (documented in dirty-log-format.ts). */
const REFUSALS = ['STATE_CORRUPT', 'GEOMETRY_MISMATCH'];

interface Geometry {
  volumeBytes: number;
  blockSize: number;
  extentSize: number;
}

/**
 * A version 1 log, laid out as the version 1 code wrote it: header (magic, version 1,
 * geometry, crc32c of [0, 28)), then the intent and fine regions as bare bitmaps in
 * whole 4096-byte pages. Checked against a log the version 1 code wrote, below.
 */
function writeV1(g: Geometry, fine: Iterable<number>, intents: Iterable<number>): Buffer {
  const pages = (bits: number): number => Math.max(1, Math.ceil(bits / (4096 * 8)));
  const header = Buffer.alloc(4096);
  header.write('BMDIRTY1', 0, 'latin1');
  header.writeUInt32LE(1, 8);
  header.writeUInt32LE(g.blockSize, 12);
  header.writeUInt32LE(g.extentSize, 16);
  header.writeBigUInt64LE(BigInt(g.volumeBytes), 20);
  header.writeUInt32LE(crc32c(header.subarray(0, 28)), 28);
  const bitmap = (bits: number, set: Iterable<number>): Buffer => {
    const b = Buffer.alloc(pages(bits) * 4096);
    for (const x of set) b[x >>> 3]! |= 1 << (x & 7);
    return b;
  };
  return Buffer.concat([header, bitmap(Math.ceil(g.volumeBytes / g.extentSize), intents), bitmap(Math.ceil(g.volumeBytes / g.blockSize), fine)]);
}

/** Version 1 recovery's dirty set: fine ∪ every block of every intent extent. */
function v1Recovered(g: Geometry, fine: Iterable<number>, intents: Iterable<number>): Set<number> {
  const blocks = Math.ceil(g.volumeBytes / g.blockSize);
  const per = g.extentSize / g.blockSize;
  const out = new Set(fine);
  for (const e of intents) for (let b = e * per; b < Math.min(blocks, (e + 1) * per); b++) out.add(b);
  return out;
}

function dirtySet(t: DirtyTracker): Set<number> {
  const out = new Set<number>();
  for (let b = t.nextDirty(0); b !== -1; b = t.nextDirty(b + 1)) out.add(b);
  return out;
}

describe('dirty log reader', () => {
  let dir: string;
  let n = 0;
  const fresh = (): string => {
    const p = join(dir, `case-${n++}`, 'dirty.log');
    mkdirSync(dirname(p), { recursive: true });
    return p;
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'bm-dirtylog-'));
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  describe('version 1 logs are converted, keeping every dirty bit', () => {
    // Written by the version 1 DirtyTracker (the commit before version 2) in a crash
    // state: 256 MiB at 4 KiB blocks, 4 MiB extents; fine bits around both formats'
    // page boundaries and at the end, intents for extents 5 and 40.
    const fixture = readFileSync(join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'dirty-log-v1.bin'));
    const g: Geometry = { volumeBytes: 256 * MiB, blockSize: 4 * KiB, extentSize: 4 * MiB };
    const fine = [1, 100, 101, 32639, 32640, 32767, 32768, 65535];
    const intents = [5, 40];

    it("the test's version 1 writer reproduces the version 1 code's file byte for byte", () => {
      expect(writeV1(g, fine, intents).equals(fixture)).toBe(true);
    });

    it('a log written by the version 1 code converts to exactly its recovered set', async () => {
      const path = fresh();
      writeFileSync(path, fixture);
      const t = await DirtyTracker.open({ path, ...g, sweepIntervalMs: 0 });
      expect(t.convertedFrom).toBe(1);
      expect(t.recoveredExtents).toBe(2);
      expect(t.damage).toEqual([]);
      expect(dirtySet(t)).toEqual(v1Recovered(g, fine, intents));
      expect(t.dirtyBlocks).toBe(8 + 2 * 1024);
      // The file is now version 2, whole; reopening reads it as such.
      expect(readFileSync(path).readUInt32LE(8)).toBe(2);
      expect(statSync(path).size).toBe(layoutFor(g).fileBytes);
      await t.close();
      const again = await DirtyTracker.open({ path, ...g, sweepIntervalMs: 0 });
      expect(again.convertedFrom).toBeNull();
      expect(dirtySet(again)).toEqual(v1Recovered(g, fine, intents));
      await again.close();
    });

    it('a version 1 log of another geometry is refused, not converted', async () => {
      const path = fresh();
      writeFileSync(path, fixture);
      await expect(DirtyTracker.open({ path, ...g, blockSize: 64 * KiB, sweepIntervalMs: 0 })).rejects.toMatchObject({ code: 'GEOMETRY_MISMATCH' });
      expect(readFileSync(path).equals(fixture)).toBe(true);
    });

    it('property: any version 1 dirty and intent sets convert exactly', async () => {
      const geometries: Geometry[] = [
        { volumeBytes: 64 * MiB, blockSize: 64 * KiB, extentSize: 4 * MiB },
        { volumeBytes: 256 * MiB, blockSize: 4 * KiB, extentSize: 4 * KiB },
        { volumeBytes: 130 * MiB + 5000, blockSize: 4 * KiB, extentSize: MiB },
      ];
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...geometries).chain((geo) => {
            const blocks = Math.ceil(geo.volumeBytes / geo.blockSize);
            const extents = Math.ceil(geo.volumeBytes / geo.extentSize);
            return fc.tuple(
              fc.constant(geo),
              fc.uniqueArray(fc.nat(blocks - 1), { maxLength: 300 }),
              fc.uniqueArray(fc.nat(extents - 1), { maxLength: 20 }),
            );
          }),
          async ([geo, f, i]) => {
            const path = fresh();
            writeFileSync(path, writeV1(geo, f, i));
            const t = await DirtyTracker.open({ path, ...geo, sweepIntervalMs: 0 });
            try {
              expect(t.convertedFrom).toBe(1);
              expect(dirtySet(t)).toEqual(v1Recovered(geo, f, i));
            } finally {
              await t.close();
            }
          },
        ),
        fuzz(50),
      );
    });
  });

  describe('random corruption: refused with a documented code or a superset, never fewer bits', () => {
    const geometries: Geometry[] = [
      // One page per region.
      { volumeBytes: 64 * MiB, blockSize: 64 * KiB, extentSize: 4 * MiB },
      // Three intent and three fine pages (extents as small as blocks).
      { volumeBytes: 256 * MiB, blockSize: 4 * KiB, extentSize: 4 * KiB },
      // A partial last block and extent; two fine pages.
      { volumeBytes: 130 * MiB + 5000, blockSize: 4 * KiB, extentSize: MiB },
    ];

    type Op = { kind: 'write'; at: number; length: number } | { kind: 'clean'; at: number } | { kind: 'sweep' };
    const op = (volumeBytes: number): fc.Arbitrary<Op> =>
      fc.oneof(
        { weight: 6, arbitrary: fc.record({ kind: fc.constant('write' as const), at: fc.nat(volumeBytes - 1), length: fc.integer({ min: 1, max: 2 * MiB }) }) },
        { weight: 2, arbitrary: fc.record({ kind: fc.constant('clean' as const), at: fc.nat(volumeBytes - 1) }) },
        { weight: 1, arbitrary: fc.constant({ kind: 'sweep' as const }) },
      );

    /** Where to damage, as fractions of the file's size, so one case fits every size. */
    type Corruption =
      | { kind: 'flip'; at: number; xor: number }
      | { kind: 'clear-set-bit'; which: number }
      | { kind: 'zero-sector'; at: number }
      | { kind: 'duplicate-sector'; from: number; to: number }
      | { kind: 'truncate'; to: number };
    // Uniform over the file: fast-check's default bias towards small values would keep
    // hitting the header, whose damage always widens the set to everything.
    const fraction = fc.noBias(fc.integer({ min: 0, max: 2 ** 30 - 1 })).map((x) => x / 2 ** 30);
    // Weighted towards damage that can lose a bit: most truncations and damaged headers
    // only ever widen the set, whatever the reader does.
    const corruption: fc.Arbitrary<Corruption> = fc.oneof(
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: fraction, xor: fc.integer({ min: 1, max: 255 }) }) },
      // Bit rot where it hurts: one of the file's set bits (header, page header or a dirty bit).
      { weight: 5, arbitrary: fc.record({ kind: fc.constant('clear-set-bit' as const), which: fraction }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('zero-sector' as const), at: fraction }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('duplicate-sector' as const), from: fraction, to: fraction }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), to: fraction }) },
    );

    function corrupt(image: Buffer, cs: Corruption[]): Buffer {
      let out = Buffer.from(image);
      for (const c of cs) {
        if (out.length === 0) break;
        const sector = (f: number): number => Math.floor((f * out.length) / 512) * 512;
        if (c.kind === 'flip') out[Math.floor(c.at * out.length)]! ^= c.xor;
        else if (c.kind === 'clear-set-bit') clearSetBit(out, c.which);
        else if (c.kind === 'zero-sector') out.fill(0, sector(c.at), Math.min(out.length, sector(c.at) + 512));
        else if (c.kind === 'duplicate-sector') out.copy(out, sector(c.to), sector(c.from), Math.min(out.length, sector(c.from) + 512));
        else out = out.subarray(0, Math.floor(c.to * out.length));
      }
      return out;
    }

    function clearSetBit(image: Buffer, which: number): void {
      const set: number[] = [];
      for (let i = 0; i < image.length; i++) for (let b = 0; b < 8; b++) if (image[i]! & (1 << b)) set.push(i * 8 + b);
      if (set.length === 0) return;
      const bit = set[Math.floor(which * set.length)]!;
      image[bit >>> 3]! &= ~(1 << (bit & 7));
    }

    /** Opens a damaged log: a superset of `truth` or a documented refusal, nothing else. */
    async function openDamaged(path: string, geo: Geometry, truth: Set<number>): Promise<void> {
      let r: DirtyTracker;
      try {
        r = await DirtyTracker.open({ path, ...geo, sweepIntervalMs: 0 });
      } catch (err) {
        if (!(err instanceof BlockmirrorError) || !REFUSALS.includes(err.code)) throw err;
        return;
      }
      try {
        const missing = [...truth].filter((b) => !r.isDirty(b));
        expect(missing).toEqual([]);
      } finally {
        await r.close();
      }
      // Whatever open accepted, it left sound: the next open finds no damage and loses nothing.
      const again = await DirtyTracker.open({ path, ...geo, sweepIntervalMs: 0 });
      try {
        expect(again.damage).toEqual([]);
        expect([...truth].filter((b) => !again.isDirty(b))).toEqual([]);
      } finally {
        await again.close();
      }
    }

    it('property: a log written by the tracker, crashed or closed, then damaged', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...geometries).chain((geo) => fc.tuple(fc.constant(geo), fc.array(op(geo.volumeBytes), { minLength: 1, maxLength: 40 }))),
          fc.boolean(),
          fc.array(corruption, { minLength: 1, maxLength: 3 }),
          async ([geo, ops], crash, cs) => {
            const path = fresh();
            const t = await DirtyTracker.open({ path, ...geo, sweepIntervalMs: 0, retireAfterIdleSweeps: 1 });
            let truth: Set<number>;
            try {
              for (const o of ops) {
                if (o.kind === 'write') await t.beforeWrite(o.at, Math.min(o.length, geo.volumeBytes - o.at));
                else if (o.kind === 'clean') t.markClean(Math.floor(o.at / geo.blockSize));
                else await t.sweep();
              }
              // Every write above was allowed to reach the volume: all of it must come back.
              truth = dirtySet(t);
              if (!crash) await t.close();
            } finally {
              if (crash) await t.close(); // after the image is taken below: nothing of it counts
            }
            const damaged = fresh();
            writeFileSync(damaged, corrupt(readFileSync(path), cs));
            await openDamaged(damaged, geo, truth);
          },
        ),
        fuzz(100),
      );
    });

    it('property: a damaged version 1 log is refused or converted, never another exception', async () => {
      // Version 1 pages carry no checksums: damage to its bits cannot be seen, so only
      // "no crash" holds; damage to its header still rebuilds the log all dirty.
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...geometries).chain((geo) =>
            fc.tuple(
              fc.constant(geo),
              fc.uniqueArray(fc.nat(Math.ceil(geo.volumeBytes / geo.blockSize) - 1), { maxLength: 100 }),
              fc.uniqueArray(fc.nat(Math.ceil(geo.volumeBytes / geo.extentSize) - 1), { maxLength: 8 }),
            ),
          ),
          fc.array(corruption, { minLength: 1, maxLength: 4 }),
          async ([geo, f, i], cs) => {
            const path = fresh();
            writeFileSync(path, corrupt(writeV1(geo, f, i), cs));
            try {
              const t = await DirtyTracker.open({ path, ...geo, sweepIntervalMs: 0 });
              await t.close();
            } catch (err) {
              if (!(err instanceof BlockmirrorError) || !REFUSALS.includes(err.code)) throw err;
            }
          },
        ),
        fuzz(50),
      );
    });
  });
});
