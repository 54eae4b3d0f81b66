import type { Pair__Output } from '../../proto/gen/blockmirror/control/v1/Pair.js';
import type { PairSpec } from '../../proto/gen/blockmirror/control/v1/PairSpec.js';

/** For the Created event: which lineage a new sidecar pair continued ('' none). */
export function createdLineageNote(created: Pair__Output, desired: PairSpec): string {
  const l = desired.lineage;
  if (l === undefined || l === null || !l.generation) return '';
  const now = created.status?.generation ?? '';
  return now === l.generation
    ? `, continuing its volume's data lineage at generation ${l.generation}`
    : `, continuing its volume's data lineage from generation ${l.generation} (now ${now || 'none'}: the volume may hold writes nobody tracked, so no delta is claimed for it)`;
}
