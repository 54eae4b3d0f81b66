import type { Pair__Output } from '../../proto/gen/blockmirror/control/v1/Pair.js';
import type { PairSpec } from '../../proto/gen/blockmirror/control/v1/PairSpec.js';

/** For the Created event: which lineage a new sidecar pair continued ('' none). */
export function createdLineageNote(created: Pair__Output, desired: PairSpec): string {
  const l = desired.lineage;
  if (l === undefined || l === null || !l.generation) return '';
  const now = created.status?.generation ?? '';
  // A promotion's record: the new generation's dirty log covers everything since it.
  if (l.promotion) return `, continuing its volume's data lineage from generation ${l.generation} (promoted: now ${now || 'none'}, whose dirty log holds every block written since, so the old primary takes a delta)`;
  return now === l.generation
    ? `, continuing its volume's data lineage at generation ${l.generation}`
    : `, continuing its volume's data lineage from generation ${l.generation} (now ${now || 'none'}: the volume may hold writes nobody tracked, so no delta is claimed for it)`;
}
