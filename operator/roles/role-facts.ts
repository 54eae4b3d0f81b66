import type { Pair__Output } from '../../proto/gen/blockmirror/control/v1/Pair.js';
import { pairToJson } from '../../sidecar/control/pair-json.js';
import type { ReplicationPair } from '../api/replication-pair.js';
import type { RoleFacts } from './role-plan.js';

/** What planRole decides on: the resource's spec and status, and the pair its sidecar holds. */
export function roleFacts(pair: ReplicationPair, current: Pair__Output): RoleFacts {
  const j = pairToJson(current);
  return {
    wanted: pair.spec.role,
    applied: pair.status?.appliedRole,
    held: j.role,
    state: j.state,
    sidecarDiscarding: j.discardMyData,
    // The sidecar's stable verdict, not its message text.
    unrelated: j.peerVerdict === 'unrelated',
    forcePromote: pair.spec.forcePromote === true,
    discardMyData: pair.spec.discardMyData === true,
  };
}
