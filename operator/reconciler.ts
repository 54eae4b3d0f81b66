import type { Logger } from 'winston';
import type { Pair__Output } from '../proto/gen/blockmirror/control/v1/Pair.js';
import type { PairSpec } from '../proto/gen/blockmirror/control/v1/PairSpec.js';
import type { PeerTls } from '../proto/gen/blockmirror/control/v1/PeerTls.js';
import type { PromotePairRequest } from '../proto/gen/blockmirror/control/v1/PromotePairRequest.js';
import type { SplicedVolume__Output } from '../proto/gen/blockmirror/control/v1/SplicedVolume.js';
import { pairToJson } from '../sidecar/control/pair-json.js';
import { BlockmirrorError } from '../sidecar/errors.js';
import { peerTlsFingerprint } from '../sidecar/pair/pair-spec.js';
import type { VolumeLineage } from '../sidecar/replication/lineage/continue-lineage.js';
import { DEFAULT_BLOCK_SIZE, FINALIZER, type ReplicationPair, type ReplicationPairStatus } from './api/replication-pair.js';
import type { SidecarLookup } from './discovery/sidecar-directory.js';
import type { LocateResult, VolumeLocation } from './discovery/volume-locator.js';
import { KubeApiError } from './kube/kube-api-error.js';
import type { EventRecord } from './kube/kube-client.js';
import { createdLineageNote } from './lineage/created-lineage-note.js';
import { deleteKeepingLineage, pvNameOf } from './lineage/delete-keeping-lineage.js';
import { liveLineage } from './lineage/live-lineage.js';
import { unrelatedDataEvent } from './lineage/unrelated-data.js';
import type { VolumeLineageStore } from './lineage/volume-lineage.js';
import { withLineage } from './lineage/with-lineage.js';
import { promoteFenced } from './roles/fenced-promotion.js';
import { changeRole } from './roles/role-change.js';
import { roleFacts } from './roles/role-facts.js';
import { roleOf } from './roles/role-of.js';
import { appliedAfter, planRole } from './roles/role-plan.js';
import { demoteSpliced } from './roles/spliced-demotion.js';
import { splitBrainProblem } from './roles/split-brain-problem.js';
import type { FencedSecondary, FencedVolume } from './secondary/fenced-secondary.js';
import { sidecarPairName } from './sidecar-pair-name.js';
import { isRefusal } from './sidecar-refusal.js';
import { buildStatus, sameStatus, type Observation } from './status/pair-status.js';
import { ProblemError } from './status/problem-error.js';
import type { HandlerResult } from './work-queue.js';

// Kept importable from here, where the reconciler's users and tests have found it.
export { sidecarPairName } from './sidecar-pair-name.js';

/** What the reconciler needs from a sidecar's control API. */
export interface SidecarControl {
  getPair(name: string): Promise<Pair__Output>;
  createPair(spec: PairSpec): Promise<Pair__Output>;
  updatePair(spec: PairSpec): Promise<Pair__Output>;
  /** Answers the lineage the volume holds (null: nothing to continue). */
  deletePair(name: string): Promise<VolumeLineage | null>;
  pausePair(name: string): Promise<Pair__Output>;
  resumePair(name: string): Promise<Pair__Output>;
  /** The node splice's volumes (FAILED_PRECONDITION: the sidecar has no splice). */
  listVolumes(): Promise<SplicedVolume__Output[]>;
  attachVolume(pv: string, pair: string): Promise<SplicedVolume__Output>;
  detachVolume(pv: string): Promise<SplicedVolume__Output>;
  /** Waits up to `timeoutMs` for everything to be shipped; the call's own deadline is past that. */
  demotePair(name: string, opts: { force?: boolean; timeoutMs?: number }): Promise<Pair__Output>;
  promotePair(req: PromotePairRequest): Promise<Pair__Output>;
  discardMyData(name: string): Promise<Pair__Output>;
}

export interface ReconcilerDeps {
  /** The informer's cache. */
  cached(namespace: string, name: string): ReplicationPair | undefined;
  kube: {
    patchPairStatus(namespace: string, name: string, status: ReplicationPairStatus, previous?: ReplicationPairStatus): Promise<void>;
    /** The pair's resourceVersion on the API server now (undefined: gone). */
    pairResourceVersion(namespace: string, name: string): Promise<string | undefined>;
    setFinalizers(namespace: string, name: string, finalizers: string[], resourceVersion: string | undefined): Promise<void>;
    recordEvent(pair: ReplicationPair, event: EventRecord): Promise<void>;
    /** A Secret's data, decoded; undefined when it does not exist. */
    readSecret(namespace: string, name: string): Promise<Record<string, Buffer> | undefined>;
  };
  locate(namespace: string, pvcName: string): Promise<LocateResult>;
  /** Secondaries on CSI volumes (fence, holder pod, the device); without it they are refused. */
  fenced?: Pick<FencedSecondary, 'place' | 'release' | 'fenceForDemotion'>;
  sidecarFor(node: string): Promise<SidecarLookup>;
  control(endpoint: string): SidecarControl;
  /** Keeps a volume's data lineage on its PersistentVolume across pair deletions (issue 18). */
  lineage?: VolumeLineageStore;
  logger: Logger;
  /** How often a healthy pair's status is refreshed from its sidecar. */
  pollMs: number;
  /** How often a pair refused for its node (NodeCannotSplice) looks at the node again. Default 30 s. */
  nodeRecheckMs?: number;
  /** How often a pair whose TLS Secret the operator may not read looks again (TLSSecretForbidden). Default 30 s. */
  secretRecheckMs?: number;
  /** Longest a demotion waits for everything to be shipped to the peer. Default 60 s. */
  demoteTimeoutMs?: number;
  now?: () => Date;
}

