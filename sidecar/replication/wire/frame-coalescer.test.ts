import { describe, expect, it } from '@jest/globals';
import type { OutgoingBlockFrame } from './block-frame-codec.js';
import { frameChecksum, frameRuns } from './frame-builder.js';
import { COALESCE_FRAME_BYTES, COALESCED_PAYLOAD_BYTES, takeCoalesced } from './frame-coalescer.js';

let sequence = 0;
const frame = (offset: number, length: number, opts: { durable?: boolean; zero?: boolean; group?: number } = {}): OutgoingBlockFrame => {
  const runs = [{ offset, length, zero: opts.zero ?? false }];
  const payload = opts.zero ? [] : [Buffer.alloc(length, (offset / 512) & 0xff)];
  return { sessionId: 's', sequence: ++sequence, runs, payload, crc32c: frameChecksum(runs, payload), durable: opts.durable ?? false, ...(opts.group ? { group: opts.group } : {}) };
};

/** What the secondary reads from a message (its checksum checked), as one buffer. */
const decoded = (f: OutgoingBlockFrame): { offset: number; length: number; zero: boolean; data?: Buffer }[] =>
  frameRuns({ ...f, runs: [...f.runs], payload: Buffer.concat(Buffer.isBuffer(f.payload) ? [f.payload] : [...f.payload]) }, 1 << 30);

describe('takeCoalesced', () => {
  it('joins small frames in queue order under one checksum, answering for each', () => {
    const q = [frame(0, 4096), frame(8192, 512, { zero: true }), frame(2048, 4096)];
    const seqs = q.map((f) => f.sequence);
    const { frame: m, sequences } = takeCoalesced(q);
    expect(q).toHaveLength(0);
    expect(sequences).toEqual(seqs);
    expect(m.sequence).toBe(seqs[2]);
    const runs = decoded(m);
    expect(runs.map((r) => [r.offset, r.length, r.zero])).toEqual([
      [0, 4096, false],
      [8192, 512, true],
      [2048, 4096, false],
    ]);
    // The overlapping later write keeps its own bytes, after the earlier one's.
    expect(runs[2]!.data!.every((x) => x === 4)).toBe(true);
  });

  it('sends large, empty and grouped frames alone, and never joins past them', () => {
    const big = frame(0, COALESCE_FRAME_BYTES + 4096);
    const empty: OutgoingBlockFrame = { sessionId: 's', sequence: ++sequence, runs: [], payload: [], crc32c: frameChecksum([], []), durable: true };
    const grouped = frame(4096, 4096, { group: 7 });
    const q = [frame(0, 4096), big, frame(4096, 4096), empty, grouped, frame(8192, 4096)];
    const sizes: number[] = [];
    while (q.length > 0) sizes.push(takeCoalesced(q).sequences.length);
    expect(sizes).toEqual([1, 1, 1, 1, 1, 1]);
  });

  it('ends a message at a durable frame and at the payload limit', () => {
    const q = [frame(0, 4096), frame(4096, 4096, { durable: true }), frame(8192, 4096)];
    const first = takeCoalesced(q);
    expect(first.sequences).toHaveLength(2);
    expect(first.frame.durable).toBe(true);
    expect(takeCoalesced(q).frame.durable).toBe(false);
    // A durable frame first goes alone: a message is as durable as its last frame.
    const d = [frame(0, 4096, { durable: true }), frame(4096, 4096)];
    expect(takeCoalesced(d).sequences).toHaveLength(1);
    const n = COALESCED_PAYLOAD_BYTES / COALESCE_FRAME_BYTES;
    const full = Array.from({ length: n + 1 }, (_, i) => frame(i * COALESCE_FRAME_BYTES, COALESCE_FRAME_BYTES));
    expect(takeCoalesced(full).sequences).toHaveLength(n);
    expect(full).toHaveLength(1);
  });
});
