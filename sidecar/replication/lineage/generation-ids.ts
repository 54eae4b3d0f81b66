import { randomBytes } from 'node:crypto';

/**
 * A side's data-generation ids, after DRBD's current, bitmap and history UUIDs. Each
 * side of a pair keeps its own (in its meta.json, changed atomically with its role):
 *
 * - `current` names the data this volume holds. A primary takes a fresh one whenever it
 *   starts writing what its peer will not follow: when it is promoted, and before it
 *   acknowledges the first write its peer did not get (the link is down, the peer
 *   refuses, the pair is paused; async mode: the link is down). A secondary takes its
 *   primary's once a copy or resync is complete and durable (MarkSynced). Empty: no
 *   complete image (a secondary before its first copy).
 * - `bitmap` is empty or one of `history`: the side's dirty log holds every block it
 *   changed since its data was at that generation. A peer holding `bitmap`, or any
 *   generation between it and `current`, can be brought up to date by a delta.
 * - `history` lists the generations the data descends from, newest first.
 *
 * Comparing two sides (decideResync) tells whether one descends from the other (and
 * whether a delta suffices) or whether both were written as primaries since a common
 * generation: a split brain, never resolved by overwriting either side silently.
 */
export interface GenerationIds {
  current: string;
  bitmap: string;
  history: readonly string[];
}

/** Ancestors kept; a rotation adds one. The bitmap's entry is never dropped. */
export const MAX_HISTORY = 32;

export const NO_GENERATIONS: GenerationIds = { current: '', bitmap: '', history: [] };

/** A new generation id: 64 random bits, as hex. */
export function newGeneration(): string {
  return randomBytes(8).toString('hex');
}

/** The data's lineage, newest first: current, then its ancestors (empty without data). */
export function lineageOf(g: GenerationIds): string[] {
  return g.current === '' ? [] : [g.current, ...g.history];
}

/**
 * The generations a delta from `g` can start from: its current (the dirty log holds what
 * the peer has not confirmed) and, with a bitmap, every ancestor from the newest down to
 * the bitmap's.
 */
export function coveredBy(g: GenerationIds): string[] {
  if (g.current === '') return [];
  const at = g.bitmap === '' ? -1 : g.history.indexOf(g.bitmap);
  return [g.current, ...g.history.slice(0, at + 1)];
}

/**
 * A new current generation for data that starts to diverge from what its peer holds:
 * the old one becomes history, and becomes the bitmap unless an older bitmap already
 * covers it (the dirty log only accumulates until a peer confirms it).
 */
export function rotated(g: GenerationIds, fresh: string = newGeneration()): GenerationIds {
  if (g.current === '') return { current: fresh, bitmap: '', history: [...g.history] };
  const history = trimHistory([g.current, ...g.history], g.bitmap || g.current);
  return { current: fresh, bitmap: g.bitmap || g.current, history };
}

/** What a side holds once it is a complete, durable copy of `source`'s current data. */
export function adopted(source: GenerationIds): GenerationIds {
  return { current: source.current, bitmap: '', history: trimHistory([...source.history], '') };
}

/** A short form for messages: `current` (bitmap b, history h1 h2 …). */
export function formatGenerations(g: GenerationIds): string {
  if (g.current === '') return 'no complete image';
  const parts = [g.bitmap !== '' ? `bitmap ${g.bitmap}` : '', g.history.length > 0 ? `history ${g.history.slice(0, 3).join(' ')}${g.history.length > 3 ? ' …' : ''}` : ''].filter((x) => x !== '');
  return parts.length === 0 ? g.current : `${g.current} (${parts.join(', ')})`;
}

/** Checks ids read from a file or the wire: strings, no duplicates, the bitmap in the history. */
export function validGenerations(g: { current?: unknown; bitmap?: unknown; history?: unknown }): GenerationIds | string {
  if (typeof g.current !== 'string' || typeof g.bitmap !== 'string' || !Array.isArray(g.history) || !g.history.every((h) => typeof h === 'string' && h !== '')) {
    return 'generation ids must be strings';
  }
  const history = g.history as string[];
  if (g.current === '' && g.bitmap !== '') return 'a bitmap generation without a current one';
  if (g.bitmap !== '' && !history.includes(g.bitmap)) return `bitmap generation ${g.bitmap} is not in the history`;
  if (new Set([g.current, ...history]).size !== history.length + 1) return 'a generation appears twice in the lineage';
  return { current: g.current, bitmap: g.bitmap, history };
}

function trimHistory(history: string[], keep: string): string[] {
  const at = keep === '' ? -1 : history.indexOf(keep);
  return history.slice(0, Math.max(MAX_HISTORY, at + 1));
}
