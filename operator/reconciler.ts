import { createHash } from 'node:crypto';
import type { Logger } from 'winston';
import type { PairSpec } from '../proto/gen/blockmirror/control/v1/PairSpec.js';
import type { Pair__Output } from '../proto/gen/blockmirror/control/v1/Pair.js';
import { pairToJson } from '../sidecar/cli/format-pair.js';
import { BlockmirrorError } from '../sidecar/errors.js';
import { peerTlsFingerprint } from '../sidecar/pair/pair-spec.js';
import type { PeerTls } from '../proto/gen/blockmirror/control/v1/PeerTls.js';
import { DEFAULT_BLOCK_SIZE, FINALIZER, type ReplicationPair, type ReplicationPairStatus } from './api/replication-pair.js';
import type { SidecarLookup } from './discovery/sidecar-directory.js';
import type { LocateResult } from './discovery/volume-locator.js';
import type { EventRecord } from './kube/kube-client.js';
import { buildStatus, sameStatus, type Observation, type Problem } from './status/pair-status.js';
import type { HandlerResult } from './work-queue.js';

/** What the reconciler needs from a sidecar's control API. */
export interface SidecarControl {
  getPair(name: string): Promise<Pair__Output>;
  createPair(spec: PairSpec): Promise<Pair__Output>;
  updatePair(spec: PairSpec): Promise<Pair__Output>;
  deletePair(name: string): Promise<void>;
  pausePair(name: string): Promise<Pair__Output>;
  resumePair(name: string): Promise<Pair__Output>;
}

export interface ReconcilerDeps {
  /** The informer's cache. */
  cached(namespace: string, name: string): ReplicationPair | undefined;
  kube: {
    patchPairStatus(namespace: string, name: string, status: ReplicationPairStatus, previous?: ReplicationPairStatus): Promise<void>;
    setFinalizers(namespace: string, name: string, finalizers: string[], resourceVersion: string | undefined): Promise<void>;
    recordEvent(pair: ReplicationPair, event: EventRecord): Promise<void>;
    /** A Secret's data, decoded; undefined when it does not exist. */
    readSecret(namespace: string, name: string): Promise<Record<string, Buffer> | undefined>;
  };
  locate(namespace: string, pvcName: string): Promise<LocateResult>;
  sidecarFor(node: string): Promise<SidecarLookup>;
  control(endpoint: string): SidecarControl;
  logger: Logger;
  /** How often a healthy pair's status is refreshed from its sidecar. */
  pollMs: number;
  /** How often a pair refused for its node (NodeCannotSplice) looks at the node again. Default 30 s. */
  nodeRecheckMs?: number;
  now?: () => Date;
}

/** A reconcile that must be retried with backoff (the queue counts the failures). */
export class TemporaryError extends BlockmirrorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('UNAVAILABLE', message, options);
    this.name = 'TemporaryError';
  }
}

const TLS_KEYS = ['tls.crt', 'tls.key', 'ca.crt'];

/**
 * The pair's name on its sidecar: unique per cluster, and derivable by the other site
 * from `remote.namespace`/`remote.name`. Sidecar names stop at 63 characters, so a
 * longer one keeps a prefix and a hash of the whole.
 */
