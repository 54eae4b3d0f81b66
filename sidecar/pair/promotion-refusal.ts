/** What PromotePair judges a secondary by; the operator reads the same from the pair's status. */
export interface PromotionFacts {
  name: string;
  /** The current generation; '' before the first complete copy. */
  generation: string;
  /** False while a resync writes blocks out of order. */
  consistent: boolean;
  primaryConnected: boolean;
  primaryDemoted: boolean;
}

/**
 * Why a secondary may not be promoted, or undefined when it may. One rule for the
 * sidecar's PromotePair and for the operator, which deletes a fenced CSI secondary
 * instead of promoting it in place and so must make the same checks first.
 */
export function promotionRefusal(p: PromotionFacts, force: boolean): string | undefined {
  if (p.generation === '') return `pair ${p.name} holds no complete image yet (its first copy has not finished): there is nothing to promote`;
  if (!p.consistent) return `pair ${p.name} is in the middle of a resync from generation ${p.generation}: blocks are written out of order, so its volume is at no point in time; it can be promoted once the resync completes`;
  if (p.primaryConnected) return `pair ${p.name}: a primary is connected and replicating to it; demote that primary first`;
  if (!force && !p.primaryDemoted) {
    return `pair ${p.name}: its primary (generation ${p.generation}) has not demoted itself with everything shipped here; demote it first, or promote with force if it is unreachable (what it acknowledged that never reached this side is then lost, and if it went on writing alone, a split brain is shown when it returns)`;
  }
  return undefined;
}
