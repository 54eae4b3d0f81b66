import type { Pair__Output } from '../../proto/gen/blockmirror/control/v1/Pair.js';
import type { SplicedVolume__Output } from '../../proto/gen/blockmirror/control/v1/SplicedVolume.js';
import { pairToJson } from '../../sidecar/control/pair-json.js';
import type { VolumeLineage } from '../../sidecar/replication/lineage/continue-lineage.js';
import type { ReplicationPair } from '../api/replication-pair.js';
import type { ClaimUser, EventRecord } from '../kube/kube-client.js';
import { deleteKeepingLineage } from '../lineage/delete-keeping-lineage.js';
import { liveLineage } from '../lineage/live-lineage.js';
import type { VolumeLineageStore } from '../lineage/volume-lineage.js';
import type { FencedSecondary, FencedVolume } from '../secondary/fenced-secondary.js';
import { sidecarPairName } from '../sidecar-pair-name.js';
import { isRefusal } from '../sidecar-refusal.js';
import type { Observation } from '../status/pair-status.js';
import { ProblemError } from '../status/problem-error.js';
import { changeRole, type RoleControl } from './role-change.js';
import { roleOf } from './role-of.js';

/** The condition reason while a CSI primary's demotion waits for its volume to be unused. */
export const DEMOTION_WAITING = 'DemotionWaiting';

/** What the demotion needs of the sidecar that holds the primary's pair. */
export interface SplicedDemotionControl extends RoleControl {
  getPair(name: string): Promise<Pair__Output>;
  deletePair(name: string): Promise<VolumeLineage | null>;
  listVolumes(): Promise<SplicedVolume__Output[]>;
  detachVolume(pv: string): Promise<SplicedVolume__Output>;
}

export interface SplicedDemotionDeps {
  fenced: Pick<FencedSecondary, 'fenceForDemotion'>;
  /** The sidecar the pair last ran on (status.sidecar); undefined: none known, nothing to demote. */
  control: SplicedDemotionControl | undefined;
  node: string | undefined;
  lineage: VolumeLineageStore | undefined;
  event(e: EventRecord): Promise<void>;
  pollMs: number;
  demoteTimeoutMs: number;
}

/**
 * A primary on a CSI volume whose spec.role became secondary, demoted keeping its lineage
 * so that the other side, promoted, ships only a delta. In this order, each step again on
 * every pass until the pair is gone:
 * 1. the volume is fenced on every node of the site, so that once its pods are gone no
 *    pod is given it for writing again (the CSI proxy refuses to publish it);
 * 2. it waits (DemotionWaiting) until no pod uses the claim and the spliced device has no
 *    opener left: nothing on the node can write to it any more;
 * 3. DemotePair in place: the export refuses writes, everything is shipped, and the
 *    generation ids are kept — only now may the other side be promoted without force;
 * 4. the splice is detached, and the pair deleted with its lineage recorded on the PV:
 *    the secondary the fenced flow then creates on the raw device continues it.
 * Answers once the primary's pair is gone; throws a ProblemError saying what it waits for.
 */
