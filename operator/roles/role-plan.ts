import type { PairRole } from '../api/replication-pair.js';

/** What a reconcile pass does about the role of a pair that exists on its sidecar. */
export type RoleAction =
  /** The sidecar holds the role the spec asks for. */
  | { kind: 'none' }
  /** The user changed spec.role to secondary: DemotePair (ships everything first). */
  | { kind: 'demote' }
  /** The user changed spec.role to primary: PromotePair. */
  | { kind: 'promote'; force: boolean }
  /** spec.discardMyData: DiscardMyData (a primary demotes at once; the peer overwrites this side). */
  | { kind: 'discard' }
  /**
   * spec.role is primary and has not changed, but the sidecar is a secondary: it demoted
   * itself (its peer holds a newer generation), or its data was discarded. Never promoted
   * back: only the user knows whether the other side is to stay the primary.
   */
  | { kind: 'demoted-by-peer' }
  /** spec.role is secondary and has not changed, but the sidecar is a primary (promoted by hand): not demoted behind the user's back. */
  | { kind: 'primary-outside' };

export interface RoleFacts {
  /** spec.role. */
  wanted: PairRole;
  /** status.appliedRole: the spec.role last carried out (absent: a resource from before role changes, whose role never changed). */
  applied: PairRole | undefined;
  /** The role the sidecar holds. */
  held: PairRole;
  /** The sidecar's state. */
  state: string;
  /** The sidecar was told to discard this side's data and the peer has not overwritten it yet. */
  sidecarDiscarding: boolean;
  /** The sidecar refuses its peer because they hold unrelated data. */
  unrelated: boolean;
  forcePromote: boolean;
  discardMyData: boolean;
}

/**
 * The role step of a pass. The operator acts on a *change* of spec.role (spec.role differs
 * from the role it last carried out), never on a difference alone: a primary that demoted
 * itself must not be promoted again because the spec still says primary.
 */
export function planRole(f: RoleFacts): RoleAction {
  // A discard is asked for once per conflict: the sidecar keeps the flag until the peer
  // has overwritten this side, and a flag left set does nothing while nothing conflicts.
  if (f.wanted === 'secondary' && f.discardMyData && !f.sidecarDiscarding && (f.held === 'primary' || f.state === 'SplitBrain' || f.unrelated)) return { kind: 'discard' };
  if (f.held === f.wanted) return { kind: 'none' };
  const applied = f.applied ?? f.wanted;
  if (f.wanted !== applied) return f.wanted === 'secondary' ? { kind: 'demote' } : { kind: 'promote', force: f.forcePromote };
  return f.wanted === 'primary' ? { kind: 'demoted-by-peer' } : { kind: 'primary-outside' };
}

/** The spec.role carried out after a pass whose role step was `action` and succeeded. */
export function appliedAfter(action: RoleAction, f: Pick<RoleFacts, 'wanted' | 'applied'>): PairRole {
  switch (action.kind) {
    case 'demoted-by-peer':
    case 'primary-outside':
      return f.applied ?? f.wanted;
    default:
      return f.wanted;
  }
}
