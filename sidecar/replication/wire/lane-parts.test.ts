import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { fuzz } from '../../../test/helpers/fuzz.js';
import { laneParts, soleLane } from './lane-parts.js';

const EXTENT = 64;

/** Bytes at each volume offset a frame writes (undefined for a zero run's bytes: 0). */
function image(runs: readonly { offset: number; length: number; zero?: boolean }[], payload: Buffer): Map<number, number> {
  const m = new Map<number, number>();
  let pos = 0;
  for (const r of runs) {
    for (let i = 0; i < r.length; i++) m.set(r.offset + i, r.zero === true ? 0 : payload[pos + i]!);
    if (r.zero !== true) pos += r.length;
  }
  return m;
}

const frame = fc
  .array(fc.record({ gap: fc.nat({ max: 100 }), length: fc.integer({ min: 1, max: 200 }), zero: fc.boolean() }), { maxLength: 6 })
  .map((rs) => {
    let at = 0;
    const runs = rs.map((r) => {
      const run = { offset: at + r.gap, length: r.length, zero: r.zero };
      at = run.offset + r.length;
      return run;
    });
    const bytes = runs.filter((r) => !r.zero).reduce((n, r) => n + r.length, 0);
    return { runs, payload: Buffer.from(Array.from({ length: bytes }, (_, i) => i % 251)) };
  });

describe('laneParts', () => {
  it('gives every byte to the lane of its extent, with its data, and nothing else', async () => {
    await fuzz(
      fc.property(frame, fc.integer({ min: 1, max: 4 }), fc.nat({ max: 5 }), ({ runs, payload }, lanes, cut) => {
        // The payload in chunks of any sizes: the cut must not depend on them.
        const chunks = cut === 0 ? payload : [payload.subarray(0, cut * 7), payload.subarray(cut * 7)];
        const parts = laneParts({ runs, payload: chunks }, lanes, EXTENT);
        const got = new Map<number, number>();
        for (const p of parts) {
          for (const r of p.runs) {
            // Every byte of the run on this lane (one lane: pieces joined again, all lane 0).
            for (const at of [r.offset, r.offset + r.length - 1]) expect(Math.floor(at / EXTENT) % lanes).toBe(p.lane);
            if (lanes > 1) expect(Math.floor(r.offset / EXTENT)).toBe(Math.floor((r.offset + r.length - 1) / EXTENT));
          }
          for (const [k, v] of image(p.runs, Buffer.concat(p.payload))) got.set(k, v);
        }
        expect(got).toEqual(image(runs, payload));
        // soleLane names the lane exactly when laneParts leaves the frame whole.
        const sole = soleLane(runs, lanes, EXTENT);
        if (parts.length === 1 && runs.length > 0) expect(sole === -1 || sole === parts[0]!.lane).toBe(true);
        if (sole !== -1) expect(parts.map((p) => p.lane)).toEqual(parts.length === 0 ? [] : [sole]);
        if (lanes > 1 && parts.length > 1) expect(sole).toBe(-1);
        if (lanes === 1) expect(parts.length).toBeLessThanOrEqual(1);
      }),
      500,
    );
  });

  it('leaves a frame inside one extent whole', () => {
    const payload = Buffer.alloc(10, 1);
    expect(laneParts({ runs: [{ offset: 70, length: 10 }], payload }, 2, EXTENT)).toEqual([{ lane: 1, runs: [{ offset: 70, length: 10 }], payload: [payload] }]);
  });
});
