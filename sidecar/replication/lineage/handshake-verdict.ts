import { decideResync, discardPlan } from './decide-resync.js';
import { formatGenerations, type GenerationIds } from './generation-ids.js';

/** Why a handshake started no session (HandshakeResponse.verdict). */
export type RefusalVerdict = 'dialer-stale' | 'responder-stale' | 'split-brain' | 'unrelated';

/** A side's role (the pair module's PairRole; spelled here so replication needs nothing above it). */
export type SideRole = 'primary' | 'secondary';

/** The side answering a handshake, as its generation ids and flags say. */
export interface Responder {
  role: SideRole;
  generations: GenerationIds;
  /** DiscardMyData was asked: the dialler's data overwrites this side's. */
  discardMyData: boolean;
}

/**
 * What the answering side does with a primary's handshake:
 * - `session`: it is a secondary the primary's data may go to: a full copy or a delta
 *   (which also overwrites the secondary's divergent blocks);
 * - `refuse`: no session, and the verdict says why;
 * - `demote-self`: it is a primary, and the dialler holds a newer generation descending
 *   from its own: it is stale, demotes itself (persisted first) and answers
 *   `responder-stale`.
 */
export type HandshakeVerdict = { kind: 'session'; full: boolean } | { kind: 'refuse'; verdict: Exclude<RefusalVerdict, 'responder-stale'>; reason: string } | { kind: 'demote-self'; reason: string };

/** The rules of role and generation at a handshake (the dialler is always a primary). */
export function handshakeVerdict(me: Responder, dialer: GenerationIds): HandshakeVerdict {
  const mine = formatGenerations(me.generations);
  const theirs = formatGenerations(dialer);
  if (dialer.current === '') return { kind: 'refuse', verdict: 'unrelated', reason: 'the primary names no data generation' };
  if (me.role === 'secondary' && me.discardMyData) return { kind: 'session', full: discardPlan(dialer, me.generations) === 'full' };
  const d = decideResync(dialer, me.generations);
  switch (d.kind) {
    case 'same':
      if (me.role === 'secondary') return { kind: 'session', full: false };
      return { kind: 'refuse', verdict: 'split-brain', reason: `split brain: both sides are primaries of generation ${me.generations.current}; demote one, and discard its data if it was written` };
    case 'full':
    case 'delta':
      if (d.from === 'a' || d.from === 'either') {
        if (me.role === 'secondary') return { kind: 'session', full: d.kind === 'full' };
        return { kind: 'demote-self', reason: `a primary holds generation ${theirs}, newer than and descending from this primary's ${mine}: this side is stale and demotes itself` };
      }
      return { kind: 'refuse', verdict: 'dialer-stale', reason: `this side holds generation ${mine}, newer than and descending from the primary's ${theirs}: the primary is stale and must demote` };
    case 'split-brain':
      return {
        kind: 'refuse',
        verdict: 'split-brain',
        reason: `split brain: both sides were written as primaries since generation ${d.common}: the primary holds ${theirs}, this side (${me.role}) holds ${mine}; nothing is resynced until one side discards its data (DiscardMyData)`,
      };
    case 'unrelated':
      // Said so that either side's status tells the user both ways out, never a bare refusal.
      return {
        kind: 'refuse',
        verdict: 'unrelated',
        reason: `unrelated data: the ${me.role} holds generation ${mine}, the primary ${theirs}, with no generation in common, so nothing is copied. If the primary's volume is the same data (its pair was deleted and recreated), recreate that pair with the lineage recorded for its volume (pair create --lineage; the operator passes the PersistentVolume's blockmirror.io/lineage annotation); to overwrite the ${me.role}'s data with a full copy instead, discard it there (pair discard-my-data, or spec.discardMyData: true on its ReplicationPair)`,
      };
  }
}