/**
 * The pass read a copy of the resource older than the API server's: it stops without
 * writing status (which would write the old copy's fields back) and looks again soon.
 */
export class CacheBehindError extends BlockmirrorError {
  constructor(message: string) {
    super('CONFLICT', message);
    this.name = 'CacheBehindError';
  }
}

/** How soon a pass that found the cache behind looks again: the watch is usually that quick. */
const CACHE_CATCH_UP_MS = 250;

/** A reconcile that must be retried with backoff (the queue counts the failures). */
export class TemporaryError extends BlockmirrorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('UNAVAILABLE', message, options);
    this.name = 'TemporaryError';
  }
}

const TLS_KEYS = ['tls.crt', 'tls.key', 'ca.crt'];

function isNotFound(err: unknown): boolean {
  const e = err as { grpcCode?: number; code?: string };
  return e.grpcCode === 5 || e.code === 'NOT_FOUND';
}

/**
 * One idempotent pass over a ReplicationPair: finalizer, volume and sidecar lookup,
 * create/update/pause/resume/delete through the sidecar's control API, then at most one
 * status patch. Safe to run any number of times; never runs twice at once for one key.
 */
export class Reconciler {
  readonly #d: ReconcilerDeps;

  constructor(deps: ReconcilerDeps) {
    this.#d = deps;
  }

