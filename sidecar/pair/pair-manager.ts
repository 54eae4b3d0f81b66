import { access, realpath, rm } from 'node:fs/promises';
import type { Logger } from 'winston';
import type { TlsFiles } from '../grpc/grpc-credentials.js';
import type { SecondaryEndpoint } from '../replication/secondary/secondary-endpoint.js';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError, PathNotAllowedError } from '../errors.js';
import { Pair, type PairStatusView, type SocketExport } from './pair.js';
import { pairSettings, validatePairSpec, type PairSpec, type PairSpecInput } from './pair-spec.js';
import { PairStore } from './pair-store.js';
import { ConsistencyGroups } from '../replication/primary/consistency-groups.js';
import { spliceHolders } from '../splice/splice-holders.js';
import type { PairVolumeOptions } from '../volume/open-pair-volume.js';
import type { VolumeLineage } from '../replication/lineage/continue-lineage.js';
import { PairMeta } from '../replication/lineage/pair-meta.js';
import { withOwnWrites } from '../replication/lineage/with-own-writes.js';
import { dirtyBlocksOnDisk } from '../bitmap/dirty-blocks-on-disk.js';
import { promotionRefusal } from './promotion-refusal.js';
import type { PathPolicy } from '../paths/path-policy.js';
import { FAILPOINTS } from './failpoints.js';
import { DEFAULT_DEMOTE_TIMEOUT_MS } from './demote-timeout.js';

export interface PairManagerOptions {
  stateDir: string;
  logger: Logger;
  /** Which volume and socket paths pairs may use: checked before any pair opens either. */
  paths: PathPolicy;
  tls?: TlsFiles;
  /** The name secondaries' certificates must carry (default: the dialled host). */
  peerServerName?: string;
  /** The remote site's CA (PEM), trusted besides the sidecar's own when dialling peers. */
  peerTrustCa?: string;
  /** The remote peer identity of pairs whose spec names none (see PairSpec.remoteIdentity). */
  remotePeerIdentity?: string;
  /** Sync pairs: foreground bytes in flight to the secondary before writes wait. */
  replicationBudgetBytes?: number;
  onProtocolError?(pair: string, reason: string): void;
  /** Pairs a node splice maps a volume through: they cannot be deleted while it does. */
  splicedPairs?(): Promise<ReadonlySet<string>>;
  /** A pair restarted (its export's connections dropped): the splice reconnects to it. */
  onRestarted?(pair: string): Promise<void>;
  /**
   * How pairs check and hold their block devices; by default the splice records under
   * `stateDir` say which devices the node splice holds.
   */
  volume?: Omit<PairVolumeOptions, 'role'>;
  /** Delays between attempts to start a pair that could not start (doubling up to maxMs). */
  restartDelay?: { initialMs: number; maxMs: number };
  /**
   * Waits until no consistency group is being applied on this sidecar; false when one
   * naming `pair` is committed but could not be applied (a promotion must not take a
   * volume between two groups).
   */
  groupsSettled?(pair: string): Promise<boolean>;
  /**
   * Test only: kill -9 this process at this point of a role change (one of FAILPOINTS),
   * so tests can show what a crash there leaves.
   */
  crashAt?: string;
}

export interface PromoteOptions {
  /** The old primary is unreachable: promote at the last point this side holds. */
  force?: boolean;
  peer?: string;
  peerPair?: string;
  nbdListen?: string;
  nbdSocket?: string;
}

const RESTART_DELAY = { initialMs: 1000, maxMs: 30_000 };

interface Entry {
  spec: PairSpec;
  pair: Pair | null;
  /** Why the pair could not start (volume missing or in use, state corrupt ...). */
  error: string;
  /** Failed attempts to start it since it last ran; the next one is on `timer`. */
  attempts: number;
  timer: NodeJS.Timeout | null;
}

