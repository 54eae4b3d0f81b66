import { describe, expect, it } from '@jest/globals';
import type { PairSpec } from '../../proto/gen/blockmirror/control/v1/PairSpec.js';
import { ProblemError } from '../status/problem-error.js';
import { LINEAGE_ANNOTATION, VolumeLineageStore, type VolumeAnnotations } from './volume-lineage.js';
import { withLineage } from './with-lineage.js';

/** PersistentVolumes as annotations only; reads are counted. */
class FakeVolumes implements VolumeAnnotations {
  readonly pvs = new Map<string, Record<string, string>>();
  reads = 0;
  failGet: Error | undefined;
  getVolume(name: string): Promise<{ annotations?: Record<string, string> } | undefined> {
    this.reads++;
    if (this.failGet) return Promise.reject(this.failGet);
    const a = this.pvs.get(name);
    return Promise.resolve(a === undefined ? undefined : { annotations: a });
  }
  patchVolumeAnnotations(): Promise<void> {
    return Promise.reject(new Error('not expected'));
  }
}

const desired: PairSpec = { name: 'apps.db', volumePath: '/data/pv-1.img' };

describe('withLineage', () => {
  it('a pair on a volume with a lineage continues it; without one, or without a known volume, it is created as asked', async () => {
    const api = new FakeVolumes();
    api.pvs.set('pv-1', { [LINEAGE_ANNOTATION]: JSON.stringify({ role: 'secondary', generation: 'g1', history: ['g0'], consistent: true }) });
    api.pvs.set('pv-2', {});
    const store = new VolumeLineageStore(api);
    expect(await withLineage(store, desired, 'pv-1')).toEqual({ ...desired, lineage: { role: 'ROLE_SECONDARY', generation: 'g1', history: ['g0'], consistent: true } });
    expect(await withLineage(store, desired, 'pv-2')).toBe(desired);
    const reads = api.reads;
    expect(await withLineage(store, desired, undefined)).toBe(desired);
    expect(api.reads).toBe(reads);
  });

  it('an annotation that is not a lineage stops the pair for good (LineageUnreadable); other failures propagate', async () => {
    const api = new FakeVolumes();
    api.pvs.set('pv-1', { [LINEAGE_ANNOTATION]: 'not json' });
    const store = new VolumeLineageStore(api);
    const err = await withLineage(store, desired, 'pv-1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProblemError);
    expect((err as ProblemError).problem).toMatchObject({ reason: 'LineageUnreadable', permanent: true, notReplicating: true });
    expect((err as ProblemError).problem.message).toContain(`PersistentVolume pv-1: annotation ${LINEAGE_ANNOTATION} is not a data lineage`);

    const down = new Error('apiserver unavailable');
    api.failGet = down;
    await expect(withLineage(store, desired, 'pv-1')).rejects.toBe(down);
  });
});