export function sidecarPairName(namespace: string, name: string): string {
  const full = `${namespace}.${name}`;
  if (full.length <= 63) return full;
  const hash = createHash('sha256').update(full).digest('hex').slice(0, 12);
  return `${full.slice(0, 50).replace(/[-.]+$/, '')}-${hash}`;
}

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
      if (finalizers.includes(FINALIZER)) await this.#finalize(pair, finalizers);
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
    } catch (err) {
      if (err instanceof ProblemError) {
        obs.problem = err.problem;
        if (!err.problem.permanent) retry = new TemporaryError(err.problem.message, { cause: err });
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
    if (obs.problem?.permanent) return obs.problem.recheckAfterMs !== undefined ? { requeueAfterMs: obs.problem.recheckAfterMs } : undefined;
    return { requeueAfterMs: this.#d.pollMs };
  }

  async #converge(pair: ReplicationPair, obs: Observation): Promise<void> {
    const { namespace, name } = pair.metadata;
    const located = await this.#d.locate(namespace, pair.spec.pvcName);
    if ('failure' in located) throw new ProblemError(located.failure);
    const { node, path } = located.location;
    const found = await this.#d.sidecarFor(node);
    if ('missing' in found) throw new ProblemError({ reason: 'SidecarNotFound', message: found.missing, permanent: false });
    const endpoint = found.found.control;
    obs.sidecar = { node, endpoint };

    const peerTls = await this.#peerTls(pair);

    // The pair moved to another node (the volume was re-attached): forget the old one.
    const previous = pair.status?.sidecar;
    const sidecarName = sidecarPairName(namespace, name);
    if (previous !== undefined && previous.endpoint !== endpoint) {
      await this.#d.control(previous.endpoint).deletePair(sidecarName).catch((err: unknown) => {
        this.#d.logger.warn('could not remove the pair from its previous sidecar', { pair: sidecarName, sidecar: previous.endpoint, error: (err as Error).message });
      });
    }

    const control = this.#d.control(endpoint);
    const splice = found.found.splice;
    if (pair.spec.role === 'primary' && located.location.spliceOptIn !== undefined && !splice.capable) {
      await this.#refuseUnspliceable(pair, control, { node, optIn: located.location.spliceOptIn, reason: splice.reason });
    }
    const desired = { ...desiredSpec(pair, path), ...(peerTls ? { peerTls } : {}) };
    let current = await control.getPair(sidecarName).catch((err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    if (current !== undefined && !sameWiring(current, desired)) {
      this.#d.logger.debug('sidecar pair wired differently from the spec', { pair: sidecarName, have: current.spec, want: desired });
      // Volume, role, mode or block size: the sidecar cannot change these on a live pair.
      await control.deletePair(sidecarName);
      await this.#event(pair, { type: 'Normal', reason: 'Reconfigured', message: `pair recreated on node ${node} with the new volume, role, mode or block size; a full resync follows` });
      current = undefined;
    } else if (current !== undefined && !sameTunables(current, desired)) {
      // Everything else changes in place: the pair keeps its dirty log and generation.
      current = await control.updatePair(desired);
      await this.#event(pair, { type: 'Normal', reason: 'Updated', message: 'pair settings updated on its sidecar' });
    }
    if (current === undefined) {
      try {
        current = await control.createPair(desired);
      } catch (err) {
        const code = (err as { grpcCode?: number }).grpcCode;
        // INVALID_ARGUMENT / FAILED_PRECONDITION: the sidecar refuses this spec for good.
        if (code === 3 || code === 9) throw new ProblemError({ reason: 'SidecarRejected', message: (err as Error).message, permanent: true });
        throw err;
      }
      await this.#event(pair, { type: 'Normal', reason: 'Created', message: `pair created on the sidecar of node ${node} (${path})` });
    }
    const state = pairToJson(current).state;
    if (pair.spec.paused === true && state !== 'Paused') {
      current = await control.pausePair(sidecarName);
    } else if (pair.spec.paused !== true && state === 'Paused') {
      current = await control.resumePair(sidecarName);
    }
    obs.pair = pairToJson(current);
  }

  /**
   * A primary whose volume opts in to the splice, on a node that cannot splice: its
   * writes would never pass the tap, so a sidecar pair would report InSync while the
   * secondary misses them. Nothing replicates (a sidecar pair left from before goes),
   * and the pair says why and what to do. Always throws.
   */
  /**
   * The pair's own peer TLS from spec.remote.tlsSecretName (tls.crt, tls.key, ca.crt):
   * this site's certificate for the link, and the remote site's CA. Undefined without.
   */
  async #peerTls(pair: ReplicationPair): Promise<PeerTls | undefined> {
    const { namespace } = pair.metadata;
    const secret = pair.spec.remote?.tlsSecretName;
    if (secret === undefined) return undefined;
    const data = await this.#d.kube.readSecret(namespace, secret);
    if (data === undefined) throw new ProblemError({ reason: 'TLSSecretNotFound', message: `Secret ${namespace}/${secret} not found`, permanent: false });
    const lacking = TLS_KEYS.filter((k) => (data[k]?.length ?? 0) === 0);
    if (lacking.length > 0) throw new ProblemError({ reason: 'TLSSecretInvalid', message: `Secret ${namespace}/${secret} lacks ${lacking.join(', ')}`, permanent: false });
    return { certPem: data['tls.crt']!.toString('utf8'), keyPem: data['tls.key']!.toString('utf8'), caPem: data['ca.crt']!.toString('utf8') };
  }

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
    const before = pair.status?.state;
    if (before !== status.state) {
      const warn = status.state === 'Retrying' || status.state === 'Error';
      const why = status.lastError !== undefined && warn ? `: ${status.lastError}` : '';
      await this.#event(pair, {
        type: warn ? 'Warning' : 'Normal',
        reason: status.state ?? 'Pending',
        message: `state ${before ?? 'none'} -> ${status.state ?? 'Pending'}${why}`,
      });
    }
  }

  async #finalize(pair: ReplicationPair, finalizers: string[]): Promise<void> {
    const { namespace, name } = pair.metadata;
    const sidecarName = sidecarPairName(namespace, name);
    let endpoint = pair.status?.sidecar?.endpoint;
    if (endpoint === undefined) {
      const located = await this.#d.locate(namespace, pair.spec.pvcName);
      if ('location' in located) {
        const found = await this.#d.sidecarFor(located.location.node);
        if ('found' in found) endpoint = found.found.control;
      }
    }
    if (endpoint !== undefined) {
      try {
        await this.#d.control(endpoint).deletePair(sidecarName);
      } catch (err) {
        if (!isNotFound(err)) throw new TemporaryError(`removing pair ${sidecarName} from its sidecar: ${(err as Error).message}`, { cause: err });
      }
    }
    await this.#event(pair, { type: 'Normal', reason: 'Deleted', message: 'pair removed from its sidecar; the volume data is kept' });
    await this.#d.kube.setFinalizers(
      namespace,
      name,
      finalizers.filter((f) => f !== FINALIZER),
      pair.metadata.resourceVersion,
    );
  }

  async #event(pair: ReplicationPair, e: EventRecord): Promise<void> {
    // Events are best effort: losing one must not fail the pass.
    await this.#d.kube.recordEvent(pair, e).catch((err: unknown) => {
      this.#d.logger.warn('event not recorded', { reason: e.reason, error: (err as Error).message });
    });
  }
}

class ProblemError extends Error {
  readonly problem: Problem;
  constructor(problem: Problem) {
    super(problem.message);
    this.name = 'ProblemError';
    this.problem = problem;
  }
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
  };
}

/** Whether the sidecar holds the peer TLS material `want` carries (none: the sidecar's own). */
function samePeerTls(current: Pair__Output, want: PairSpec): boolean {
  const have = current.spec?.peerTlsFingerprint ?? '';
  const t = want.peerTls;
  const wanted = t ? peerTlsFingerprint({ cert: t.certPem ?? '', key: t.keyPem ?? '', ca: t.caPem ?? '' }) : '';
  return have === wanted;
}

/** What a live pair cannot change: its volume, role, mode and block size. */
function sameWiring(current: Pair__Output, want: PairSpec): boolean {
  const have = current.spec;
  if (have === null || have === undefined) return false;
  return have.volumePath === want.volumePath && have.role === want.role && have.mode === want.mode && have.blockSize === want.blockSize;
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
    samePeerTls(current, want)
  );
}
