import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VolumeRecordStore, type VolumeRecord } from './volume-record-store.js';

const record = (pv: string): VolumeRecord => ({
  volumeId: `id-${pv}`,
  pv,
  accessType: 'mount',
  stagingTargetPath: `/var/lib/kubelet/staging/${pv}`,
  privateStagingPath: `/state/staging/${pv}`,
  privateTargetPath: `/state/devices/${pv}`,
});

describe('VolumeRecordStore', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bm-records-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps, replaces, lists and forgets records (no temp files left)', async () => {
    const store = new VolumeRecordStore(join(dir, 'volumes'));
    expect(await store.get('a')).toBeUndefined();
    expect(await store.list()).toEqual([]);
    await store.put(record('b'));
    await store.put(record('a'));
    await store.put({ ...record('a'), device: '/dev/loop3', dmDevice: '/dev/mapper/blockmirror-a' });
    expect(await store.get('a')).toEqual({ ...record('a'), device: '/dev/loop3', dmDevice: '/dev/mapper/blockmirror-a' });
    expect((await store.list()).map((r) => r.pv)).toEqual(['a', 'b']);
    expect((await readdir(join(dir, 'volumes'))).sort()).toEqual(['a.json', 'b.json']);
    await store.delete('a');
    await store.delete('a');
    expect(await store.get('a')).toBeUndefined();
    // A new store over the same folder (a restarted proxy) sees what is left.
    expect(await new VolumeRecordStore(join(dir, 'volumes')).get('b')).toEqual(record('b'));
  });

  it('refuses names that are not volume names (they are path components)', async () => {
    const store = new VolumeRecordStore(dir);
    await expect(store.get('../x')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(store.put(record('A/b'))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('reports a damaged record as corrupt state, not as missing', async () => {
    const store = new VolumeRecordStore(dir);
    await writeFile(join(dir, 'x.json'), '{"pv":');
    await expect(store.get('x')).rejects.toMatchObject({ code: 'STATE_CORRUPT' });
    await writeFile(join(dir, 'y.json'), JSON.stringify({ ...record('y'), accessType: 'tape' }));
    await expect(store.get('y')).rejects.toMatchObject({ code: 'STATE_CORRUPT' });
    await writeFile(join(dir, 'z.json'), JSON.stringify(record('other')));
    await expect(store.get('z')).rejects.toMatchObject({ code: 'STATE_CORRUPT' });
  });
});
