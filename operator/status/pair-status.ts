import type { PairJson } from '../../sidecar/control/pair-json.js';
import { formatBytes } from '../../sidecar/control/format-bytes.js';
import { unrelatedDataConditions } from '../lineage/unrelated-data.js';
import type { Condition, ConditionStatus, PairPhase, PairRole, ReplicationMode, ReplicationPairStatus, SecondaryFence, SidecarRef } from '../api/replication-pair.js';

/** A problem the operator found before or instead of reaching the sidecar. */
export interface Problem {
  reason: string;
  message: string;
  /** Will not fix itself: the user must change something. */
  permanent: boolean;
  /**
   * A permanent problem the user fixes outside the pair (on the node, say), which no
   * watch event of the pair announces: looked at again after this long.
   */
  recheckAfterMs?: number;
  /** Known not to replicate (no sidecar pair, or none that the writes pass): Synchronized=False, not Unknown. */
  notReplicating?: boolean;
}

export interface Observation {
  generation: number;
  mode: ReplicationMode;
  sidecar?: SidecarRef;
  /** The pair as its sidecar reports it, when it was reached. */
  pair?: PairJson;
  problem?: Problem;
  /** A secondary on a CSI volume: its fence and where its volume is held. */
  fence?: SecondaryFence;
  /** The spec.role carried out on the sidecar, when this pass knows it. */
  appliedRole?: PairRole;
}

const SIDECAR_STATES: readonly string[] = ['Initializing', 'InSync', 'Replicating', 'Resyncing', 'Retrying', 'Paused', 'Standalone', 'SplitBrain'];

/** What the status says of the sidecar's role and data generation. */
const ROLE_FIELDS = ['role', 'generation', 'peerGeneration', 'fenced', 'lastPromotionTime', 'promotedPointTime'] as const;

/**
 * The status one reconcile pass writes: the sidecar's view of the pair, plus the three
 * standard conditions. A condition's lastTransitionTime moves only when its status does.
 */
