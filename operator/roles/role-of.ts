import type { Pair__Output } from '../../proto/gen/blockmirror/control/v1/Pair.js';
import type { PairRole } from '../api/replication-pair.js';

/** The role a sidecar pair holds. */
export function roleOf(p: Pair__Output): PairRole {
  return p.spec?.role === 'ROLE_SECONDARY' ? 'secondary' : 'primary';
}
