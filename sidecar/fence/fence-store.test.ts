import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FenceStore } from './fence-store.js';

describe('FenceStore', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bm-fences-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps a fence on disk, idempotently, and refuses the same volume for another pair', async () => {
    const store = new FenceStore(dir);
    const r = await store.fence('vol-1', 'apps/db', 'pvc-1');
    expect(r).toEqual({ pv: 'vol-1', pair: 'apps/db', hold: '', device: '', volume: 'pvc-1' });
    expect(await store.fence('vol-1', 'apps/db', 'pvc-1')).toEqual(r);
    await expect(store.fence('vol-1', 'apps/other', 'pvc-1')).rejects.toMatchObject({ code: 'ALREADY_EXISTS', message: 'volume pvc-1 is already fenced as the secondary of replication pair apps/db' });
    // Another process (a restarted sidecar) reads the same.
    expect(await new FenceStore(dir).list()).toEqual([r]);
    expect(JSON.parse(await readFile(join(dir, 'fences', 'vol-1.json'), 'utf8'))).toEqual(r);
    // No temp file left behind.
    expect(await readdir(join(dir, 'fences'))).toEqual(['vol-1.json']);
  });

  it("records what the CSI proxy holds, and refuses a report for a volume that is not fenced", async () => {
    const store = new FenceStore(dir);
    await store.fence('vol-1', 'apps/db', 'pvc-1');
    expect(await store.report('vol-1', 'held', '/dev/loop3')).toMatchObject({ hold: 'held', device: '/dev/loop3' });
    expect(await new FenceStore(dir).get('vol-1')).toMatchObject({ hold: 'held', device: '/dev/loop3' });
    // Released: the device is forgotten with it.
    expect(await store.report('vol-1', '', '/dev/loop3')).toMatchObject({ hold: '', device: '' });
    expect(await store.report('vol-1', 'staged-unfenced', '')).toMatchObject({ hold: 'staged-unfenced', device: '' });
    await expect(store.report('vol-1', 'held', '')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(store.report('vol-1', 'bogus' as never, '')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(store.report('vol-2', 'held', '/dev/loop4')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('unfences (missing is fine) and validates names', async () => {
    const store = new FenceStore(dir);
    await store.unfence('vol-1');
    await store.fence('vol-1', 'apps/db', '');
    expect(await store.get('vol-1')).toMatchObject({ volume: 'vol-1' });
    await store.unfence('vol-1');
    expect(await store.get('vol-1')).toBeUndefined();
    expect(await store.list()).toEqual([]);
    await expect(store.fence('../x', 'apps/db', '')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(store.fence('vol-1', 'no-namespace', '')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('says so when a fence on disk is damaged, rather than treating the volume as unfenced', async () => {
    const store = new FenceStore(dir);
    await store.fence('vol-1', 'apps/db', 'pvc-1');
    await writeFile(join(dir, 'fences', 'vol-1.json'), '{"pv":"vol-1"');
    await expect(store.get('vol-1')).rejects.toMatchObject({ code: 'STATE_CORRUPT' });
  });
});