export function buildStatus(prev: ReplicationPairStatus | undefined, obs: Observation, now: Date): ReplicationPairStatus {
  const p = obs.pair;
  const state: PairPhase = p !== undefined && SIDECAR_STATES.includes(p.state) ? (p.state as PairPhase) : obs.problem?.permanent ? 'Error' : 'Pending';
  const status: ReplicationPairStatus = { state, observedGeneration: obs.generation };
  if (obs.sidecar !== undefined) status.sidecar = obs.sidecar;
  if (obs.fence !== undefined) status.fence = obs.fence;
  const applied = obs.appliedRole ?? prev?.appliedRole;
  if (applied !== undefined) status.appliedRole = applied;
  if (p !== undefined) {
    status.role = p.role;
    status.generation = p.generation;
    if (p.peerGeneration !== '') status.peerGeneration = p.peerGeneration;
    // A secondary without an export takes no application write either.
    status.fenced = p.fenced || p.role === 'secondary';
    if (p.lastPromotionTime !== null) status.lastPromotionTime = p.lastPromotionTime;
    if (p.promotedPointTime !== null) status.promotedPointTime = p.promotedPointTime;
  } else if (prev !== undefined && obs.problem !== undefined && obs.problem.notReplicating !== true) {
    // The sidecar could not be asked this time: what it held when it last answered.
    for (const k of ROLE_FIELDS) if (prev[k] !== undefined) Object.assign(status, { [k]: prev[k] });
  }
  if (p !== undefined) {
    status.outOfSyncBytes = p.outOfSyncBytes;
    status.outOfSync = formatBytes(p.outOfSyncBytes).replace(' ', '');
    if (state === 'Initializing' || state === 'Resyncing') status.progressPercent = Math.round(p.resyncProgressPercent * 10) / 10;
    if (p.lastInSyncTime !== null) status.lastInSyncTime = p.lastInSyncTime;
    if (p.lastConsistencyPointTime !== null) status.lastConsistencyPointTime = p.lastConsistencyPointTime;
    if (p.nbdAddress !== '') status.exportAddress = p.nbdAddress;
    const rpo = rpoSeconds(obs.mode, p, now);
    if (rpo !== undefined) {
      status.rpoSeconds = rpo;
      status.rpo = `${rpo.toFixed(1)}s`;
    }
    if (p.lastError !== '') status.lastError = p.lastError;
  }
  if (obs.problem !== undefined) status.lastError = obs.problem.message;

  const conditions: Condition[] = [];
  const set = (type: string, s: ConditionStatus, reason: string, message: string): void => {
    const old = prev?.conditions?.find((c) => c.type === type);
    const lastTransitionTime = old !== undefined && old.status === s ? old.lastTransitionTime : now.toISOString();
    conditions.push({ type, status: s, observedGeneration: obs.generation, lastTransitionTime, reason, message });
  };
  if (obs.problem !== undefined) {
    set('Ready', 'False', obs.problem.reason, obs.problem.message);
  } else if (p !== undefined) {
    set('Ready', 'True', 'PairActive', `served by the sidecar on node ${obs.sidecar?.node ?? '?'}`);
  } else {
    set('Ready', 'Unknown', 'Reconciling', 'the pair has not been configured on a sidecar yet');
  }
  if (p === undefined && (state === 'Error' || obs.problem?.notReplicating === true)) {
    // Refused for good: nothing replicates, which is known, not unknown.
    set('Synchronized', 'False', obs.problem?.reason ?? 'Error', 'not replicating: see the Ready condition');
  } else if (p === undefined) {
    set('Synchronized', 'Unknown', 'NoSidecarStatus', 'no status from the sidecar');
  } else if (state === 'SplitBrain') {
    set('Synchronized', 'False', 'SplitBrain', 'split brain: nothing is resynced until one side discards its data');
  } else if (state === 'InSync' || (obs.mode === 'async' && state === 'Replicating')) {
    set('Synchronized', 'True', state, obs.mode === 'async' ? `consistency groups reach the secondary; RPO ${status.rpo ?? '?'}` : 'every acknowledged write is on the secondary');
  } else {
    set('Synchronized', 'False', state, `${formatBytes(p.outOfSyncBytes)} out of sync`);
  }
  if (state === 'Retrying') {
    // Unreachable, or reachable but unable to apply (a full disk): both retry, never suspend.
    set('Degraded', 'True', 'Retrying', `retrying without suspending: ${p?.lastError || 'the peer is unreachable'}`);
  } else if (state === 'Error') {
    set('Degraded', 'True', obs.problem?.reason ?? 'Error', obs.problem?.message ?? 'error');
  } else if (state === 'SplitBrain') {
    set('Degraded', 'True', 'SplitBrain', p?.lastError || 'split brain');
  } else if (p !== undefined && p.lastError !== '') {
    // Replicating, but something failed that the sidecar reports (its dirty log, say).
    set('Degraded', 'True', 'Error', p.lastError);
  } else {
    set('Degraded', 'False', 'Healthy', 'no fault');
  }
  // Unrelated data: both sides say so, and which field on which side chooses.
  const unrelated = p !== undefined ? unrelatedDataConditions(p, obs.generation, prev?.conditions, now) : undefined;
  status.conditions = unrelated === undefined ? conditions : conditions.map((c) => unrelated.find((u) => u.type === c.type) ?? c);
  return status;
}

/**
 * Async: the sidecar's figure (now minus the primary time of the last group applied).
 * Sync: 0 while nothing is out of sync, else the time since the pair was last in sync.
 */
function rpoSeconds(mode: ReplicationMode, p: PairJson, now: Date): number | undefined {
  if (p.role !== 'primary') return undefined;
  if (mode === 'async') return Math.round(p.rpoSeconds * 10) / 10;
  if (p.outOfSyncBytes === 0 && p.state === 'InSync') return 0;
  if (p.lastInSyncTime === null) return undefined;
  return Math.round((now.getTime() - Date.parse(p.lastInSyncTime)) / 100) / 10;
}

/** Statuses equal as JSON (the API server returns what we wrote, key order aside). */
export function sameStatus(a: ReplicationPairStatus | undefined, b: ReplicationPairStatus): boolean {
  return a !== undefined && canonical(a) === canonical(b);
}

function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x !== null && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)))
      : x,
  );
}
