import { describe, expect, it } from '@jest/globals';
import type { Pair__Output } from '../../proto/gen/blockmirror/control/v1/Pair.js';
import type { VolumeLineage } from '../../sidecar/replication/lineage/continue-lineage.js';
import { deleteKeepingLineage } from './delete-keeping-lineage.js';
import { LINEAGE_ANNOTATION, VolumeLineageStore, type VolumeAnnotations } from './volume-lineage.js';

/** PersistentVolumes as annotations only, with the writes kept in order. */
class FakeVolumes implements VolumeAnnotations {
  readonly pvs = new Map<string, Record<string, string>>();
  readonly writes: string[] = [];
  failPatch: Error | undefined;
  getVolume(name: string): Promise<{ annotations?: Record<string, string> } | undefined> {
    const a = this.pvs.get(name);
    return Promise.resolve(a === undefined ? undefined : { annotations: { ...a } });
  }
  patchVolumeAnnotations(name: string, annotations: Record<string, string | null>): Promise<void> {
    if (this.failPatch) return Promise.reject(this.failPatch);
    const a = this.pvs.get(name);
    if (a === undefined) return Promise.reject(Object.assign(new Error('not found'), { status: 404 }));
    for (const [k, v] of Object.entries(annotations)) if (v === null) delete a[k];
    else a[k] = v;
    this.writes.push(annotations[LINEAGE_ANNOTATION] ?? '');
    return Promise.resolve();
  }
}

const pairMessage = (role: 'ROLE_PRIMARY' | 'ROLE_SECONDARY', generation: string, consistent: boolean): Pair__Output =>
  ({ spec: { name: 'p', role }, status: { generation, historyGenerations: ['g0'], consistent } }) as unknown as Pair__Output;

describe('VolumeLineageStore', () => {
  it("reads what it wrote, nothing from a volume without it, and refuses an annotation that is not a lineage", async () => {
    const api = new FakeVolumes();
    api.pvs.set('pv-1', {});
    const store = new VolumeLineageStore(api);
    expect(await store.read('pv-1')).toBeUndefined();
    expect(await store.read('gone')).toBeUndefined();
    const l: VolumeLineage = { role: 'secondary', generation: 'g1', history: ['g0'], consistent: true };
    await store.record('pv-1', l);
    expect(await store.read('pv-1')).toEqual(l);
    await store.record('pv-1', null);
    expect(await store.read('pv-1')).toEqual(l);
    api.pvs.set('pv-2', { [LINEAGE_ANNOTATION]: '{"role":"primary"}' });
    await expect(store.read('pv-2')).rejects.toMatchObject({ name: 'LineageAnnotationError', code: 'INVALID_ARGUMENT', message: expect.stringContaining('remove it') as unknown });
    // A volume that is gone has nothing left to continue: not an error.
    await expect(store.record('gone', l)).resolves.toBeUndefined();
  });

  it('keeps the lineage around a deletion: never consistent for a secondary before it stopped, then what the sidecar answered', async () => {
    const api = new FakeVolumes();
    api.pvs.set('pv-1', {});
    const store = new VolumeLineageStore(api);
    const calls: string[] = [];
    const control = {
      getPair: (): Promise<Pair__Output> => (calls.push('get'), Promise.resolve(pairMessage('ROLE_SECONDARY', 'g1', true))),
      deletePair: (): Promise<VolumeLineage | null> => (calls.push('delete'), Promise.resolve({ role: 'secondary', generation: 'g2', history: ['g1', 'g0'], consistent: true })),
    };
    await deleteKeepingLineage(store, control, 'p', 'pv-1');
    expect(calls).toEqual(['get', 'delete']);
    expect(api.writes.map((w) => JSON.parse(w) as VolumeLineage)).toEqual([
      { role: 'secondary', generation: 'g1', history: ['g0'], consistent: false },
      { role: 'secondary', generation: 'g2', history: ['g1', 'g0'], consistent: true },
    ]);
  });

  it('does not delete the pair when its lineage cannot be kept first', async () => {
    const api = new FakeVolumes();
    api.pvs.set('pv-1', {});
    api.failPatch = Object.assign(new Error('forbidden'), { status: 403 });
    const calls: string[] = [];
    const control = {
      getPair: (): Promise<Pair__Output> => Promise.resolve(pairMessage('ROLE_PRIMARY', 'g1', false)),
      deletePair: (): Promise<VolumeLineage | null> => (calls.push('delete'), Promise.resolve(null)),
    };
    await expect(deleteKeepingLineage(new VolumeLineageStore(api), control, 'p', 'pv-1')).rejects.toThrow('forbidden');
    expect(calls).toEqual([]);
  });

  it('keeps a running pair\'s lineage with a patch only when the PV carries something else, and retries a patch that failed', async () => {
    const api = new FakeVolumes();
    const l: VolumeLineage = { role: 'secondary', generation: 'g1', history: ['g0'], consistent: false };
    api.pvs.set('pv-1', { [LINEAGE_ANNOTATION]: JSON.stringify(l) });
    const store = new VolumeLineageStore(api);
    // Already there (an operator restarted): read once, not written.
    expect(await store.keep('pv-1', l)).toBe(false);
    expect(await store.keep('pv-1', null)).toBe(false);
    const next: VolumeLineage = { role: 'secondary', generation: 'g2', history: ['g1', 'g0'], consistent: false };
    api.failPatch = Object.assign(new Error('unavailable'), { status: 503 });
    await expect(store.keep('pv-1', next)).rejects.toThrow('unavailable');
    api.failPatch = undefined;
    expect(await store.keep('pv-1', next)).toBe(true);
    expect(await store.keep('pv-1', next)).toBe(false);
    expect(api.writes.map((w) => JSON.parse(w) as VolumeLineage)).toEqual([next]);
    expect(await store.read('pv-1')).toEqual(next);
    // A PV that is gone: nothing written.
    expect(await store.keep('gone', next)).toBe(false);
    // Forgotten, then kept again: written again.
    await store.forget('pv-1');
    expect(await store.keep('pv-1', next)).toBe(true);
    expect(await store.read('pv-1')).toEqual(next);
  });
});
