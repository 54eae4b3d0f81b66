import { AsyncReplicator, type AsyncReplicatorOptions } from './async-replicator.js';
import type { Replicator } from './replicator.js';
import { SyncReplicator, type SyncReplicatorOptions } from './sync-replicator.js';

/** A replicator's settings, by mode: async ones join a consistency group. */
export type ReplicatorOptions = ({ mode: 'sync' } & SyncReplicatorOptions) | ({ mode: 'async' } & AsyncReplicatorOptions & Required<Pick<AsyncReplicatorOptions, 'group'>>);

/** The one place that chooses a primary's replicator by its mode. */
export function createReplicator(o: ReplicatorOptions): Replicator {
  if (o.mode === 'sync') return new SyncReplicator(o);
  // Before any link is made: every member of a group replicates to the same sidecar.
  o.group.groups.check(o.group.settings);
  return new AsyncReplicator(o);
}
