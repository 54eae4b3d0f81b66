import type { VolumeLineage } from './continue-lineage.js';

/**
 * The record of a side whose dirty log holds `dirtyBlocks`. A secondary's are writes it
 * made as a primary that its peer never confirmed (a demoted stale primary's, a
 * discarding one's), kept only in the dirty log that goes with the pair's state
 * directory. Recorded as a secondary, a pair recreated over the volume would take a delta
 * of its peer's changes alone and leave them behind, both sides then reporting in sync
 * over different data. Recorded as a primary's, the next pair takes a new generation:
 * a split brain or a full copy, never that delta (see continueLineage).
 */
export function withOwnWrites(l: VolumeLineage | null, dirtyBlocks: number): VolumeLineage | null {
  if (l === null || l.role === 'primary' || dirtyBlocks === 0) return l;
  return { ...l, role: 'primary' };
}
