import type { PairJson } from '../../sidecar/control/pair-json.js';
import type { ReplicationPair } from '../api/replication-pair.js';
import type { Problem } from '../status/pair-status.js';

/** Both sides were written as primaries: nothing moves until the user says which side loses. */
export function splitBrainProblem(pair: ReplicationPair, p: PairJson, pollMs: number): Problem {
  const { namespace, name } = pair.metadata;
  return {
    reason: 'SplitBrain',
    message:
      `split brain: this side (${p.role}) holds generation ${p.generation}, its peer ${p.peerGeneration || 'unknown'}; both were written as primaries since their last common generation, so nothing is resynced in either direction (${p.lastError}). ` +
      `Decide which side's changes are to go, and on that site run: kubectl patch rp ${name} -n ${namespace} --type=merge -p '{"spec":{"role":"secondary","discardMyData":true,"forcePromote":null}}' ` +
      `(its changes since the common generation are overwritten by the other side's); the other side stays or becomes the primary.`,
    permanent: false,
    recheckAfterMs: pollMs,
  };
}
