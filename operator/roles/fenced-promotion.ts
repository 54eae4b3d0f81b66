import type { Pair__Output } from '../../proto/gen/blockmirror/control/v1/Pair.js';
import { pairToJson, type PairJson } from '../../sidecar/control/pair-json.js';
import type { VolumeLineage } from '../../sidecar/replication/lineage/continue-lineage.js';
import type { ReplicationPair } from '../api/replication-pair.js';
import type { EventRecord } from '../kube/kube-client.js';
import type { VolumeLineageStore } from '../lineage/volume-lineage.js';
import { sidecarPairName } from '../sidecar-pair-name.js';
import type { Observation } from '../status/pair-status.js';
import { ProblemError } from '../status/problem-error.js';
import { refusedPromotionMessage } from './refused-promotion-message.js';
import { promotionRefusal } from '../../sidecar/pair/promotion-refusal.js';

export interface FencedPromotionDeps {
  control: { deletePair(name: string): Promise<VolumeLineage | null> };
  /** Takes the pair's volumes out of the data path (a demotion given up half-way left it on a splice). */
  detach(): Promise<void>;
  lineage: VolumeLineageStore | undefined;
  event(e: EventRecord): Promise<void>;
  pollMs: number;
  now(): Date;
}

/**
 * Why PromotePair would refuse this secondary (the sidecar's own rule, applied here: the
 * pair is deleted rather than promoted, see promoteFenced), or undefined. A secondary
 * shows InSync or Replicating only while its primary is connected.
 */
export function fencedPromotionRefusal(p: PairJson, force: boolean): string | undefined {
  return promotionRefusal({ name: p.name, generation: p.generation, consistent: p.consistent, primaryConnected: p.state === 'InSync' || p.state === 'Replicating', primaryDemoted: p.primaryDemoted }, force);
}

/**
 * A secondary on a CSI volume promoted: its pair sits on the raw device a holder pod
 * stages, where no application can write, so it is not promoted in place but deleted,
 * and the primary is created on the splice once a pod stages the volume for writing. To
 * keep the lineage (a delta to the old primary, not a full copy), the volume's record
 * says what the sidecar read once the pair had stopped, marked for a promotion: the new
 * primary continues with a fresh generation whose bitmap is that one (continueLineage).
 * The marker's claim — nobody writes the volume before the new primary's dirty log
 * tracks it — holds because the fences stay until the holder pod is gone, and an
 * opted-in volume is staged for writing only through the splice, whose dm-era records
 * every write until the pair attaches (an unstage before that carries them to the next
 * attach on the node; another node's staging in between is not covered). The checks are
 * PromotePair's, made here first.
 */
export async function promoteFenced(step: { pair: ReplicationPair; obs: Observation; current: Pair__Output; pvName: string }, deps: FencedPromotionDeps): Promise<void> {
  const { pair, obs, current, pvName } = step;
  const { namespace, name } = pair.metadata;
  const sidecarName = sidecarPairName(namespace, name);
  const before = pairToJson(current);
  const force = pair.spec.forcePromote === true;
  const why = fencedPromotionRefusal(before, force);
  if (why !== undefined) {
    obs.pair = before;
    const message = refusedPromotionMessage(pair, before, why, force, `kubectl patch rp ${name} -n ${namespace} --type=merge -p '{"spec":{"forcePromote":true}}'`);
    const known = pair.status?.conditions?.some((c) => c.type === 'Ready' && c.reason === 'PromotionRefused') ?? false;
    if (!known) await deps.event({ type: 'Warning', reason: 'PromotionRefused', message });
    throw new ProblemError({ reason: 'PromotionRefused', message, permanent: false, recheckAfterMs: deps.pollMs });
  }
  await deps.detach();
  let note = 'no lineage store: the new primary starts a new lineage (a full copy)';
  if (deps.lineage === undefined) {
    await deps.control.deletePair(sidecarName);
  } else {
    // First what the status says, as not consistent: a failure after the delete leaves a
    // record that claims nothing (the new primary is then refused, never given a delta).
    await deps.lineage.recordDeleting(pvName, before);
    const answer = await deps.control.deletePair(sidecarName);
    // Read once the pair had stopped: a resync that began after the checks shows here as
    // not consistent, and then no delta is claimed.
    const promoted: VolumeLineage | null = answer !== null && answer.role === 'secondary' && answer.consistent ? { ...answer, promotion: deps.now().toISOString() } : answer;
    await deps.lineage.record(pvName, promoted);
    if (promoted?.promotion !== undefined) note = `generation ${promoted.generation} kept on the PV for the promotion: the primary created on the splice continues it, and the old primary takes a delta`;
    else note = `the volume's record says ${answer === null ? 'nothing' : `generation ${answer.generation}${answer.consistent ? '' : ' mid-resync'}`}: no delta is claimed`;
  }
  if (force && !before.primaryDemoted) {
    await deps.event({
      type: 'Warning',
      reason: 'Promoting',
      message: `promoted by force from generation ${before.generation}: the volume holds the old primary's data as of the last ${pair.spec.mode === 'async' ? 'consistency group applied' : 'write received'} here; writes it acknowledged after that are lost. The secondary pair is removed; ${note}`,
    });
  } else {
    await deps.event({ type: 'Normal', reason: 'Promoting', message: `the secondary pair is removed (its holder pod and fences go next, then a pod may stage the volume for writing); ${note}` });
  }
}
