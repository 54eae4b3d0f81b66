import { coveredBy, lineageOf, type GenerationIds } from './generation-ids.js';

/**
 * What two sides' generation ids say about their data, whatever their roles:
 * - `same`: both hold the same generation; what differs is in the dirty logs (the
 *   primary's unconfirmed blocks, a demoted side's divergent ones);
 * - `delta` from one side: the other holds an ancestor the source's dirty log covers
 *   (`common`): shipping the source's dirty blocks, with the target's own divergent
 *   blocks, brings the target up to date;
 * - `full` from one side: the other holds no complete image (`either`: neither does),
 *   or an ancestor the source's dirty log no longer covers;
 * - `split-brain`: both were written as primaries since their newest common generation;
 * - `unrelated`: no generation in common.
 */
export type ResyncDecision =
  | { kind: 'same' }
  | { kind: 'delta'; from: 'a' | 'b'; common: string }
  | { kind: 'full'; from: 'a' | 'b' | 'either' }
  | { kind: 'split-brain'; common: string }
  | { kind: 'unrelated' };

/** Compares two sides' generation ids (see ResyncDecision). */
export function decideResync(a: GenerationIds, b: GenerationIds): ResyncDecision {
  if (a.current === '' && b.current === '') return { kind: 'full', from: 'either' };
  if (b.current === '') return { kind: 'full', from: 'a' };
  if (a.current === '') return { kind: 'full', from: 'b' };
  if (a.current === b.current) return { kind: 'same' };
  const la = lineageOf(a);
  const lb = lineageOf(b);
  if (la.includes(b.current)) return coveredBy(a).includes(b.current) ? { kind: 'delta', from: 'a', common: b.current } : { kind: 'full', from: 'a' };
  if (lb.includes(a.current)) return coveredBy(b).includes(a.current) ? { kind: 'delta', from: 'b', common: a.current } : { kind: 'full', from: 'b' };
  const common = la.find((g) => lb.includes(g));
  return common === undefined ? { kind: 'unrelated' } : { kind: 'split-brain', common };
}

/**
 * How `source` overwrites `target` when the target's own changes are to be discarded
 * (a split brain resolved by DiscardMyData, or an unrelated lineage): a delta when both
 * dirty logs cover their newest common generation — the target's holds what it wrote
 * since, the source's what it wrote — else a full copy.
 */
export function discardPlan(source: GenerationIds, target: GenerationIds): 'delta' | 'full' {
  if (target.current === '' || source.current === '') return 'full';
  const lt = lineageOf(target);
  const common = lineageOf(source).find((g) => lt.includes(g));
  if (common === undefined) return 'full';
  return coveredBy(source).includes(common) && coveredBy(target).includes(common) ? 'delta' : 'full';
}
