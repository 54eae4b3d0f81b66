import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fuzz } from '../../../test/helpers/fuzz.js';
import { BlockmirrorError } from '../../errors.js';
import { Volume } from '../../volume/volume.js';
import type { DecodedRun } from '../wire/frame-builder.js';
import { GroupJournal } from './group-journal.js';

// The journal reader against random corruption of a sealed group: a journal either
// applies exactly the group it was given, or is refused as STATE_CORRUPT with the volume
// untouched — never a partial apply, never a write outside the volume, never another
// kind of exception.

const VOLUME = 256 * 1024;
const FILL = 0x5c;

const run = fc.oneof(
  fc.record({ offset: fc.integer({ min: 0, max: VOLUME - 1 }), length: fc.integer({ min: 1, max: 16 * 1024 }), fill: fc.integer({ min: 0, max: 255 }), zero: fc.constant(false) }),
  fc.record({ offset: fc.integer({ min: 0, max: VOLUME - 1 }), length: fc.integer({ min: 1, max: 64 * 1024 }), fill: fc.constant(0), zero: fc.constant(true) }),
);
const frames = fc.array(fc.array(run, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 6 });

type Corruption =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'truncate'; keep: number }
  | { kind: 'zero-sector'; sector: number }
  | { kind: 'copy-sector'; from: number; to: number }
  | { kind: 'append'; bytes: Uint8Array };

const corruption: fc.Arbitrary<Corruption[]> = fc.array(
  fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant('truncate' as const), keep: fc.nat() }),
    fc.record({ kind: fc.constant('zero-sector' as const), sector: fc.nat() }),
    fc.record({ kind: fc.constant('copy-sector' as const), from: fc.nat(), to: fc.nat() }),
    fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
  ),
  { minLength: 0, maxLength: 3 },
);

function damage(file: Buffer, cs: Corruption[]): Buffer {
  let b = Buffer.from(file);
  for (const c of cs) {
    if (b.length === 0) break;
    if (c.kind === 'flip') b[c.at % b.length]! ^= 1 << c.bit;
    else if (c.kind === 'truncate') b = b.subarray(0, c.keep % b.length);
    else if (c.kind === 'zero-sector') {
      const at = (c.sector % Math.ceil(b.length / 512)) * 512;
      b.fill(0, at, Math.min(b.length, at + 512));
    }
    else if (c.kind === 'copy-sector') {
      const n = Math.ceil(b.length / 512);
      b.copy(b, (c.to % n) * 512, (c.from % n) * 512, (c.from % n) * 512 + 512);
    } else b = Buffer.concat([b, Buffer.from(c.bytes)]);
  }
  return b;
}

describe('GroupJournal reader under random corruption (fast-check)', () => {
  let dir: string;
  let n = 0;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'bm-jfuzz-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('applies exactly the staged group, or refuses it as STATE_CORRUPT having written nothing', async () => {
    await fuzz(
      fc.asyncProperty(frames, corruption, async (fs, cs) => {
        const case_ = join(dir, String(++n));
        const img = `${case_}.img`;
        writeFileSync(img, Buffer.alloc(VOLUME, FILL));
        const volume = await Volume.open(img);
        const journal = await GroupJournal.open(`${case_}.jnl.d`, volume);
        const expected = Buffer.alloc(VOLUME, FILL);
        try {
          for (const f of fs) {
            const runs: DecodedRun[] = f.map((r) => {
              const length = Math.min(r.length, VOLUME - r.offset);
              if (r.zero) {
                expected.fill(0, r.offset, r.offset + length);
                return { offset: r.offset, length, zero: true };
              }
              expected.fill(r.fill, r.offset, r.offset + length);
              return { offset: r.offset, length, zero: false, data: Buffer.alloc(length, r.fill) };
            });
            await journal.stage(1, runs);
          }
          await journal.seal(1, fs.length);
          const path = join(`${case_}.jnl.d`, '1.jnl');
          const original = readFileSync(path);
          const damaged = damage(original, cs);
          const fh = await open(path, 'w');
          await fh.writeFile(damaged);
          await fh.close();
          let outcome: 'applied' | 'refused';
          try {
            await journal.apply(1);
            outcome = 'applied';
          } catch (err) {
            // Only the documented refusal; anything else fails the property.
            if (!(err instanceof BlockmirrorError) || err.code !== 'STATE_CORRUPT') throw err;
            outcome = 'refused';
          }
          const after = readFileSync(img);
          if (outcome === 'refused') expect(after.equals(Buffer.alloc(VOLUME, FILL))).toBe(true);
          else {
            // Applied: the damage changed nothing the checks cover (it was a no-op), and
            // the group landed whole.
            expect(damaged.equals(original)).toBe(true);
            expect(after.equals(expected)).toBe(true);
          }
        } finally {
          await journal.close();
          await volume.close();
          rmSync(img, { force: true });
          rmSync(`${case_}.jnl.d`, { recursive: true, force: true });
        }
      }),
      150,
    );
  });
});