export async function demoteSpliced(step: { pair: ReplicationPair; obs: Observation; vol: FencedVolume }, deps: SplicedDemotionDeps): Promise<void> {
  const { pair, obs, vol } = step;
  const { control } = deps;
  const sidecarName = sidecarPairName(pair.metadata.namespace, pair.metadata.name);
  if (control === undefined) return;
  let current = await control.getPair(sidecarName).catch((err: unknown) => {
    if ((err as { grpcCode?: number }).grpcCode === 5) return undefined;
    throw err;
  });
  if (current === undefined) return;
  obs.pair = pairToJson(current);

  const fenced = await deps.fenced.fenceForDemotion(pair, vol);
  obs.fence = fenced.fence;
  if (fenced.problem !== undefined) {
    // The pair goes on replicating meanwhile: only the fence is incomplete.
    const { reason, message, permanent, recheckAfterMs } = fenced.problem;
    throw new ProblemError({ reason, message: `demoting: ${message}`, permanent, ...(recheckAfterMs !== undefined ? { recheckAfterMs } : {}) });
  }

  if (roleOf(current) === 'primary') {
    const volumes = await control.listVolumes().catch((err: unknown) => {
      // A sidecar without a splice carries no volume.
      if (isRefusal(err)) return [];
      throw err;
    });
    const waitingFor = blockers(fenced.users, volumes.find((v) => v.pv === vol.splicePv), deps.node);
    if (waitingFor !== undefined) {
      const message = `demoting: volume ${vol.pvName} is fenced on every node; the pair demotes once nothing on node ${deps.node ?? '(unknown)'} can write to it: ${waitingFor}`;
      const known = pair.status?.conditions?.some((c) => c.type === 'Ready' && c.reason === DEMOTION_WAITING) ?? false;
      if (!known) await deps.event({ type: 'Normal', reason: DEMOTION_WAITING, message });
      throw new ProblemError({ reason: DEMOTION_WAITING, message, permanent: false, recheckAfterMs: deps.pollMs });
    }
    // Only now: a demotion ships what the volume's last writer left, and the other side
    // may be promoted without force as soon as it has returned.
    current = await changeRole({ pair, obs, current, action: { kind: 'demote' } }, { control, event: deps.event, pollMs: deps.pollMs, demoteTimeoutMs: deps.demoteTimeoutMs });
    obs.pair = pairToJson(current);
  }

  // A secondary made as one (no export) is the fenced flow's pair, from a pass whose
  // status was not written: it stays. A demoted primary keeps its export, fenced.
  const spec = current.spec;
  if ((spec?.nbdListen ?? '') === '' && (spec?.nbdSocket ?? '') === '') return;
  // Detached first: the sidecar never deletes a pair that carries a spliced volume's I/O.
  for (const v of await control.listVolumes().catch(() => [])) if (v.pair === sidecarName && v.state !== 'direct') await control.detachVolume(v.pv);
  const j = pairToJson(current);
  let kept: string;
  if (deps.lineage === undefined) {
    await control.deletePair(sidecarName);
    kept = 'no lineage store: the secondary starts a new lineage';
  } else if (j.dirtyBlocks > 0) {
    // Blocks its peer never confirmed (a primary that demoted itself): recorded as a
    // primary's, so the next pair over the volume never takes a delta that leaves them.
    await deps.lineage.record(vol.pvName, liveLineage(j));
    await control.deletePair(sidecarName);
    kept = `generation ${j.generation} recorded as a primary's (${j.dirtyBlocks} blocks its peer never confirmed): the secondary takes a new generation, so no delta leaves them behind`;
  } else {
    await deleteKeepingLineage(deps.lineage, control, sidecarName, vol.pvName);
    kept = `generation ${j.generation} kept on the PV: the secondary staged by the holder pod continues it, and the promoted side sends it a delta`;
  }
  delete obs.pair;
  await deps.event({ type: 'Normal', reason: 'DemotedPairRemoved', message: `the demoted pair left node ${deps.node ?? '(unknown)'} (its splice detached); ${kept}` });
}

/** What still keeps the volume writable on its node, or undefined when nothing does. */
function blockers(users: ClaimUser[], spliced: SplicedVolume__Output | undefined, node: string | undefined): string | undefined {
  if (users.length > 0) {
    const list = users.map((u) => `${u.namespace}/${u.name}${u.node !== undefined ? ` on node ${u.node}` : ''}`).join(', ');
    return `pod(s) ${list} still use the claim: stop the application (delete the pod, or scale its workload to 0)`;
  }
  // Not staged through the splice there (no pod ever staged it): nothing can write to it.
  if (spliced === undefined) return undefined;
  if (!spliced.openCountKnown) return `the sidecar of node ${node ?? '(unknown)'} does not report whether ${spliced.dmDevice} is still open (a sidecar older than the operator): upgrade it`;
  if (spliced.openCount > 0) return `${spliced.dmDevice} is still open ${spliced.openCount} time(s) (the kubelet unmounts it once the pod is gone)`;
  return undefined;
}
