import type { Pair__Output } from '../../proto/gen/blockmirror/control/v1/Pair.js';
import { pairToJson } from '../../sidecar/control/pair-json.js';
import type { VolumeLineage } from '../../sidecar/replication/lineage/continue-lineage.js';
import type { LocateResult } from '../discovery/volume-locator.js';
import type { VolumeLineageStore } from './volume-lineage.js';

/** What deleting needs of a sidecar's control API. */
export interface DeletingControl {
  getPair(name: string): Promise<Pair__Output>;
  deletePair(name: string): Promise<VolumeLineage | null>;
}

/**
 * Deletes a sidecar pair and keeps its volume's lineage on the PersistentVolume `pv`:
 * first what its last status says (a secondary marked mid-resync, since a resync may
 * start before it stops), then, once it is gone, the exact lineage DeletePair answered.
 * A failure before the delete leaves the pair (the finalizer retries); after it, the
 * first record stays, which never claims more than the volume holds. A NOT_FOUND from
 * the sidecar propagates as it did before, for the caller to treat as "already gone".
 */
export async function deleteKeepingLineage(store: VolumeLineageStore, control: DeletingControl, name: string, pv: string | undefined): Promise<void> {
  if (pv === undefined) {
    await control.deletePair(name);
    return;
  }
  await store.recordDeleting(pv, pairToJson(await control.getPair(name)));
  await store.record(pv, await control.deletePair(name));
}

/** The PersistentVolume a pair's claim is bound to, as far as the locator found it. */
export function pvNameOf(located: LocateResult): string | undefined {
  return 'location' in located ? located.location.pvName : located.unplaced?.pvName;
}
