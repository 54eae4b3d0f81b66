import { FailedPreconditionError, InvalidArgumentError } from '../../errors.js';
import { MAX_HISTORY, newGeneration, validGenerations, type GenerationIds } from './generation-ids.js';
import type { SideRole } from './handshake-verdict.js';

/**
 * What identifies a volume's data once its pair is gone: the role its side held, its
 * current generation and ancestors, and whether it was a complete image at one point in
 * time. The operator keeps it on the PersistentVolume (the volume outlives its pair and
 * its node); CreatePair takes it back (PairSpec.lineage).
 */
export interface VolumeLineage {
  role: SideRole;
  generation: string;
  /** Ancestors of `generation`, newest first. */
  history: readonly string[];
  /** False: a secondary mid-copy or mid-resync (its volume was at no point in time). */
  consistent: boolean;
  /**
   * An operator promoting a secondary by deleting its pair (a CSI volume, whose next
   * writes all pass a splice that tracks them from the first one) sets it, to the time
   * it recorded this: the volume was written since `generation` by nobody. Absent otherwise.
   */
  promotion?: string;
}

/** The generation ids a new pair takes from its volume's lineage, and whether it is at a point in time. */
export interface ContinuedLineage {
  generations: GenerationIds;
  /** A secondary whose volume was mid-resync: it stays so until a copy or resync completes. */
  inconsistent: boolean;
}

/**
 * The ids a pair created as `role` over a volume with `lineage` starts from. No dirty log
 * survives its pair, so the rules never claim one covers anything:
 *
 * - recorded as a secondary, created as one: it holds the recorded generation again. Its
 *   volume was written only by replication (its export and fence refuse other writers),
 *   so a primary whose dirty log covers that generation brings it up by a delta. A volume
 *   that was mid-resync stays inconsistent: never promotable until a resync completes.
 * - otherwise — recorded as a primary (its volume served writes, and may have taken
 *   writes nobody tracked while no pair existed), or created as a primary: a new current
 *   generation descending from the recorded one, with no bitmap. A peer holding the
 *   recorded generation is then brought up by a full copy rather than refused, and a
 *   primary that went on from it sees a split brain, never an overwrite of writes it did
 *   not know about.
 * - a primary over a volume that was mid-resync is refused: it holds no image.
 * - recorded as a secondary at a promotion (`promotion`: consistent, written by nobody
 *   since, its next writes tracked from the first), created as a primary: a new
 *   generation whose bitmap is the recorded one. The new pair's dirty log starts empty and
 *   takes every write from then on, so it does cover everything since `generation`, and
 *   the old primary, demoted at `generation`, takes a delta. Created as a secondary from
 *   such a record (the promotion given up), the volume may have taken writes meanwhile:
 *   the second rule's new generation with no bitmap.
 */
export function continueLineage(role: SideRole, lineage: VolumeLineage, fresh: string = newGeneration()): ContinuedLineage {
  const g = validGenerations({ current: lineage.generation, bitmap: '', history: [...lineage.history] });
  if (typeof g === 'string') throw new InvalidArgumentError(`lineage: ${g}`);
  if (g.current === '') throw new InvalidArgumentError('lineage: a generation is required (a volume that never held a complete image has no lineage to continue)');
  if (lineage.role !== 'primary' && lineage.role !== 'secondary') throw new InvalidArgumentError(`lineage: role ${JSON.stringify(lineage.role)} must be primary or secondary`);
  const promotion = lineage.promotion !== undefined && lineage.promotion !== '';
  if (promotion && lineage.role !== 'secondary') throw new InvalidArgumentError('lineage: only a secondary is recorded at a promotion');
  if (role === 'secondary' && lineage.role === 'secondary' && !promotion) {
    return { generations: { current: g.current, bitmap: '', history: g.history.slice(0, MAX_HISTORY) }, inconsistent: !lineage.consistent };
  }
  if (!lineage.consistent) {
    throw new FailedPreconditionError(
      `lineage: the volume was in the middle of a resync from generation ${g.current} when its pair was deleted, so it holds no image at one point in time; create it as a secondary to let its primary complete it, or without the lineage to start a new one from whatever it holds`,
    );
  }
  if (g.history.includes(fresh) || fresh === g.current) throw new InvalidArgumentError('lineage: the new generation is already in it');
  const bitmap = promotion && role === 'primary' ? g.current : '';
  return { generations: { current: fresh, bitmap, history: [g.current, ...g.history].slice(0, MAX_HISTORY) }, inconsistent: false };
}
