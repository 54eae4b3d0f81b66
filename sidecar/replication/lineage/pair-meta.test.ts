import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PairMeta } from './pair-meta.js';

describe('PairMeta', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bm-meta-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));
  const file = (): Promise<Record<string, unknown>> => readFile(join(dir, 'meta.json'), 'utf8').then((t) => JSON.parse(t) as Record<string, unknown>);

  it('writes nothing until persisted, then a version 2 file the previous release can still read', async () => {
    const m = await PairMeta.load(dir, 'primary');
    expect(m.origin).toBe('none');
    await expect(readFile(join(dir, 'meta.json'))).rejects.toMatchObject({ code: 'ENOENT' });
    await m.persist();
    const f = await file();
    expect(f).toMatchObject({ version: 2, role: 'primary', current: m.current, bitmap: '', history: [], shared: false, generation: m.current, syncedPeerGeneration: '' });
    expect((await PairMeta.load(dir, 'secondary')).role).toBe('primary');
  });

  it("converts a primary's file of the previous release: its generation is current, and its secondary may hold it", async () => {
    await writeFile(join(dir, 'meta.json'), JSON.stringify({ generation: 'old-a', syncedPeerGeneration: 'img-b', fullSyncTarget: 'img-b' }));
    const m = await PairMeta.load(dir, 'primary');
    expect(m.origin).toBe('legacy');
    expect(m.data).toMatchObject({ role: 'primary', current: 'old-a', root: 'old-a', peerImage: 'img-b', fullSyncTarget: 'img-b', shared: true });
    await m.persist();
    // A write the secondary misses now takes a new generation, old-a kept as the bitmap.
    await m.diverge();
    expect(m.generations).toEqual({ current: expect.not.stringMatching(/^old-a$/) as unknown, bitmap: 'old-a', history: ['old-a'] });
    // What an older primary would send stays the lineage it always sent.
    expect(await file()).toMatchObject({ generation: 'old-a', root: 'old-a' });
  });

  it("converts a secondary's file of the previous release: the primary generation it holds is current, its id the image", async () => {
    await writeFile(join(dir, 'meta.json'), JSON.stringify({ generation: 'img-b', syncedPeerGeneration: 'old-a', fullSyncTarget: '' }));
    const m = await PairMeta.load(dir, 'secondary');
    expect(m.data).toMatchObject({ role: 'secondary', current: 'old-a', image: 'img-b', shared: false });
    await m.persist();
    expect(await file()).toMatchObject({ generation: 'img-b', syncedPeerGeneration: 'old-a' });
  });

  it('refuses a damaged file instead of starting a new lineage', async () => {
    await writeFile(join(dir, 'meta.json'), JSON.stringify({ version: 2, role: 'primary', current: 'a', bitmap: 'x', history: [] }));
    await expect(PairMeta.load(dir, 'primary')).rejects.toMatchObject({ code: 'STATE_CORRUPT', message: expect.stringMatching(/bitmap generation x is not in the history/) as unknown });
    await writeFile(join(dir, 'meta.json'), '{"generation": 5');
    await expect(PairMeta.load(dir, 'primary')).rejects.toMatchObject({ code: 'STATE_CORRUPT' });
  });

  it('takes one new generation for any number of concurrent missed writes, and none until the peer may hold the current one', async () => {
    const m = await PairMeta.open(dir, 'primary');
    const first = m.current;
    // A new primary: its peer holds nothing of it yet.
    expect(m.diverge()).toBeUndefined();
    await m.markShared();
    const all = [m.diverge(), m.diverge(), m.diverge()];
    expect(all[0]).toBeDefined();
    expect(all[1]).toBe(all[0]);
    await Promise.all(all);
    expect(m.generations).toMatchObject({ bitmap: first, history: [first] });
    expect(m.current).not.toBe(first);
    expect(m.diverge()).toBeUndefined();
    // The peer confirmed the new one: the bitmap is no longer needed.
    const second = m.current;
    await m.markShared();
    await m.peerAdopted(second);
    expect(m.generations).toEqual({ current: second, bitmap: '', history: [first] });
    expect((await PairMeta.load(dir, 'primary')).generations).toEqual(m.generations);
  });

  it('narrows the bitmap to what the peer confirmed when a new generation was taken meanwhile', async () => {
    const m = await PairMeta.open(dir, 'primary');
    const g1 = m.current;
    await m.markShared();
    await m.diverge();
    const g2 = m.current;
    await m.markShared();
    // The peer is told it holds g2; before it answers, a missed write takes g3.
    await m.diverge();
    await m.peerAdopted(g2);
    expect(m.generations).toEqual({ current: expect.any(String) as unknown, bitmap: g2, history: [g2, g1] });
  });

  it('promotes with a new generation and the old one as bitmap, and demotes keeping them, each in one write', async () => {
    const m = await PairMeta.open(dir, 'secondary');
    await m.adopt({ current: 'g1', bitmap: 'g0', history: ['g0'] }, { primaryDemoted: true });
    expect(m.data).toMatchObject({ current: 'g1', bitmap: '', history: ['g0'], primaryDemoted: true });
    await m.promote({ nowMs: 1000, pointMs: 900 });
    const promoted = await PairMeta.load(dir, 'secondary');
    expect(promoted.data).toMatchObject({ role: 'primary', bitmap: 'g1', history: ['g1', 'g0'], shared: false, primaryDemoted: false, promotedAtMs: 1000, promotedPointMs: 900 });
    expect(promoted.current).not.toBe('g1');
    await m.demote({ discardMyData: true });
    expect((await PairMeta.load(dir, 'primary')).data).toMatchObject({ role: 'secondary', current: promoted.current, bitmap: 'g1', discardMyData: true });
  });

  it("seeds a new pair from its volume's lineage, and ignores it once the pair has a file of its own", async () => {
    const s = await PairMeta.open(dir, 'secondary', { role: 'secondary', generation: 'g2', history: ['g1'], consistent: false });
    expect(s.data).toMatchObject({ role: 'secondary', current: 'g2', bitmap: '', history: ['g1'], inconsistent: true, shared: false, root: '' });
    // What is on disk is the pair's from now on: a lineage passed again changes nothing.
    const again = await PairMeta.load(dir, 'secondary', { role: 'secondary', generation: 'other', history: [], consistent: true });
    expect(again.data).toMatchObject({ current: 'g2', inconsistent: true });
    await rm(join(dir, 'meta.json'));
    const p = await PairMeta.open(dir, 'primary', { role: 'primary', generation: 'g2', history: ['g1'], consistent: true });
    expect(p.data).toMatchObject({ role: 'primary', bitmap: '', history: ['g2', 'g1'], shared: false, inconsistent: false, root: p.current });
    expect(p.current).not.toMatch(/^g[12]$/);
  });
});