/** The pairs of one sidecar: created, persisted, restored on start, stopped on exit. */
export class PairManager {
  readonly #opts: PairManagerOptions;
  readonly #store: PairStore;
  readonly #entries = new Map<string, Entry>();
  /** Per pair, the end of the last demotion asked (see demote). */
  readonly #demoting = new Map<string, Promise<void>>();
  readonly #groups: ConsistencyGroups;
  // Mutations run one at a time so the persisted list always matches memory.
  #lock: Promise<unknown> = Promise.resolve();
  #held: ReadonlySet<string> = new Set();
  #released = false;
  /** The peer port serves: secondaries starting now announce themselves (peerPortServing). */
  #peerPortServing = false;
  #closed = false;

  constructor(opts: PairManagerOptions) {
    this.#opts = opts;
    this.#store = new PairStore(opts.stateDir);
    this.#groups = new ConsistencyGroups(opts.logger);
  }

  /**
   * Restores the persisted pairs. A pair that cannot start is kept, with its error, as
   * Retrying, and started again later (see #restart): for example a device someone else
   * mounted while the sidecar was down is never opened under the mount, and the pair
   * resumes, its dirty log intact, once the device is free.
   * Pairs in `holdReplication` serve their exports but replicate only after
   * releaseReplication() (the node splice records its fallback writes first).
   */
  async start(holdReplication: ReadonlySet<string> = new Set()): Promise<void> {
    this.#held = holdReplication;
    let roleChanged = false;
    for (const spec of await this.#store.load()) {
      const entry: Entry = { spec, pair: null, error: '', attempts: 0, timer: null };
      this.#entries.set(spec.name, entry);
      try {
        entry.pair = await this.#startPair(spec, { holdReplication: holdReplication.has(spec.name), restored: true });
        // A role change committed in the pair's metadata whose pairs.json update a crash cut short.
        if (entry.pair.role !== spec.role) {
          entry.spec = { ...spec, role: entry.pair.role };
          roleChanged = true;
        }
      } catch (err) {
        this.#failed(entry, err, 'pair could not be restored');
      }
    }
    if (roleChanged) await this.#persist();
  }

  /**
   * `lineage`: what the volume's data descends from, recorded when an earlier pair over it
   * was deleted: the new pair continues it (continueLineage) instead of starting a lineage
   * its peer would refuse as unrelated. Only seeds the pair's metadata; never persisted
   * in pairs.json (a restart must never take a pair back to it).
   */
  create(input: PairSpecInput, opts: { lineage?: VolumeLineage } = {}): Promise<PairStatusView> {
    return this.#serialized(async () => {
      const given = validatePairSpec(input);
      if (given.role === 'secondary' && (given.nbdListen || given.nbdSocket)) {
        throw new InvalidArgumentError("a secondary's volume is never exposed over NBD: drop --nbd-listen/--nbd-socket (PromotePair takes them)");
      }
      if (this.#entries.has(given.name)) throw new AlreadyExistsError(`pair ${given.name} already exists`);
      // Both paths judged before anything is opened, made or unlinked.
      const real = await this.#opts.paths.volume(given.volumePath);
      const spec = await this.#placeSocket(given);
      for (const e of this.#entries.values()) {
        if ((await realpath(e.spec.volumePath).catch(() => e.spec.volumePath)) === real) {
          throw new AlreadyExistsError(`volume ${spec.volumePath} already belongs to pair ${e.spec.name}`);
        }
      }
      // A refused pair leaves nothing behind: the next pair of that name would take over
      // its dirty log and generation (and a dirty log sized for another volume would
      // refuse that pair for good). Only a directory this attempt created is removed.
      const stateDir = Pair.stateDirOf(this.#opts.stateDir, spec.name);
      const fresh = await access(stateDir).then(
        () => false,
        () => true,
      );
      let pair: Pair;
      try {
        pair = await this.#startPair(spec, opts.lineage ? { lineage: opts.lineage } : {});
      } catch (err) {
        if (fresh) await rm(stateDir, { recursive: true, force: true });
        throw err;
      }
      this.#entries.set(spec.name, { spec, pair, error: '', attempts: 0, timer: null });
      try {
        await this.#persist();
      } catch (err) {
        this.#entries.delete(spec.name);
        await pair.destroy();
        throw err;
      }
      this.#opts.logger.info('pair created', { pair: spec.name, role: spec.role, mode: spec.mode, generation: pair.meta.current, ...(opts.lineage ? { continues: opts.lineage.generation } : {}) });
      return pair.status();
    });
  }