  async reconcile(key: string, signal: AbortSignal): Promise<HandlerResult> {
    const [namespace, name] = key.split('/') as [string, string];
    const pair = this.#d.cached(namespace, name);
    if (pair === undefined || signal.aborted) return;
    const finalizers = pair.metadata.finalizers ?? [];
    if (pair.metadata.deletionTimestamp !== undefined) {
      if (finalizers.includes(FINALIZER)) return this.#finalize(pair, finalizers);
      return;
    }
    if (!finalizers.includes(FINALIZER)) {
      // Before anything exists on a sidecar: from here on, deletion waits for cleanup.
      await this.#d.kube.setFinalizers(namespace, name, [...finalizers, FINALIZER], pair.metadata.resourceVersion);
    }

    const obs: Observation = { generation: pair.metadata.generation ?? 0, mode: pair.spec.mode };
    let retry: TemporaryError | undefined;
    try {
      await this.#converge(pair, obs);
      if (obs.pair?.state === 'SplitBrain') obs.problem = splitBrainProblem(pair, obs.pair, this.#d.pollMs);
    } catch (err) {
      if (err instanceof CacheBehindError) {
        this.#d.logger.debug('reconcile: cache behind, looking again', { pair: key, reason: err.message });
        return { requeueAfterMs: CACHE_CATCH_UP_MS };
      }
      if (err instanceof ProblemError) {
        obs.problem = err.problem;
        // A problem that says when to look again is waited for, not retried with backoff.
        if (!err.problem.permanent && err.problem.recheckAfterMs === undefined) retry = new TemporaryError(err.problem.message, { cause: err });
      } else {
        const message = (err as Error).message;
        obs.problem = { reason: 'SidecarUnavailable', message, permanent: false };
        retry = new TemporaryError(message, { cause: err });
      }
    }
    await this.#publish(pair, obs);
    if (retry !== undefined) throw retry;
    // Permanent problems wait for the user to change the resource (a watch event), or
    // the node, which no event of the pair announces.
    if (obs.problem?.recheckAfterMs !== undefined) return { requeueAfterMs: obs.problem.recheckAfterMs };
    if (obs.problem?.permanent) return undefined;
    return { requeueAfterMs: this.#d.pollMs };
  }

  async #converge(pair: ReplicationPair, obs: Observation): Promise<void> {
    const { namespace, name } = pair.metadata;
    const primary = pair.spec.role === 'primary';
    // Promoted from a fenced secondary: its fence goes before anything else.
    if (primary && pair.status?.fence !== undefined) await this.#unfencePromoted(pair, obs, pair.status.fence);
    const located = await this.#d.locate(namespace, pair.spec.pvcName);
    const fenced = primary ? undefined : this.#fencedVolume(pair, located);
    // A primary on a CSI volume whose spec.role became secondary: its pair on the splice
    // demotes and goes (keeping the lineage) before the fenced flow places the secondary.
    if (fenced !== undefined && pair.status?.appliedRole === 'primary') {
      const where = pair.status.sidecar;
      // Kept until the pair is gone: the next pass must find it again.
      if (where !== undefined) obs.sidecar = where;
      await demoteSpliced(
        { pair, obs, vol: fenced },
        {
          fenced: this.#d.fenced!,
          control: where !== undefined ? this.#d.control(where.endpoint) : undefined,
          node: where?.node,
          lineage: this.#d.lineage,
          event: (e) => this.#event(pair, e),
          pollMs: this.#d.pollMs,
          demoteTimeoutMs: this.#d.demoteTimeoutMs ?? 60_000,
        },
      );
      obs.appliedRole = 'secondary';
    }
    let loc: VolumeLocation | undefined;
    let node: string;
    let volumePath: string | undefined;
    if (fenced !== undefined) {
      ({ node, device: volumePath } = await this.#placeFenced(pair, obs, fenced));
    } else {
      if ('failure' in located) throw new ProblemError(located.failure);
      loc = located.location;
      node = loc.node;
      volumePath = loc.path;
    }
    const found = await this.#d.sidecarFor(node);
    if ('missing' in found) throw new ProblemError({ reason: 'SidecarNotFound', message: found.missing, permanent: false });
    const endpoint = found.found.control;
    obs.sidecar = { node, endpoint };

    const peerTls = await this.#peerTls(pair);

    // The pair moved to another node (the volume was re-attached): forget the old one.
    const previous = pair.status?.sidecar;
    const sidecarName = sidecarPairName(namespace, name);
    if (previous !== undefined && previous.endpoint !== endpoint) {
      const old = this.#d.control(previous.endpoint);
      await this.#detachAll(old, sidecarName)
        .then(() => this.#deletePair(old, sidecarName, fenced?.pvName ?? ('location' in located ? located.location.pvName : undefined)))
        .catch((err: unknown) => {
          this.#d.logger.warn('could not remove the pair from its previous sidecar', { pair: sidecarName, sidecar: previous.endpoint, error: (err as Error).message });
        });
    }

    const control = this.#d.control(endpoint);
    if (loc !== undefined) {
      const splice = found.found.splice;
      if (primary && loc.spliceOptIn !== undefined && !splice.capable) {
        await this.#refuseUnspliceable(pair, control, { node, optIn: loc.spliceOptIn, reason: splice.reason });
      }
      if (loc.csi !== undefined) {
        if (!primary) {
          throw new ProblemError({
            reason: 'UnsupportedVolume',
            message: `a secondary on a CSI volume (${loc.pvName}, driver ${loc.csi.driver}) needs the operator's holder pods, and this operator runs without --holder-image (the chart sets it): give the secondary a local PersistentVolume on a block device, or run the operator with it`,
            permanent: true,
            notReplicating: true,
          });
        }
        await this.#convergeSpliced(pair, obs, control, loc, loc.csi, peerTls);
        return;
      }
      // A secondary's pods are fenced by its sidecar instead: it holds the device exclusively,
      // so their mount fails (the reason in their events) and replication goes on.
      if (primary && loc.usedBy.length > 0) await this.#refuseWrittenAround(pair, control, loc);
    }
    // A local volume's path, or a fenced secondary's raw device (held exclusively by the pair).
    let current = await this.#ensurePair(pair, obs, control, { ...desiredSpec(pair, volumePath!), ...(peerTls ? { peerTls } : {}) }, { node, csi: fenced !== undefined, pvName: fenced?.pvName ?? loc?.pvName });
    const state = pairToJson(current).state;
    if (pair.spec.paused === true && state !== 'Paused') {
      current = await control.pausePair(sidecarName);
    } else if (pair.spec.paused !== true && state === 'Paused') {
      current = await control.resumePair(sidecarName);
    }
    obs.pair = pairToJson(current);
  }

  /** A secondary's CSI volume, when this operator fences them. */
  #fencedVolume(pair: ReplicationPair, located: LocateResult): FencedVolume | undefined {
    if (this.#d.fenced === undefined) return undefined;
    const v = 'location' in located ? located.location : located.unplaced;
    if (v?.csi === undefined) return undefined;
    return { pvName: v.pvName, claim: pair.spec.pvcName, splicePv: v.csi.splicePv, driver: v.csi.driver, volumeMode: v.csi.volumeMode };
  }

  /**
   * A secondary on a CSI volume: fenced on every node, staged by a holder pod, replicated
   * into the raw device its node's CSI proxy holds. Until then the pair says what it
   * waits for; a sidecar pair made earlier stays where it was (status keeps its node).
   */
  async #placeFenced(pair: ReplicationPair, obs: Observation, vol: FencedVolume): Promise<{ node: string; device: string }> {
    const placement = await this.#d.fenced!.place(pair, vol);
    obs.fence = placement.fence;
    if (placement.held === undefined) {
      if (pair.status?.sidecar !== undefined) obs.sidecar = pair.status.sidecar;
      throw new ProblemError(placement.problem ?? { reason: 'Staging', message: 'waiting for the volume to be staged', permanent: false, recheckAfterMs: this.#d.pollMs, notReplicating: true });
    }
    return placement.held;
  }

  /**
   * A fenced secondary changed to primary: its sidecar pair (still a secondary) goes, its
   * lineage kept for the promotion (promoteFenced, which makes PromotePair's checks first),
   * then the holder pod, then the fences; only then can a pod stage the volume for writing.
   * A pair that is still a primary (a demotion given up before it demoted) stays as it is:
   * only its fences go.
   */
  async #unfencePromoted(pair: ReplicationPair, obs: Observation, fence: NonNullable<ReplicationPairStatus['fence']>): Promise<void> {
    if (this.#d.fenced === undefined) return;
    const previous = pair.status?.sidecar;
    const sidecarName = sidecarPairName(pair.metadata.namespace, pair.metadata.name);
    if (previous !== undefined) {
      const control = this.#d.control(previous.endpoint);
      const current = await control.getPair(sidecarName).catch((err: unknown) => {
        if (isNotFound(err)) return undefined;
        throw err;
      });
      if (current !== undefined && roleOf(current) === 'secondary') {
        // Kept while refused: the next pass must find the pair and its fence again.
        obs.fence = fence;
        obs.sidecar = previous;
        await promoteFenced(
          { pair, obs, current, pvName: fence.volume },
          { control, detach: () => this.#detachAll(control, sidecarName), lineage: this.#d.lineage, event: (e) => this.#event(pair, e), pollMs: this.#d.pollMs, now: this.#d.now ?? (() => new Date()) },
        );
        delete obs.fence;
        delete obs.sidecar;
      }
    }
    if ((await this.#d.fenced.release(pair, fence)) === 'waiting') {
      obs.fence = fence;
      throw new ProblemError({ reason: 'Unfencing', message: `promoted: volume ${fence.volume} is still fenced as a secondary; its holder pod goes first, then the fence`, permanent: false, recheckAfterMs: this.#d.pollMs, notReplicating: true });
    }
  }

  /**
   * The sidecar pair as `desired` wires it: created, its role changed, updated in place,
   * or recreated (a new volume, mode or block size: the sidecar cannot change those live).
   */
  async #ensurePair(pair: ReplicationPair, obs: Observation, control: SidecarControl, desired: PairSpec, where: { node: string; csi: boolean; pvName?: string | undefined }): Promise<Pair__Output> {
    const sidecarName = desired.name!;
    const { node } = where;
    let current = await control.getPair(sidecarName).catch((err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    if (current !== undefined && !sameWiring(current, desired)) {
      this.#d.logger.debug('sidecar pair wired differently from the spec', { pair: sidecarName, have: current.spec, want: desired });
      // The sidecar cannot change these on a live pair, nor delete one that carries a
      // spliced volume's I/O.
      await this.#detachAll(control, sidecarName);
      // Its lineage is kept only on the volume it was about: a pair moved to another
      // volume must never hand its lineage to that one.
      await this.#deletePair(control, sidecarName, current.spec?.volumePath === desired.volumePath ? where.pvName : undefined);
      await this.#event(pair, { type: 'Normal', reason: 'Reconfigured', message: `pair recreated on node ${node} with the new volume, mode or block size; a full resync follows` });
      current = undefined;
    }
    if (current !== undefined) {
      const facts = roleFacts(pair, current);
      const action = planRole(facts);
      if (where.csi && (action.kind === 'demote' || action.kind === 'promote')) {
        // A CSI pair's role changes keep the lineage through demoteSpliced and promoteFenced,
        // before this is reached; what is left here (a sidecar pair holding a role neither
        // flow put it in) is recreated in its new role, and a full copy follows.
        await this.#detachAll(control, sidecarName);
        // A fresh lineage, as before volumes carried one: its record goes first (see #unfencePromoted).
        if (where.pvName !== undefined) await this.#d.lineage?.forget(where.pvName);
        await control.deletePair(sidecarName);
        await this.#event(pair, { type: 'Normal', reason: 'Reconfigured', message: `pair recreated on node ${node} as a ${facts.wanted} (a CSI volume's role change); a full resync follows` });
        current = undefined;
      } else {
        if (action.kind === 'demoted-by-peer' || action.kind === 'primary-outside') {
          // Read from the cache, status.appliedRole may predate this operator's own last
          // write: a pass that demoted while the user set the role back, read before its
          // status patch came through the watch, would take the demotion for the peer's
          // and write the old appliedRole back, and the promotion asked would never run.
          const now = await this.#d.kube.pairResourceVersion(pair.metadata.namespace, pair.metadata.name);
          if (now !== pair.metadata.resourceVersion) throw new CacheBehindError(`the cached resource (version ${pair.metadata.resourceVersion ?? '?'}) is behind the API server's (${now ?? 'gone'})`);
          // Known before the step: a role the sidecar took by itself is reported, not undone.
          obs.appliedRole = appliedAfter(action, facts);
        }
        // Before, never after: once promoted the volume takes writes replication did not
        // bring, and a record still saying "secondary" would let a recreated secondary take
        // a delta over them. Recorded as a primary it never claims a delta (liveLineage).
        // If this write fails, the promotion waits for the next pass.
        if (action.kind === 'promote' && where.pvName !== undefined) await this.#d.lineage?.keep(where.pvName, liveLineage(pairToJson(current), { promoting: true }));
        current = await changeRole({ pair, obs, current, action }, { control, event: (e) => this.#event(pair, e), pollMs: this.#d.pollMs, demoteTimeoutMs: this.#d.demoteTimeoutMs ?? 60_000 });
        obs.appliedRole = appliedAfter(action, facts);
      }
    }
    if (current !== undefined && roleOf(current) === pair.spec.role) {
      const want = tunablesFor(desired, current);
      if (!sameTunables(current, want)) {
        // Everything else changes in place: the pair keeps its dirty log and generation.
        current = await control.updatePair(want);
        await this.#event(pair, { type: 'Normal', reason: 'Updated', message: 'pair settings updated on its sidecar' });
      }
    }
    if (current === undefined) {
      // The spec as sent: with the lineage it continues, which the Created event names.
      let wanted: PairSpec;
      try {
        wanted = this.#d.lineage === undefined ? desired : await withLineage(this.#d.lineage, desired, where.pvName);
        // The record it continues stays until the pair's own replaces it (below): never
        // removed, so a node that loses the new pair's state at once still finds one.
        current = await control.createPair(wanted);
      } catch (err) {
        // Refused for this spec. A failed precondition (a device in use: mounted,
        // DEVICE_IN_USE) may clear outside the pair, and a path the sidecar does not allow
        // (PERMISSION_DENIED) once it is restarted with other flags: looked at again now and then.
        if (isRefusal(err)) {
          const precondition = [7, 9].includes((err as { grpcCode?: number }).grpcCode ?? 0);
          throw new ProblemError({ reason: 'SidecarRejected', message: (err as Error).message, permanent: true, notReplicating: true, ...(precondition ? { recheckAfterMs: this.#d.nodeRecheckMs ?? 30_000 } : {}) });
        }
        throw err;
      }
      obs.appliedRole = pair.spec.role;
      await this.#event(pair, { type: 'Normal', reason: 'Created', message: `pair created on the sidecar of node ${node} (${desired.volumePath})${createdLineageNote(current, wanted)}` });
    }
    if (where.pvName !== undefined) await this.#keepLineage(where.pvName, current);
    return current;
  }

  /**
   * The PV carries what identifies the pair's data now (liveLineage), so a node that loses
   * the pair's state directory does not lose the volume's lineage. Read from the status the
   * sidecar answered after committing it: never ahead of the data. A failed write is
   * logged and tried again next pass (the record it leaves is older, which is safe).
   */
  async #keepLineage(pvName: string, current: Pair__Output): Promise<void> {
    await this.#d.lineage?.keep(pvName, liveLineage(pairToJson(current))).catch((err: unknown) => {
      this.#d.logger.warn('could not record the volume lineage on its PersistentVolume', { pv: pvName, error: (err as Error).message });
    });
  }

  /**
   * A primary on a CSI volume: replicated only through the node's splice, which the CSI
   * node proxy put under the volume when the kubelet staged it. The sidecar pair opens
   * the raw device the splice maps and exports it on a Unix socket; attaching puts that
   * export under /dev/mapper/blockmirror-<pv> live, so from then on every write of the
   * pod passes the tap (the blocks written before are what dm-era saw, marked out of
   * sync). Until it is attached, the pair reports no sidecar state: it must never show
   * InSync while the pod writes around it. Pause detaches (dm-era records the writes),
   * resume attaches again.
   */
  async #convergeSpliced(pair: ReplicationPair, obs: Observation, control: SidecarControl, loc: VolumeLocation, csi: NonNullable<VolumeLocation['csi']>, peerTls: PeerTls | undefined): Promise<void> {
    const sidecarName = sidecarPairName(pair.metadata.namespace, pair.metadata.name);
    // A sidecar without a splice (refused) has staged nothing.
    const volumes = await control.listVolumes().catch((err: unknown) => {
      if (isRefusal(err)) return [];
      throw err;
    });
    const rec = volumes.find((v) => v.pv === csi.splicePv);
    if (rec === undefined) {
      const removed = await this.#removeUnsafePair(control, sidecarName);
      const message = notSplicedMessage(loc, csi);
      const known = pair.status?.conditions?.some((c) => c.type === 'Ready' && c.reason === 'NotSpliced');
      if (!known || removed) await this.#event(pair, { type: 'Warning', reason: 'NotSpliced', message: removed ? `${message} Its pair on the sidecar was removed.` : message });
      throw new ProblemError({ reason: 'NotSpliced', message, permanent: false, recheckAfterMs: this.#d.pollMs, notReplicating: true });
    }
    if (rec.pair !== '' && rec.pair !== sidecarName) {
      throw new ProblemError({
        reason: 'SpliceInUse',
        message: `volume ${loc.pvName} on node ${loc.node} is spliced for sidecar pair ${rec.pair}, not ${sidecarName}: delete that pair, or restart the pod to stage the volume afresh`,
        permanent: true,
        recheckAfterMs: this.#d.nodeRecheckMs ?? 30_000,
        notReplicating: true,
      });
    }
    // The export is a socket in the sidecar's run directory: the kernel's NBD client
    // under the splice is its only user.
    const desired: PairSpec = { ...desiredSpec(pair, rec.device), nbdListen: '', nbdSocket: `${sidecarName}.sock`, ...(peerTls ? { peerTls } : {}) };
    // With its PV: a pair created here continues the volume's lineage (a promoted fenced
    // secondary's record gives a delta to the old primary; any other, a full copy).
    let current = await this.#ensurePair(pair, obs, control, desired, { node: loc.node, csi: true, pvName: loc.pvName });
    const paused = pair.spec.paused === true;
    if (paused) {
      if (rec.state !== 'direct') {
        await control.detachVolume(csi.splicePv);
        await this.#event(pair, { type: 'Normal', reason: 'Detached', message: `paused: the volume's I/O bypasses the sidecar; dm-era records the blocks written until it is attached again` });
      }
      if (pairToJson(current).state !== 'Paused') current = await control.pausePair(sidecarName);
      obs.pair = pairToJson(current);
      return;
    }
    if (pairToJson(current).state === 'Paused') current = await control.resumePair(sidecarName);
    if (rec.state === 'direct') {
      const v = await control.attachVolume(csi.splicePv, sidecarName);
      await this.#event(pair, { type: 'Normal', reason: 'Attached', message: `every write to ${v.dmDevice} on node ${loc.node} now passes the tap (${v.nbdDevice})` });
      current = await control.getPair(sidecarName);
    } else if (rec.state !== 'attached') {
      throw new ProblemError({
        reason: 'SpliceFallback',
        message: `the volume's I/O is on the splice's fallback path (${rec.state}) on node ${loc.node}: its sidecar attaches it again when it is back; dm-era records the writes meanwhile`,
        permanent: false,
        recheckAfterMs: this.#d.pollMs,
        notReplicating: true,
      });
    }
    obs.pair = pairToJson(current);
  }

  /** Takes every volume the sidecar pair carries out of the data path, live. */
  async #detachAll(control: SidecarControl, sidecarName: string): Promise<void> {
    const volumes = await control.listVolumes().catch((err: unknown) => {
      // A sidecar without a splice carries no volume.
      if (isRefusal(err)) return [];
      throw err;
    });
    for (const v of volumes) if (v.pair === sidecarName && v.state !== 'direct') await control.detachVolume(v.pv);
  }

  /** A sidecar pair that would report a volume in sync while the application writes around it goes. */
  async #removeUnsafePair(control: SidecarControl, sidecarName: string): Promise<boolean> {
    return control.deletePair(sidecarName).then(
      () => true,
      (err: unknown) => {
        if (!isNotFound(err)) this.#d.logger.warn('could not remove a pair its volume bypasses', { pair: sidecarName, error: (err as Error).message });
        return false;
      },
    );
  }

  /**
   * A `local` primary is replicated through the sidecar's export of its device; a pod
   * mounting the claim writes to the device directly, which the sidecar never sees.
   * Always throws.
   */
  async #refuseWrittenAround(pair: ReplicationPair, control: SidecarControl, loc: VolumeLocation): Promise<never> {
    const removed = await this.#removeUnsafePair(control, sidecarPairName(pair.metadata.namespace, pair.metadata.name));
    const message = `pod(s) ${loc.usedBy.join(', ')} use claim ${pair.spec.pvcName} directly: their writes to local volume ${loc.pvName} would not pass blockmirror's tap, so it is not replicated. Write through the pair's NBD export, or use a CSI volume of an opted-in StorageClass.`;
    const known = pair.status?.conditions?.some((c) => c.type === 'Ready' && c.reason === 'WrittenAround');
    if (!known || removed) await this.#event(pair, { type: 'Warning', reason: 'WrittenAround', message });
    throw new ProblemError({ reason: 'WrittenAround', message, permanent: false, recheckAfterMs: this.#d.pollMs, notReplicating: true });
  }

  /**
   * The pair's own peer TLS from spec.remote.tlsSecretName (tls.crt, tls.key, ca.crt):
   * this site's certificate for the link, and the remote site's CA. Undefined without.
   */
  async #peerTls(pair: ReplicationPair): Promise<PeerTls | undefined> {
    const { namespace } = pair.metadata;
    const secret = pair.spec.remote?.tlsSecretName;
    if (secret === undefined) return undefined;
    const data = await this.#d.kube.readSecret(namespace, secret).catch((err: unknown) => {
      if (!(err instanceof KubeApiError) || err.status !== 403) throw err;
      // The chart grants Secrets only where operator.peerTlsSecrets says: a fix made by
      // `helm upgrade`, which no event of the pair announces, so looked at again later
      // (no backoff: nothing here is failing, the pair waits for a grant).
      throw new ProblemError({
        reason: 'TLSSecretForbidden',
        message:
          `the operator may not read Secret ${namespace}/${secret}: the chart lets it read Secrets only in the namespaces (and names) ` +
          `listed in operator.peerTlsSecrets; add {namespace: ${namespace}, names: [${secret}]} there and run helm upgrade`,
        permanent: true,
        recheckAfterMs: this.#d.secretRecheckMs ?? 30_000,
      });
    });
    if (data === undefined) throw new ProblemError({ reason: 'TLSSecretNotFound', message: `Secret ${namespace}/${secret} not found`, permanent: false });
    const lacking = TLS_KEYS.filter((k) => (data[k]?.length ?? 0) === 0);
    if (lacking.length > 0) throw new ProblemError({ reason: 'TLSSecretInvalid', message: `Secret ${namespace}/${secret} lacks ${lacking.join(', ')}`, permanent: false });
    return { certPem: data['tls.crt']!.toString('utf8'), keyPem: data['tls.key']!.toString('utf8'), caPem: data['ca.crt']!.toString('utf8') };
  }

  /**
   * A primary whose volume opts in to the splice, on a node that cannot splice: its
   * writes would never pass the tap, so a sidecar pair would report InSync while the
   * secondary misses them. Nothing replicates (a sidecar pair left from before goes),
   * and the pair says why and what to do. Always throws.
   */
  async #refuseUnspliceable(pair: ReplicationPair, control: SidecarControl, why: { node: string; optIn: string; reason: string }): Promise<never> {
    const sidecarName = sidecarPairName(pair.metadata.namespace, pair.metadata.name);
    const removed = await control.deletePair(sidecarName).then(
      () => true,
      (err: unknown) => {
        if (!isNotFound(err)) this.#d.logger.warn('could not remove the pair from a sidecar that cannot splice', { pair: sidecarName, error: (err as Error).message });
        return false;
      },
    );
    const message =
      `node ${why.node} cannot splice: ${why.reason}. The volume opts in to the splice (${why.optIn}): the application's writes must pass ` +
      `the node's device-mapper tap, and replicating it without the tap would report a secondary in sync that misses them. Load the missing ` +
      `kernel modules on the node and restart its blockmirror sidecar, run the workload on a node whose sidecar registers ` +
      `blockmirror.io/splice-capable=true, or use a volume that does not opt in.`;
    const known = pair.status?.conditions?.some((c) => c.type === 'Ready' && c.reason === 'NodeCannotSplice');
    if (!known || removed) await this.#event(pair, { type: 'Warning', reason: 'NodeCannotSplice', message: removed ? `${message} Its pair on that sidecar was removed.` : message });
    throw new ProblemError({ reason: 'NodeCannotSplice', message, permanent: true, recheckAfterMs: this.#d.nodeRecheckMs ?? 30_000 });
  }

  async #publish(pair: ReplicationPair, obs: Observation): Promise<void> {
    const now = (this.#d.now ?? (() => new Date()))();
    const status = buildStatus(pair.status, obs, now);
    if (sameStatus(pair.status, status)) return;
    await this.#d.kube.patchPairStatus(pair.metadata.namespace, pair.metadata.name, status, pair.status);
    const unrelated = unrelatedDataEvent(pair.status, status);
    if (unrelated !== undefined) await this.#event(pair, unrelated);
    const before = pair.status?.state;
    if (before !== status.state && status.state === 'SplitBrain') {
      // One Warning per split brain, saying what each side holds and how to resolve it.
      await this.#event(pair, { type: 'Warning', reason: 'SplitBrain', message: `state ${before ?? 'none'} -> SplitBrain: ${obs.problem?.message ?? status.lastError ?? ''}` });
    } else if (before !== status.state) {
      const warn = status.state === 'Retrying' || status.state === 'Error';
      const why = status.lastError !== undefined && warn ? `: ${status.lastError}` : '';
      await this.#event(pair, {
        type: warn ? 'Warning' : 'Normal',
        reason: status.state ?? 'Pending',
        message: `state ${before ?? 'none'} -> ${status.state ?? 'Pending'}${why}`,
      });
    }
  }

  async #finalize(pair: ReplicationPair, finalizers: string[]): Promise<HandlerResult> {
    const { namespace, name } = pair.metadata;
    const sidecarName = sidecarPairName(namespace, name);
    let endpoint = pair.status?.sidecar?.endpoint;
    let located: LocateResult | undefined;
    const locate = async (): Promise<LocateResult> => (located ??= await this.#d.locate(namespace, pair.spec.pvcName));
    if (endpoint === undefined) {
      const l = await locate();
      if ('location' in l) {
        const found = await this.#d.sidecarFor(l.location.node);
        if ('found' in found) endpoint = found.found.control;
      }
    }
    if (endpoint !== undefined) {
      const control = this.#d.control(endpoint);
      try {
        // Live: the application goes on writing to the volume, through dm-era from here.
        await this.#detachAll(control, sidecarName);
        await this.#deletePair(control, sidecarName, pvNameOf(await locate()));
      } catch (err) {
        if (!isNotFound(err)) throw new TemporaryError(`removing pair ${sidecarName} from its sidecar: ${(err as Error).message}`, { cause: err });
      }
    }
    // A fenced secondary: with its pair gone nothing writes to the volume; then the holder
    // pod goes (its proxy gives the device back to the driver), then the fences.
    if (this.#d.fenced !== undefined && pair.spec.role === 'secondary') {
      const vol = pair.status?.fence === undefined ? this.#fencedVolume(pair, await locate()) : undefined;
      const fence = pair.status?.fence ?? (vol !== undefined ? { pv: vol.splicePv, volume: vol.pvName } : undefined);
      const released = await this.#d.fenced.release(pair, fence).catch((err: unknown) => {
        throw new TemporaryError(`releasing the secondary's fence: ${(err as Error).message}`, { cause: err });
      });
      if (released === 'waiting') return { requeueAfterMs: this.#d.pollMs };
    }
    await this.#event(pair, { type: 'Normal', reason: 'Deleted', message: 'pair removed from its sidecar; the volume data is kept' });
    await this.#d.kube.setFinalizers(
      namespace,
      name,
      finalizers.filter((f) => f !== FINALIZER),
      pair.metadata.resourceVersion,
    );
    return undefined;
  }

  /** Deletes a sidecar pair, keeping its volume's lineage on the PV when it is known. */
  async #deletePair(control: SidecarControl, sidecarName: string, pvName: string | undefined): Promise<void> {
    if (this.#d.lineage === undefined) await control.deletePair(sidecarName);
    else await deleteKeepingLineage(this.#d.lineage, control, sidecarName, pvName);
  }

  async #event(pair: ReplicationPair, e: EventRecord): Promise<void> {
    // Events are best effort: losing one must not fail the pass.
    await this.#d.kube.recordEvent(pair, e).catch((err: unknown) => {
      this.#d.logger.warn('event not recorded', { reason: e.reason, error: (err as Error).message });
    });
  }
}

/** What a user does about a CSI volume whose writes do not pass the tap. */
function notSplicedMessage(loc: VolumeLocation, csi: NonNullable<VolumeLocation['csi']>): string {
  const head = `volume ${loc.pvName} (driver ${csi.driver}) is not behind blockmirror's tap on node ${loc.node}, so it is not replicated`;
  if (loc.spliceOptIn === undefined) {
    return `${head}: it does not opt in. Volumes of a StorageClass with the parameter blockmirror.io/replicate: "true" (or a PersistentVolume with that volume attribute) are staged through the splice by the chart's CSI node proxy; copy the data to such a volume.`;
  }
  if (loc.usedBy.length === 0) return `${head} yet: no pod uses it; the kubelet stages it through the splice when one starts.`;
  return (
    `${head}: it opts in (${loc.spliceOptIn}) but was staged without the splice, before blockmirror's CSI node proxy wrapped driver ${csi.driver}, or the proxy does not wrap it. ` +
    `Check that the chart's csiProxy.drivers names ${csi.driver}, then restart the pod once (${loc.usedBy.join(', ')}) so the kubelet stages the volume again, through the proxy.`
  );
}

/** The sidecar pair a ReplicationPair asks for. */
export function desiredSpec(pair: ReplicationPair, volumePath: string): PairSpec {
  const { namespace, name } = pair.metadata;
  const s = pair.spec;
  const primary = s.role === 'primary';
  return {
    name: sidecarPairName(namespace, name),
    volumePath,
    role: primary ? 'ROLE_PRIMARY' : 'ROLE_SECONDARY',
    mode: s.mode === 'async' ? 'MODE_ASYNC' : 'MODE_SYNC',
    peerAddress: primary ? (s.remote?.endpoint ?? '') : '',
    peerPair: primary ? sidecarPairName(s.remote?.namespace ?? namespace, s.remote?.name ?? name) : '',
    // The application's side of a primary: an export on the node's loopback.
    nbdListen: primary ? '127.0.0.1:0' : '',
    blockSize: s.blockSize ?? DEFAULT_BLOCK_SIZE,
    writeTimeoutMs: s.sync?.writeTimeoutMs ?? 0,
    resyncBytesPerSecond: s.sync?.resyncBytesPerSecond ?? 0,
    groupIntervalMs: s.async?.groupIntervalMs ?? 0,
    maxCoordinationMs: s.async?.maxCoordinationMs ?? 0,
    maxDrainMs: s.async?.maxDrainMs ?? 0,
    consistencyGroup: s.consistencyGroup ?? '',
    remoteIdentity: s.remote?.identity ?? '',
  };
}

/** Whether the sidecar holds the peer TLS material `want` carries (none: the sidecar's own). */
function samePeerTls(current: Pair__Output, want: PairSpec): boolean {
  const have = current.spec?.peerTlsFingerprint ?? '';
  const t = want.peerTls;
  const wanted = t ? peerTlsFingerprint({ cert: t.certPem ?? '', key: t.keyPem ?? '', ca: t.caPem ?? '' }) : '';
  return have === wanted;
}

/**
 * What a live pair cannot change: its volume, mode and block size. (Its role changes
 * through DemotePair and PromotePair, keeping the dirty log and generation ids.)
 */
function sameWiring(current: Pair__Output, want: PairSpec): boolean {
  const have = current.spec;
  if (have === null || have === undefined) return false;
  return have.volumePath === want.volumePath && have.mode === want.mode && have.blockSize === want.blockSize;
}

/**
 * The spec an in-place update sends. A secondary keeps its export settings and its
 * peer (a demoted primary's export stays listening, fenced, so that a kernel NBD client
 * under the node's splice stays connected to it) and the peer it dials once promoted.
 */
function tunablesFor(desired: PairSpec, current: Pair__Output): PairSpec {
  if (roleOf(current) === 'primary') return desired;
  const have = current.spec!;
  return { ...desired, peerAddress: have.peerAddress ?? '', peerPair: have.peerPair ?? '', nbdListen: have.nbdListen ?? '', nbdSocket: have.nbdSocket ?? '' };
}

/** Whether the pair's tunables are the ones `want` asks for (a zero asks for the default). */
function sameTunables(current: Pair__Output, want: PairSpec): boolean {
  const have = current.spec!;
  const same = (a: unknown, b: unknown): boolean => b === undefined || b === '' || b === 0 || a === b;
  return (
    have.peerAddress === want.peerAddress &&
    same(have.peerPair, want.peerPair) &&
    same(have.writeTimeoutMs, want.writeTimeoutMs) &&
    have.resyncBytesPerSecond === want.resyncBytesPerSecond &&
    // 0 is a real interval (back to back), not "the default".
    have.groupIntervalMs === want.groupIntervalMs &&
    same(have.maxCoordinationMs, want.maxCoordinationMs) &&
    same(have.maxDrainMs, want.maxDrainMs) &&
    have.consistencyGroup === want.consistencyGroup &&
    (have.remoteIdentity ?? '') === (want.remoteIdentity ?? '') &&
    samePeerTls(current, want)
  );
}
