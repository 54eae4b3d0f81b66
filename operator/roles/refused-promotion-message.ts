import type { PairJson } from '../../sidecar/control/pair-json.js';
import type { ReplicationPair } from '../api/replication-pair.js';

/** A refused promotion: the sidecar's reason, and when force would do it, how and what is lost. */
export function refusedPromotionMessage(pair: ReplicationPair, p: PairJson, why: string, forced: boolean, patch: string): string {
  const head = `not promoted: ${why}.`;
  // Only a primary that did not demote is overcome by force; the other refusals (a first
  // copy or a resync under way, a primary still connected) clear by themselves.
  if (forced || p.primaryDemoted) return `${head} The operator tries again.`;
  const lost =
    pair.spec.mode === 'async'
      ? `every write the old primary acknowledged after the consistency point this side holds (${p.lastConsistencyPointTime ?? 'time unknown'})`
      : 'the writes the old primary acknowledged after it lost the link to this side (while it replicated here, every acknowledged write reached this side)';
  return (
    `${head} Demote the old primary first (spec.role: secondary on its site). If it is unreachable and this side is to take over anyway, force it: ${patch}. ` +
    `Lost then: ${lost}; if the old primary went on writing alone, its return shows a split brain, resolved by discarding one side's data.`
  );
}
