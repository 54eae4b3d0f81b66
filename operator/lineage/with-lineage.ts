import type { PairSpec } from '../../proto/gen/blockmirror/control/v1/PairSpec.js';
import { lineageToProto } from '../../sidecar/control/lineage-record.js';
import { ProblemError } from '../status/problem-error.js';
import { LineageAnnotationError, type VolumeLineageStore } from './volume-lineage.js';

/**
 * A new sidecar pair continues the lineage its volume carries (the PV's annotation).
 * An annotation that is not a lineage stops the pair until a person fixes or removes it.
 */
export async function withLineage(store: VolumeLineageStore, desired: PairSpec, pvName: string | undefined): Promise<PairSpec> {
  if (pvName === undefined) return desired;
  try {
    const lineage = await store.read(pvName);
    return lineage === undefined ? desired : { ...desired, lineage: lineageToProto(lineage) };
  } catch (err) {
    if (err instanceof LineageAnnotationError) throw new ProblemError({ reason: 'LineageUnreadable', message: err.message, permanent: true, notReplicating: true });
    throw err;
  }
}