  /**
   * New tunables for a live pair. It is closed (flushed, dirty log persisted) and started
   * again from its state dir with the new spec, as after a sidecar restart: its dirty set
   * and generation survive, so nothing is forgotten and the secondary still accepts it.
   */
  update(input: PairSpecInput): Promise<PairStatusView> {
    return this.#serialized(async () => {
      const e = this.#entry(input.name ?? '');
      const given = validatePairSpec({ ...input, paused: e.spec.paused });
      for (const field of ['volumePath', 'role', 'mode', 'blockSize'] as const) {
        if (given[field] !== e.spec[field]) {
          throw new FailedPreconditionError(`pair ${given.name}: ${field} cannot change on a live pair (${String(e.spec[field])} -> ${String(given[field])}); delete and recreate it`);
        }
      }
      // Refused while the pair still runs: a path refused after its close would leave it down.
      await this.#opts.paths.volume(given.volumePath);
      const spec = await this.#placeSocket(given);
      // Keep a TCP export where clients know it: port 0 would pick a new one.
      const bound = e.pair?.status().nbdAddress;
      if (spec.nbdListen !== undefined && /:0$/.test(spec.nbdListen) && bound) spec.nbdListen = bound;
      await e.pair?.close();
      e.pair = null;
      e.spec = spec;
      await this.#persist();
      try {
        e.pair = await this.#startPair(spec, { restored: true });
        e.error = '';
        e.attempts = 0;
      } catch (err) {
        this.#failed(e, err, 'updated pair could not start');
        throw err;
      }
      this.#opts.logger.info('pair updated', { pair: spec.name });
      await this.#opts.onRestarted?.(spec.name);
      return e.pair.status();
    });
  }

  releaseReplication(): void {
    this.#released = true;
    for (const e of this.#entries.values()) e.pair?.startReplication();
  }

  /** A primary's Unix socket export, for the node splice. */
  exportOf(name: string): SocketExport {
    const e = this.#entry(name);
    if (e.pair === null) throw new FailedPreconditionError(`pair ${name} is not running: ${e.error}`);
    const ex = e.pair.socketExport;
    if (ex === null) throw new FailedPreconditionError(`pair ${name} has no NBD socket export (a primary created with --nbd-socket)`);
    return ex;
  }

  recordUntrackedWrites(name: string, ranges: ReadonlyArray<readonly [number, number]>): Promise<void> {
    const e = this.#entry(name);
    if (e.pair === null) return Promise.reject(new FailedPreconditionError(`pair ${name} is not running: ${e.error}`));
    return e.pair.recordUntrackedWrites(ranges);
  }

  get(name: string): PairStatusView {
    return this.#view(this.#entry(name));
  }

  /** The receiving end of a secondary pair, for the peer protocol. */
  secondaryEndpoint(name: string): SecondaryEndpoint | undefined {
    return this.#entries.get(name)?.pair?.endpoint ?? undefined;
  }

  /**
   * The peer identity a pair admits (its own, else the sidecar's default); undefined for
   * a pair not held here, or one that admits any peer identity.
   */
  remoteIdentity(name: string): string | undefined {
    const e = this.#entries.get(name);
    return e === undefined ? undefined : (e.spec.remoteIdentity ?? this.#opts.remotePeerIdentity);
  }

  /** The CA bundles of the secondary pairs' own peer TLS: their primaries' sites, trusted by the peer port. */
  peerCas(): string[] {
    return [...this.#entries.values()].flatMap((e) => (e.spec.role === 'secondary' && e.spec.peerTls ? [e.spec.peerTls.ca] : []));
  }

  /** The names of the secondary pairs defined here, running or not (they live on this node). */
  secondaryNames(): string[] {
    return [...this.#entries.values()].flatMap((e) => (e.spec.role === 'secondary' ? [e.spec.name] : []));
  }

  /**
   * Every pair defined here: a pair of either role answers handshakes for its name (a
   * primary says what generation it holds, so that two primaries learn which is stale).
   */
  pairNames(): string[] {
    return [...this.#entries.keys()];
  }

  /** PeerReady: the primary pair `name` dials its secondary now; false if it is no primary with a peer. */
  peerReady(name: string): boolean {
    return this.#entries.get(name)?.pair?.peerReady() ?? false;
  }

  /**
   * The peer port serves from now on: every secondary with a peer tells its primary it is
   * ready, now and whenever one starts later (see Pair.announceReady). Before, a primary
   * called back would find the port closed.
   */
  peerPortServing(): void {
    this.#peerPortServing = true;
    for (const e of this.#entries.values()) e.pair?.announceReady();
  }

  /** What answers a peer's handshake for `name`: the running pair, of either role. */
  handshakeResponder(name: string): Pair | undefined {
    return this.#entries.get(name)?.pair ?? undefined;
  }

  /**
   * DemotePair (control.proto): fence the export, ship everything and tell the secondary
   * (unless `force`), commit the role in the pair's metadata, restart as a secondary. The
   * wait for shipping runs outside the manager's lock: other pairs' calls go on.
   */
  demote(name: string, opts: { force?: boolean; timeoutMs?: number } = {}): Promise<PairStatusView> {
    // One demotion of a pair at a time, each after the one before has ended. Two at once
    // (an operator retrying after a restart while its first call still waits) interleave:
    // the first one's timeout unfences the export while the second ships, tells the
    // secondary this side demoted and commits, so writes taken in between (async: not yet
    // shipped) would be overwritten by the promoted side with nobody told.
    const before = this.#demoting.get(name);
    const mine = (before ?? Promise.resolve()).then(
      () => this.#demote(name, opts),
      () => this.#demote(name, opts),
    );
    const ended = mine.then(
      () => undefined,
      () => undefined,
    );
    this.#demoting.set(name, ended);
    void ended.then(() => {
      if (this.#demoting.get(name) === ended) this.#demoting.delete(name);
    });
    return mine;
  }

  async #demote(name: string, opts: { force?: boolean; timeoutMs?: number }): Promise<PairStatusView> {
    const e = this.#entry(name);
    const pair = this.#running(e);
    if (pair.role === 'secondary') return this.#view(e);
    if (!opts.force && e.spec.paused) throw new FailedPreconditionError(`pair ${name} is paused: nothing is shipped while it is; resume it first, or demote with force`);
    // From here no write is accepted; those already accepted finish and are tracked.
    pair.fenceWrites();
    if (!opts.force) {
      const timeoutMs = opts.timeoutMs || DEFAULT_DEMOTE_TIMEOUT_MS;
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(new Error(`not shipped within ${timeoutMs} ms`)), timeoutMs);
      try {
        await pair.shipEverything(abort.signal);
      } catch (err) {
        // It learnt meanwhile that it was stale, and demoted itself.
        if (pair.meta.role === 'secondary') return this.#view(e);
        // Nothing committed: the pair stays a primary and takes writes again.
        pair.unfence();
        const st = pair.status();
        const why = st.lastError || (err as Error).message;
        throw new FailedPreconditionError(
          `pair ${name} not demoted: ${st.outOfSyncBytes} bytes out of sync were not shipped and confirmed in time (${why}); it stays the primary and takes writes again. Demote with force to keep them in its dirty log instead (promoting the secondary then discards them).`,
        );
      } finally {
        clearTimeout(timer);
      }
    }
    return this.#serialized(async () => {
      if (this.#entries.get(name) !== e || e.pair !== pair) throw new FailedPreconditionError(`pair ${name} changed while it was being demoted; demote it again`);
      this.#failpoint('demote:before-commit');
      // The commit point: from here on the pair is a secondary, across any restart. (The
      // secondary was told first: a crash between the two leaves a primary that restarts
      // unfenced while its secondary believes it demoted — if both then write, the next
      // handshake shows a split brain; nothing is overwritten unseen.)
      await pair.meta.demote();
      this.#failpoint('demote:after-commit');
      this.#opts.logger.info('pair demoted', { pair: name, force: opts.force === true, generation: pair.meta.current });
      await this.#restartInRole(e);
      return this.#view(e);
    });
  }

  /**
   * PromotePair (control.proto): checks that this side holds a complete image at a point
   * in time that its primary is not still writing to (or `force`), records the new
   * settings, commits the role with a new current generation, restarts as a primary.
   */
  promote(name: string, opts: PromoteOptions = {}): Promise<PairStatusView> {
    return this.#serialized(async () => {
      const e = this.#entry(name);
      const pair = this.#running(e);
      if (pair.role === 'primary') return this.#view(e);
      const m = pair.meta.data;
      const refusal = promotionRefusal({ name, generation: m.current, consistent: !m.inconsistent, primaryConnected: pair.primaryConnected, primaryDemoted: m.primaryDemoted }, opts.force === true);
      if (refusal !== undefined) throw new FailedPreconditionError(refusal);
      // A volume between two consistency groups is at no point in time.
      if (this.#opts.groupsSettled !== undefined && !(await this.#opts.groupsSettled(name))) {
        throw new FailedPreconditionError(`pair ${name}: a consistency group committed for it could not be applied yet (${pair.status().lastError || 'see the sidecar log'}); it can be promoted once the group is applied`);
      }
      // Groups staged for a session that is gone were never committed.
      await pair.endpoint?.journal.discardAll();
      const before = e.spec;
      const spec = await this.#placeSocket(
        validatePairSpec({
          ...e.spec,
          role: 'primary',
          ...(opts.peer ? { peer: opts.peer } : {}),
          ...(opts.peerPair ? { peerPair: opts.peerPair } : {}),
          ...(opts.nbdListen ? { nbdListen: opts.nbdListen } : {}),
          ...(opts.nbdSocket ? { nbdSocket: opts.nbdSocket } : {}),
        }),
      );
      // Settings first, role second: a crash between the two leaves pairs.json saying
      // primary and the metadata secondary, and the pair restarts as the secondary it is.
      e.spec = spec;
      try {
        await this.#persist();
        this.#failpoint('promote:before-commit');
        // The commit point: a new current generation, and this side's writes tracked.
        await pair.meta.promote({ nowMs: Date.now(), pointMs: pair.lastPointTimeMs });
      } catch (err) {
        e.spec = before;
        await this.#persist().catch(() => undefined);
        throw err;
      }
      this.#failpoint('promote:after-commit');
      this.#opts.logger.info('pair promoted', { pair: name, force: opts.force === true, generation: pair.meta.current, from: m.current });
      await this.#restartInRole(e);
      return this.#view(e);
    });
  }

  /**
   * DiscardMyData (control.proto): the next primary's data overwrites this side's. A
   * primary is fenced and demoted at once (nothing is shipped: its data is what loses).
   */
  discardMyData(name: string): Promise<PairStatusView> {
    return this.#serialized(async () => {
      const e = this.#entry(name);
      const pair = this.#running(e);
      this.#opts.logger.warn('discarding this side\'s data: the peer overwrites it at the next session', { pair: name, role: pair.role, generation: pair.meta.current });
      if (pair.role === 'secondary') {
        await pair.meta.setDiscardMyData();
        return this.#view(e);
      }
      pair.fenceWrites();
      await pair.meta.demote({ discardMyData: true });
      await this.#restartInRole(e);
      return this.#view(e);
    });
  }

  /** A pair that demoted itself (its metadata says so): restart it as a secondary. */
  #selfDemoted(pair: Pair): void {
    void this.#serialized(async () => {
      const e = this.#entries.get(pair.spec.name);
      if (e === undefined || e.pair !== pair) return;
      await this.#restartInRole(e);
    }).catch((err: Error) => this.#opts.logger.error('a pair that demoted itself could not restart as a secondary', { pair: pair.spec.name, error: err.message }));
  }

  /** Stops a pair whose role was committed in its metadata and starts it in that role. */
  async #restartInRole(e: Entry): Promise<void> {
    const pair = e.pair!;
    // Keep a TCP export where clients know it: port 0 would pick a new one.
    const bound = pair.status().nbdAddress;
    const spec = { ...e.spec, ...(e.spec.nbdListen !== undefined && /:0$/.test(e.spec.nbdListen) && bound ? { nbdListen: bound } : {}) };
    await pair.close();
    e.pair = null;
    try {
      e.pair = await this.#startPair(spec, { restored: true });
      e.error = '';
      e.attempts = 0;
    } catch (err) {
      this.#failed(e, err, 'pair could not start in its new role');
      throw err;
    } finally {
      // The committed role, whether or not the pair could start in it.
      e.spec = { ...spec, role: e.pair?.role ?? pair.meta.role };
      await this.#persist();
    }
    this.#opts.logger.info('pair restarted in its new role', { pair: e.spec.name, role: e.pair.role, generation: e.pair.meta.current });
    await this.#opts.onRestarted?.(e.spec.name);
  }

  #running(e: Entry): Pair {
    if (e.pair === null) throw new FailedPreconditionError(`pair ${e.spec.name} is not running: ${e.error}`);
    return e.pair;
  }

  #failpoint(point: (typeof FAILPOINTS)[number]): void {
    if (this.#opts.crashAt !== point) return;
    this.#opts.logger.error('failpoint reached: killing this process', { point });
    process.kill(process.pid, 'SIGKILL');
  }

  secondaryEndpoints(): SecondaryEndpoint[] {
    return [...this.#entries.values()].flatMap((e) => (e.pair?.endpoint ? [e.pair.endpoint] : []));
  }

  list(): PairStatusView[] {
    return [...this.#entries.values()].map((e) => this.#view(e)).sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * Stops the pair and forgets its state; answers the lineage its volume holds (read once
   * the pair has stopped, so no resync can start after it was read), for the next pair
   * over the volume to continue: null without a complete image or readable metadata.
   */
  delete(name: string): Promise<VolumeLineage | null> {
    return this.#serialized(async () => {
      const e = this.#entry(name);
      if ((await this.#opts.splicedPairs?.())?.has(name)) throw new FailedPreconditionError(`pair ${name} carries a spliced volume's I/O: detach the volume first`);
      this.#entries.delete(name);
      if (e.timer !== null) clearTimeout(e.timer);
      await this.#persist();
      const stateDir = Pair.stateDirOf(this.#opts.stateDir, name);
      let lineage: VolumeLineage | null = null;
      if (e.pair !== null) {
        await e.pair.close();
        lineage = e.pair.lineage;
      } else {
        const meta = await PairMeta.load(stateDir, e.spec.role).catch(() => null);
        if (meta !== null && meta.origin !== 'none') lineage = await this.#lineageAtRest(meta, Pair.dirtyLogOf(stateDir));
      }
      // A later pair of that name must not take over this one's dirty log and generation
      // (a new pair continues the lineage only when it is given it).
      await rm(stateDir, { recursive: true, force: true });
      this.#opts.logger.info('pair deleted', { pair: name, ...(lineage ? { lineage: `${lineage.role} ${lineage.generation}${lineage.consistent ? '' : ' (mid-resync)'}` } : {}) });
      return lineage;
    });
  }

  /**
   * The lineage of a pair that is not running (its volume gone, say): a secondary's own
   * writes counted from its dirty log on disk (see withOwnWrites). A log that cannot tell
   * counts as holding some, as the pair's own start would count a lost one all dirty;
   * a secondary of the release before dirty logs never wrote as a primary.
   */
  async #lineageAtRest(meta: PairMeta, logPath: string): Promise<VolumeLineage | null> {
    const l = meta.lineage;
    if (l === null || l.role === 'primary') return l;
    const own = (await dirtyBlocksOnDisk(logPath)) ?? (meta.origin === 'legacy' ? 0 : 1);
    return withOwnWrites(l, own);
  }

  setPaused(name: string, paused: boolean): Promise<PairStatusView> {
    return this.#serialized(async () => {
      const e = this.#entry(name);
      e.spec = { ...e.spec, paused };
      e.pair?.setPaused(paused);
      await this.#persist();
      this.#opts.logger.info(paused ? 'pair paused' : 'pair resumed', { pair: name });
      return this.#view(e);
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const e of this.#entries.values()) if (e.timer !== null) clearTimeout(e.timer);
    await this.#lock.catch(() => undefined);
    await Promise.all([...this.#entries.values()].map((e) => e.pair?.close()));
  }

  #entry(name: string): Entry {
    const e = this.#entries.get(name);
    if (!e) throw new NotFoundError(`pair ${name} not found`);
    return e;
  }

  #view(e: Entry): PairStatusView {
    if (e.pair) return e.pair.status();
    return {
      name: e.spec.name,
      role: e.spec.role,
      mode: e.spec.mode,
      state: e.spec.paused ? 'Paused' : 'Retrying',
      volumePath: e.spec.volumePath,
      volumeBytes: 0,
      blockSize: e.spec.blockSize,
      outOfSyncBytes: 0,
      dirtyBlocks: 0,
      resyncProgressPercent: 0,
      lastInSyncTimeMs: 0,
      retries: e.attempts,
      lastError: e.error,
      bytesWritten: 0,
      bytesRead: 0,
      writeOps: 0,
      readOps: 0,
      nbdConnections: 0,
      nbdAddress: '',
      nbdSocket: '',
      peer: e.spec.peer ?? '',
      peerPair: e.spec.peerPair ?? '',
      settings: pairSettings(e.spec),
      bytesOnWire: 0,
      bytesReplicated: 0,
      consistencyGroup: e.spec.consistencyGroup ?? '',
      lastConsistencyPointTimeMs: 0,
      rpoSeconds: 0,
      groupsFormed: 0,
      groupsFailed: 0,
      groupsDeferred: 0,
      replicationErrors: 0,
      coordinationHoldP50Ms: 0,
      coordinationHoldP99Ms: 0,
      coordinationHoldMaxMs: 0,
      generation: '',
      bitmapGeneration: '',
      historyGenerations: [],
      peerGeneration: '',
      fenced: false,
      consistent: false,
      primaryDemoted: false,
      discardMyData: false,
      promotedTimeMs: 0,
      promotedPointTimeMs: 0,
      peerVerdict: '',
    };
  }

  /**
   * The spec with its NBD socket where the path policy puts it: a bare name (what the
   * operator sends: it does not know the node's paths) in the sidecar's run directory,
   * which only root can enter (the kernel's NBD client under the splice is the export's
   * one user); an absolute path only in that directory, its symlinks resolved.
   */
  async #placeSocket(spec: PairSpec): Promise<PairSpec> {
    if (spec.nbdSocket === undefined) return spec;
    return { ...spec, nbdSocket: await this.#opts.paths.socket(spec.nbdSocket) };
  }

  /**
   * Every start of a pair, restored ones included: its paths are judged again (pairs.json
   * may predate the policy, or the sidecar's flags changed), so a pair whose volume is no
   * longer allowed is never opened; it is kept, Retrying with the refusal as its error.
   */
  async #startPair(spec: PairSpec, opts: Parameters<typeof Pair.start>[2] = {}): Promise<Pair> {
    const volumeAt = await this.#opts.paths.volume(spec.volumePath);
    if (spec.nbdSocket !== undefined && (await this.#opts.paths.socket(spec.nbdSocket)) !== spec.nbdSocket) {
      // pairs.json names it as placed when it was made: landing elsewhere now, a symlink changed.
      throw new PathNotAllowedError(`NBD socket ${spec.nbdSocket} no longer resolves to itself (a symlink on its path changed); give the pair its socket again (UpdatePair) in the run directory`, { path: spec.nbdSocket, resolved: '' });
    }
    const pair = await Pair.start(spec, this.#ctx(), { ...opts, volumeAt });
    // The caller makes it the entry's pair before any network event runs, so the primary
    // calling back finds it.
    if (this.#peerPortServing) pair.announceReady();
    return pair;
  }

  /** A pair that could not start: keep why, and try again later. */
  #failed(e: Entry, err: unknown, what: string): void {
    const error = (err as Error).message;
    // Logged when the reason changes, not at every attempt.
    if (error !== e.error) this.#opts.logger.error(what, { pair: e.spec.name, error, code: (err as { code?: string }).code });
    e.error = error;
    e.attempts++;
    const d = this.#opts.restartDelay ?? RESTART_DELAY;
    const delay = Math.min(d.maxMs, d.initialMs * 2 ** Math.min(e.attempts - 1, 20));
    if (e.timer !== null) clearTimeout(e.timer);
    e.timer = setTimeout(() => void this.#serialized(() => this.#restart(e)), delay);
    e.timer.unref();
  }

  /** Another attempt to start a pair that is persisted but not running. */
  async #restart(e: Entry): Promise<void> {
    e.timer = null;
    if (this.#closed || this.#entries.get(e.spec.name) !== e || e.pair !== null) return;
    const hold = !this.#released && this.#held.has(e.spec.name);
    try {
      e.pair = await this.#startPair(e.spec, { holdReplication: hold, restored: true });
    } catch (err) {
      this.#failed(e, err, 'pair could not start');
      return;
    }
    this.#opts.logger.info('pair started after earlier failures', { pair: e.spec.name, attempts: e.attempts, lastError: e.error });
    e.error = '';
    e.attempts = 0;
    await this.#opts.onRestarted?.(e.spec.name).catch((err: Error) => this.#opts.logger.warn('splice could not reconnect to the restarted pair', { pair: e.spec.name, error: err.message }));
  }

  #persist(): Promise<void> {
    return this.#store.save([...this.#entries.values()].map((e) => e.spec));
  }

  #ctx() {
    return {
      stateDir: this.#opts.stateDir,
      logger: this.#opts.logger,
      ...(this.#opts.tls ? { tls: this.#opts.tls } : {}),
      ...(this.#opts.peerServerName ? { peerServerName: this.#opts.peerServerName } : {}),
      ...(this.#opts.peerTrustCa ? { peerTrustCa: this.#opts.peerTrustCa } : {}),
      ...(this.#opts.remotePeerIdentity ? { remotePeerIdentity: this.#opts.remotePeerIdentity } : {}),
      ...(this.#opts.replicationBudgetBytes ? { replicationBudgetBytes: this.#opts.replicationBudgetBytes } : {}),
      onProtocolError: this.#opts.onProtocolError,
      groups: this.#groups,
      volume: { spliceHolders: spliceHolders(this.#opts.stateDir), ...this.#opts.volume },
      onSelfDemoted: (pair: Pair) => this.#selfDemoted(pair),
    };
  }

  #serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => undefined);
    return run;
  }
}
