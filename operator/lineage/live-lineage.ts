import type { PairJson } from '../../sidecar/control/pair-json.js';
import { lineageRecordOf } from '../../sidecar/control/lineage-record.js';
import type { VolumeLineage } from '../../sidecar/replication/lineage/continue-lineage.js';

/**
 * What the PersistentVolume should carry while its pair runs, from the pair as its sidecar
 * reports it: kept in step so that a node that loses the pair's state directory (replaced,
 * wiped) does not take the volume's lineage with it. Null: nothing to record (no complete
 * image yet); an earlier record stays.
 *
 * Safety rests on two rules, as for the finalizer's records:
 *
 * - Only what the sidecar already committed is recorded (the status is read after its
 *   meta.json write), never what it is about to do: a record is never newer than the data.
 *   Older is safe: a secondary recreated at an older generation of the same lineage gets a
 *   bigger delta (or a full copy), a primary recreated from any record starts a new
 *   generation that no delta is ever claimed for.
 * - The record claims no more than what stays true until the next record. A secondary may
 *   start a resync (blocks out of order) right after this status was read, so it is never
 *   recorded as a complete image: a secondary recreated from it takes a delta but is not
 *   promotable until that completes. A secondary that holds divergent blocks — a demoted or
 *   discarding primary's writes its peer never confirmed, kept only in the dirty log that
 *   goes with the state directory — is recorded as a primary: recreated from it, the side
 *   takes a new generation and sees a split brain or takes a full copy, never a delta that
 *   would leave those blocks behind. `promoting`: the record written before the operator
 *   asks for a promotion, after which the volume takes writes replication did not bring.
 */
export function liveLineage(pair: PairJson, opts: { promoting?: boolean } = {}): VolumeLineage | null {
  const l = lineageRecordOf(pair);
  if (l === null) return null;
  if (l.role === 'secondary' && opts.promoting !== true) return { ...l, consistent: false };
  // A secondary mid-resync stays so: continuing it as a primary is refused (no image).
  return { ...l, role: 'primary' };
}
