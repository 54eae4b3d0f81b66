import type { Pair as PairMessage } from '../../proto/gen/blockmirror/control/v1/Pair.js';
import type { PairStatusView } from '../pair/pair.js';
import { pairStateToProto } from '../pair/pair-state.js';

/** The control API's `Pair` message for a pair: the one place its status is built. */
export function toMessage(p: PairStatusView): PairMessage {
  return {
    spec: {
      name: p.name,
      volumePath: p.volumePath,
      role: p.role === 'primary' ? 'ROLE_PRIMARY' : 'ROLE_SECONDARY',
      mode: p.mode === 'async' ? 'MODE_ASYNC' : 'MODE_SYNC',
      peerAddress: p.peer,
      blockSize: p.blockSize,
      peerPair: p.peerPair,
      consistencyGroup: p.consistencyGroup,
      ...p.settings,
    },
    status: {
      state: pairStateToProto(p.state),
      volumeBytes: p.volumeBytes,
      outOfSyncBytes: p.outOfSyncBytes,
      dirtyBlocks: p.dirtyBlocks,
      resyncProgressPercent: p.resyncProgressPercent,
      lastInSyncTimeMs: p.lastInSyncTimeMs,
      lastConsistencyPointTimeMs: p.lastConsistencyPointTimeMs,
      rpoSeconds: p.rpoSeconds,
      groupsFormed: p.groupsFormed,
      groupsFailed: p.groupsFailed,
      groupsDeferred: p.groupsDeferred,
      replicationErrors: p.replicationErrors,
      coordinationHoldP50Ms: p.coordinationHoldP50Ms,
      coordinationHoldP99Ms: p.coordinationHoldP99Ms,
      coordinationHoldMaxMs: p.coordinationHoldMaxMs,
      retries: p.retries,
      lastError: p.lastError,
      bytesWritten: p.bytesWritten,
      bytesRead: p.bytesRead,
      writeOps: p.writeOps,
      readOps: p.readOps,
      nbdConnections: p.nbdConnections,
      nbdAddress: p.nbdAddress,
      nbdSocket: p.nbdSocket,
      volumePath: p.volumePath,
      bytesOnWire: p.bytesOnWire,
      bytesReplicated: p.bytesReplicated,
      generation: p.generation,
      bitmapGeneration: p.bitmapGeneration,
      historyGenerations: p.historyGenerations,
      peerGeneration: p.peerGeneration,
      fenced: p.fenced,
      consistent: p.consistent,
      primaryDemoted: p.primaryDemoted,
      discardMyData: p.discardMyData,
      promotedTimeMs: p.promotedTimeMs,
      promotedPointTimeMs: p.promotedPointTimeMs,
    },
  };
}
