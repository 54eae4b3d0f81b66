import type { Lineage, Lineage__Output } from '../../proto/gen/blockmirror/control/v1/Lineage.js';
import { InvalidArgumentError } from '../errors.js';
import type { VolumeLineage } from '../replication/lineage/continue-lineage.js';
import { withOwnWrites } from '../replication/lineage/with-own-writes.js';

/**
 * A volume's lineage as a pair's status shows it: what to record when the pair is
 * deleted (the operator: on the PersistentVolume; by hand: `pair status -o json`'s
 * `lineage`), and pass back to CreatePair for the next pair over that volume. Null when
 * the side holds no complete image yet (nothing to continue). A secondary's dirty blocks
 * are its own writes (see withOwnWrites).
 */
export function lineageRecordOf(p: { role: 'primary' | 'secondary'; generation: string; historyGenerations: readonly string[]; consistent: boolean; dirtyBlocks: number }): VolumeLineage | null {
  if (p.generation === '') return null;
  // A primary's volume is its data, whatever it holds; only a secondary can be mid-resync.
  return withOwnWrites({ role: p.role, generation: p.generation, history: [...p.historyGenerations], consistent: p.role === 'primary' || p.consistent }, p.dirtyBlocks);
}

/** A record in its JSON form (the annotation's value, `--lineage`): checked field by field. */
export function parseLineageRecord(text: string): VolumeLineage {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`lineage: not JSON: ${(err as Error).message}`, { cause: err });
  }
  const r = v as Partial<Record<keyof VolumeLineage, unknown>> | null;
  if (r === null || typeof r !== 'object' || Array.isArray(r)) throw new InvalidArgumentError('lineage: a JSON object is required');
  if (r.role !== 'primary' && r.role !== 'secondary') throw new InvalidArgumentError(`lineage: role ${JSON.stringify(r.role)} must be primary or secondary`);
  if (typeof r.generation !== 'string' || r.generation === '') throw new InvalidArgumentError('lineage: generation must be a non-empty string');
  if (!Array.isArray(r.history) || !r.history.every((h) => typeof h === 'string' && h !== '')) throw new InvalidArgumentError('lineage: history must be a list of generation ids');
  if (typeof r.consistent !== 'boolean') throw new InvalidArgumentError('lineage: consistent must be true or false');
  if (r.promotion !== undefined && (typeof r.promotion !== 'string' || r.promotion === '')) throw new InvalidArgumentError('lineage: promotion must be a non-empty string (the time it was recorded) when present');
  return { role: r.role, generation: r.generation, history: r.history as string[], consistent: r.consistent, ...(typeof r.promotion === 'string' ? { promotion: r.promotion } : {}) };
}

/** PairSpec.lineage of a CreatePair request. */
export function lineageToProto(l: VolumeLineage): Lineage {
  return { role: l.role === 'primary' ? 'ROLE_PRIMARY' : 'ROLE_SECONDARY', generation: l.generation, history: [...l.history], consistent: l.consistent, ...(l.promotion ? { promotion: l.promotion } : {}) };
}

/** A lineage off the wire (CreatePair's PairSpec.lineage, DeletePair's answer); null when unset. */
export function lineageFromProto(l: Lineage__Output | null): VolumeLineage | null {
  if (l === null || (l.generation === '' && l.history.length === 0)) return null;
  if (l.role !== 'ROLE_PRIMARY' && l.role !== 'ROLE_SECONDARY') throw new InvalidArgumentError('lineage: a role (primary or secondary) is required');
  return { role: l.role === 'ROLE_PRIMARY' ? 'primary' : 'secondary', generation: l.generation, history: [...l.history], consistent: l.consistent, ...(l.promotion ? { promotion: l.promotion } : {}) };
}
