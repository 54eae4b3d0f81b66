import type { PairJson } from '../../sidecar/control/pair-json.js';
import type { EventRecord } from '../kube/kube-client.js';
import type { Condition, ReplicationPairStatus } from '../api/replication-pair.js';

/** The condition reason both sides show when their volumes hold unrelated data. */
export const UNRELATED_DATA = 'UnrelatedData';

/**
 * What a pair whose peer refused it as unrelated data (no generation in common) says:
 * nothing is copied until someone chooses, and exactly which field on which side makes
 * the choice. Undefined when that is not the pair's trouble.
 */
export function unrelatedDataMessage(p: PairJson): string | undefined {
  if (p.peerVerdict !== 'unrelated' || p.discardMyData) return undefined;
  const how =
    p.role === 'secondary'
      ? "to overwrite this volume with a full copy of the primary's data, set spec.discardMyData: true on this ReplicationPair"
      : "to overwrite the secondary's volume with this volume's data, set spec.discardMyData: true on the secondary's ReplicationPair (spec.remote of this one, in the other cluster)";
  return (
    `the ${p.role === 'secondary' ? 'primary' : 'secondary'} holds data of an unrelated lineage (this side: generation ${p.generation || 'none'}, the peer: ${p.peerGeneration || 'unknown'}), so nothing is copied: ${how}. ` +
    "If both volumes hold the same data, the primary's pair was recreated without its volume's lineage (the PersistentVolume's blockmirror.io/lineage annotation): the operator passes it when it is there."
  );
}

/** Synchronized=False and Degraded=True, both with reason UnrelatedData, when the message applies. */
export function unrelatedDataConditions(p: PairJson, observedGeneration: number, prev: readonly Condition[] | undefined, now: Date): Condition[] | undefined {
  const message = unrelatedDataMessage(p);
  if (message === undefined) return undefined;
  return [
    ['Synchronized', 'False'],
    ['Degraded', 'True'],
  ].map(([type, status]) => {
    const old = prev?.find((c) => c.type === type);
    const lastTransitionTime = old !== undefined && old.status === status ? old.lastTransitionTime : now.toISOString();
    return { type: type!, status: status as Condition['status'], observedGeneration, lastTransitionTime, reason: UNRELATED_DATA, message };
  });
}

/** A Warning event when a pair newly shows UnrelatedData (once, not at every pass). */
export function unrelatedDataEvent(prev: ReplicationPairStatus | undefined, next: ReplicationPairStatus): EventRecord | undefined {
  const was = prev?.conditions?.some((c) => c.type === 'Synchronized' && c.reason === UNRELATED_DATA) ?? false;
  const now = next.conditions?.find((c) => c.type === 'Synchronized' && c.reason === UNRELATED_DATA);
  if (was || now === undefined) return undefined;
  return { type: 'Warning', reason: UNRELATED_DATA, message: now.message };
}
