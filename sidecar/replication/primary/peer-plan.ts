import type { HandshakeResponse__Output } from '../../../proto/gen/blockmirror/replication/v1/HandshakeResponse.js';
import { BlockBitmap } from '../../bitmap/block-bitmap.js';
import { decideResync, discardPlan } from '../lineage/decide-resync.js';
import { validGenerations, type GenerationIds } from '../lineage/generation-ids.js';

/** What a primary ships in a session its secondary accepted. */
export interface PeerPlan {
  kind: 'full' | 'delta' | 'refuse';
  /** Why `refuse`: the answer contradicts the generation ids it carries. */
  reason: string;
  /** Tell the secondary, once resynced, that it holds our generation (MarkSynced). */
  adopt: boolean;
  /** The secondary's divergent blocks, to overwrite in the delta too; null: none. */
  divergent: BlockBitmap | null;
  /** The secondary's current generation ('' unknown: a secondary of the previous release). */
  peerGeneration: string;
}

/**
 * A primary's own reading of its secondary's handshake answer: the secondary decided
 * (handshakeVerdict), and the primary checks the ids it sent back before shipping
 * anything — a full copy when the secondary asked for one or when our dirty log does
 * not reach back to its generation, else a delta over our dirty blocks and its
 * divergent ones. A secondary of the previous release sends no ids: its answer stands.
 */
export function peerPlan(own: GenerationIds, s: HandshakeResponse__Output, blocks: number): PeerPlan {
  if (s.generations === null) return { kind: s.fullSyncRequired ? 'full' : 'delta', reason: '', adopt: s.fullSyncRequired, divergent: null, peerGeneration: '' };
  const peer = validGenerations(s.generations);
  if (typeof peer === 'string') return refuse(`the secondary's generation ids are invalid: ${peer}`, '');
  if (s.fullSyncRequired) return { kind: 'full', reason: '', adopt: true, divergent: null, peerGeneration: peer.current };
  const d = decideResync(own, peer);
  let kind: 'full' | 'delta';
  if (d.kind === 'same' || (d.kind === 'delta' && d.from === 'a')) kind = 'delta';
  else if (d.kind === 'full' && d.from === 'a') kind = 'full';
  // Anything else was accepted only because the secondary discards its own data.
  else kind = discardPlan(own, peer);
  let divergent: BlockBitmap | null = null;
  if (kind === 'delta' && s.divergentBlocks.length > 0) {
    if (s.divergentBlocks.length !== Math.ceil(blocks / 8)) return refuse(`the secondary's divergent blocks are ${s.divergentBlocks.length} bytes, not ${Math.ceil(blocks / 8)} (${blocks} blocks)`, peer.current);
    divergent = new BlockBitmap(blocks, s.divergentBlocks);
  }
  // A full copy when the secondary asked for a delta our log cannot give (never less than it asked).
  const adopt = kind === 'full' || d.kind !== 'same' || (divergent !== null && divergent.count > 0);
  return { kind, reason: '', adopt, divergent, peerGeneration: peer.current };
}

function refuse(reason: string, peerGeneration: string): PeerPlan {
  return { kind: 'refuse', reason, adopt: false, divergent: null, peerGeneration };
}
