import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'winston';
import type { HandshakeRequest__Output } from '../../proto/gen/blockmirror/replication/v1/HandshakeRequest.js';
import type { HandshakeResponse__Output } from '../../proto/gen/blockmirror/replication/v1/HandshakeResponse.js';
import { DirtyTracker } from '../bitmap/dirty-tracker.js';
import { FailedPreconditionError, GeometryMismatchError } from '../errors.js';
import { makeDirDurable } from '../fs/make-dir-durable.js';
import { readTlsMaterial, type TlsFiles, type TlsMaterial } from '../grpc/grpc-credentials.js';
import { NbdServer } from '../nbd/nbd-server.js';
import { GroupJournal } from '../replication/secondary/group-journal.js';
import { PairMeta } from '../replication/lineage/pair-meta.js';
import type { VolumeLineage } from '../replication/lineage/continue-lineage.js';
import { withOwnWrites } from '../replication/lineage/with-own-writes.js';
import { decideResync } from '../replication/lineage/decide-resync.js';
import { validGenerations, type GenerationIds } from '../replication/lineage/generation-ids.js';
import { handshakeVerdict } from '../replication/lineage/handshake-verdict.js';
import { SecondaryEndpoint, type PeerVerdict } from '../replication/secondary/secondary-endpoint.js';
import type { ConsistencyGroups } from '../replication/primary/consistency-groups.js';
import { createReplicator } from '../replication/primary/create-replicator.js';
import { announceReady } from '../replication/secondary/announce-ready.js';
import type { Replicator, ReplicatorStatus } from '../replication/primary/replicator.js';
import { openPairVolume, type PairVolumeOptions } from '../volume/open-pair-volume.js';
import type { Volume } from '../volume/volume.js';
import { DEFAULT_MAX_COORDINATION_MS, DEFAULT_MAX_DRAIN_MS, pairSettings, type PairSettings, type PairSpec } from './pair-spec.js';
import type { PairStateName } from './pair-state.js';
import { FencedExport } from './fenced-export.js';
import { VolumeExport, type IoCounters } from './volume-export.js';

export interface PairStatusView extends IoCounters {
  name: string;
  /** The spec's tunables, echoed so a client can tell whether a pair matches what it wants. */
  settings: PairSettings;
  role: PairSpec['role'];
  mode: PairSpec['mode'];
  state: PairStateName;
  volumePath: string;
  volumeBytes: number;
  blockSize: number;
  outOfSyncBytes: number;
  dirtyBlocks: number;
  resyncProgressPercent: number;
  lastInSyncTimeMs: number;
  retries: number;
  lastError: string;
  nbdConnections: number;
  nbdAddress: string;
  nbdSocket: string;
  peer: string;
  peerPair: string;
  bytesOnWire: number;
  bytesReplicated: number;
  consistencyGroup: string;
  lastConsistencyPointTimeMs: number;
  rpoSeconds: number;
  groupsFormed: number;
  groupsFailed: number;
  groupsDeferred: number;
  /** Frames, barriers or groups the secondary could not apply (see the control proto). */
  replicationErrors: number;
  coordinationHoldP50Ms: number;
  coordinationHoldP99Ms: number;
  coordinationHoldMaxMs: number;
  /** Data-generation ids this side holds (see generation-ids.ts). */
  generation: string;
  bitmapGeneration: string;
  historyGenerations: string[];
  /** The peer's current generation at the last handshake ('' unknown). */
  peerGeneration: string;
  /** The export refuses writes (a secondary, or a primary being demoted). */
  fenced: boolean;
  /** A secondary holds a complete image at one point in time (it can be promoted). */
  consistent: boolean;
  primaryDemoted: boolean;
  discardMyData: boolean;
  promotedTimeMs: number;
  promotedPointTimeMs: number;
  /** Why the last handshake with the peer started no session ('' none): see RefusalVerdict. */
  peerVerdict: string;
}

export interface PairContext {
  stateDir: string;
  logger: Logger;
  /** TLS material for the peer link (mutual TLS); plaintext only to loopback. */
  tls?: TlsFiles;
  /** The name a secondary's certificate must carry (default: the dialled host). */
  peerServerName?: string;
  /** The remote site's CA (PEM), trusted instead of `tls.ca` when the pair has no TLS of its own. */
  peerTrustCa?: string;
  /** The remote peer identity of pairs whose spec names none. */
  remotePeerIdentity?: string;
  /** Sync pairs: foreground bytes in flight to the secondary before writes wait. */
  replicationBudgetBytes?: number;
  onProtocolError?(pair: string, reason: string): void;
  /** The sidecar's consistency groups, which async primaries join. */
  groups: ConsistencyGroups;
  /** How a pair's block device is checked and held (see openPairVolume). */
  volume?: Omit<PairVolumeOptions, 'role'>;
  /**
   * The pair learnt it is a stale primary and demoted itself (its metadata says
   * secondary now, durably): stop it and start it again in that role.
   */
  onSelfDemoted?(pair: Pair): void;
}

/** A pair's NBD export over a Unix socket: what the node splice connects the kernel to. */
export interface SocketExport {
  device: string;
  socket: string;
  blockSize: number;
}

/**
 * A running pair in the role its metadata holds: its volume, its dirty log and metadata,
 * and for a primary its NBD export and replicator (without a peer a primary is Standalone
 * and every write stays tracked as out of sync), for a secondary its endpoint and, when it
 * has export settings, a fenced export. A role change stops the pair and starts it again
 * (PairManager), after its metadata committed the new role.
 */

export class Pair {
  /** The spec, with the role the pair holds now (its metadata's, which role changes commit). */
  readonly spec: PairSpec;
  readonly meta: PairMeta;
  readonly #volume: Volume;
  /** A primary's out-of-sync blocks; a secondary's divergent ones (see SecondaryEndpoint). */
  readonly #tracker: DirtyTracker;
  /** A primary's export (null for a secondary). */
  readonly #export: VolumeExport | null;
  /** A secondary's fenced export, when it has export settings. */
  readonly #fencedExport: FencedExport | null;
  readonly #nbd: NbdServer | null;
  readonly #stateDir: string;
  readonly #replicator: Replicator | null;
  readonly endpoint: SecondaryEndpoint | null;
  readonly #logger: Logger;
  readonly #onSelfDemoted: ((p: Pair) => void) | undefined;
  /** A secondary with a peer: tells its primary it is ready (see announceReady). */
  readonly #announce: ((signal: AbortSignal) => Promise<string>) | null;
  /** Aborted at close: an announcement under way ends with the pair. */
  readonly #stopping = new AbortController();
  #paused: boolean;
  #closed = false;
  /** A primary's last handshake verdict (its own dial or a dialler's), until a session starts. */
  #verdict: PeerVerdict | null = null;
  /** Learnt it is a stale primary: fenced for good. */
  #stale = false;
  /** Its demotion is being recorded (another verdict meanwhile changes nothing). */
  #demoting = false;

  private constructor(
    spec: PairSpec,
    stateDir: string,
    volume: Volume,
    parts: {
      meta: PairMeta;
      tracker: DirtyTracker;
      logger: Logger;
      exp?: VolumeExport;
      fencedExport?: FencedExport;
      nbd?: NbdServer;
      replicator?: Replicator;
      endpoint?: SecondaryEndpoint;
      announce?: (signal: AbortSignal) => Promise<string>;
      onSelfDemoted?: (p: Pair) => void;
    },
  ) {
    const { exp = null, nbd = null } = parts;
    this.meta = parts.meta;
    this.#logger = parts.logger;
    this.#onSelfDemoted = parts.onSelfDemoted;
    this.#replicator = parts.replicator ?? null;
    this.endpoint = parts.endpoint ?? null;
    this.#announce = parts.announce ?? null;
    this.spec = spec;
    this.#stateDir = stateDir;
    this.#volume = volume;
    this.#tracker = parts.tracker;
    this.#export = exp;
    this.#fencedExport = parts.fencedExport ?? null;
    this.#nbd = nbd;
    this.#paused = spec.paused;
  }

  get role(): PairSpec['role'] {
    return this.spec.role;
  }

  static stateDirOf(stateDir: string, name: string): string {
    return join(stateDir, 'pairs', name);
  }

  /** The dirty log in a pair's state directory. */
  static dirtyLogOf(dir: string): string {
    return join(dir, 'dirty.log');
  }

  /**
   * `holdReplication`: the replicator stays stopped until startReplication(); the export
   * serves and tracks writes meanwhile (a spliced volume's fallback writes must be
   * recorded before any consistency group is cut).
   */
  static async start(given: PairSpec, ctx: PairContext, opts: { holdReplication?: boolean; restored?: boolean; lineage?: VolumeLineage; volumeAt?: string } = {}): Promise<Pair> {
    const holdReplication = opts.holdReplication ?? false;
    const dir = Pair.stateDirOf(ctx.stateDir, given.name);
    const logger = ctx.logger.child({ pair: given.name });
    // Read, not written yet: a volume refused below must leave no state behind. Its role
    // wins over the spec's: a role change commits there first (see PairManager).
    // A lineage only seeds a new pair: a restored one lost its metadata, if at all, after
    // the record was made, and must not be taken back to it.
    const meta = await PairMeta.load(dir, given.role, opts.restored === true ? undefined : opts.lineage);
    if (opts.lineage !== undefined && meta.origin !== 'none') logger.warn('the pair already has metadata: the lineage given is ignored', { generation: meta.current });
    const spec: PairSpec = meta.role === given.role ? given : { ...given, role: meta.role };
    if (spec.role !== given.role) logger.warn('the pair holds another role than pairs.json says (a role change was cut short); taking the role of its metadata', { listed: given.role, role: spec.role });
    // First, so that a volume refused (in use, a directory) leaves no state behind. Opened
    // where the path policy found it landed (`volumeAt`), not through the path again.
    const volume = await openPairVolume(opts.volumeAt ?? spec.volumePath, { ...ctx.volume, role: spec.role, logger });
    let tracker: DirtyTracker | null = null;
    let nbd: NbdServer | null = null;
    try {
      // The pair's dirty log, metadata and journal must not vanish with an unsynced
      // directory entry at a power cut.
      await makeDirDurable(join(dir, 'journal'), ctx.stateDir);
      const logPath = Pair.dirtyLogOf(dir);
      // A pair restored from pairs.json had its dirty log created (durably) before it was
      // listed there — and before a version 2 meta.json was written: if the log is gone,
      // what it held is unknown, so everything counts as dirty, never nothing. (A secondary
      // of the previous release never had one, and never wrote as a primary.)
      const logLost = opts.restored === true && !existsSync(logPath) && (spec.role === 'primary' || meta.origin === 'current');
      tracker = await DirtyTracker.open({ path: logPath, volumeBytes: volume.size, blockSize: spec.blockSize });
      if (logLost) {
        logger.warn('the dirty log is missing: every block counts as out of sync (a full resync)');
        await tracker.markAllDirty();
      }
      if (tracker.recoveredExtents > 0) {
        logger.warn('recovered dirty extents after an unclean stop', { extents: tracker.recoveredExtents, dirtyBlocks: tracker.dirtyBlocks });
      }
      if (tracker.convertedFrom !== null) logger.info('dirty log converted to the current format', { from: tracker.convertedFrom, dirtyBlocks: tracker.dirtyBlocks });
      for (const d of tracker.damage) {
        logger.warn('dirty log damaged: what it might cover is counted dirty', { detail: d.message, region: d.region, firstBlock: d.firstBlock, lastBlock: d.lastBlock });
      }
      // Only once the dirty log exists (see logLost).
      const origin = meta.origin;
      await meta.persist();
      if (origin === 'legacy') logger.info('pair metadata converted to version 2', { role: spec.role, generation: meta.current });
      if (spec.role === 'secondary') {
        const journal = await GroupJournal.open(join(dir, 'journal'), volume);
        const endpoint = new SecondaryEndpoint(spec.name, { volume, blockSize: spec.blockSize, meta, journal, divergent: tracker, logger });
        const exp = spec.nbdListen || spec.nbdSocket ? new FencedExport(spec.name, volume.size) : undefined;
        if (exp) {
          nbd = new NbdServer(exp, { logger, onProtocolError: (r) => ctx.onProtocolError?.(spec.name, r) });
          await nbd.listen({ tcp: spec.nbdListen, socket: spec.nbdSocket });
        }
        logger.info('secondary pair started', { volume: spec.volumePath, bytes: volume.size, generation: meta.current, divergentBlocks: tracker.dirtyBlocks, fencedExport: nbd?.tcpAddress || nbd?.socketPath || '' });
        const peer = spec.peer;
        const announce = peer ? (signal: AbortSignal) => announceReady({ address: peer, remotePair: spec.peerPair ?? spec.name, ...peerLinkTls(spec, ctx), signal }) : undefined;
        return new Pair(spec, dir, volume, {
          meta,
          tracker,
          logger,
          endpoint,
          ...(exp && nbd ? { fencedExport: exp, nbd } : {}),
          ...(announce ? { announce } : {}),
          ...(ctx.onSelfDemoted ? { onSelfDemoted: ctx.onSelfDemoted } : {}),
        });
      }
      const exp = new VolumeExport(spec.name, volume, tracker);
      // The replicators report handshake verdicts to the pair, made below.
      const self: { pair?: Pair } = {};
      const onPeerVerdict = (hs: HandshakeResponse__Output | null): void => {
        if (self.pair !== undefined) self.pair.#onPeerVerdict(hs);
      };
      let replicator: Replicator | undefined;
      if (spec.peer) {
        const common = { volume, tracker, meta, peer: spec.peer, remotePair: spec.peerPair ?? spec.name, ...peerLinkTls(spec, ctx), logger, paused: spec.paused, onVerdict: onPeerVerdict };
        replicator = createReplicator(
          spec.mode === 'async'
            ? {
                mode: 'async',
                ...common,
                group: {
                  groups: ctx.groups,
                  settings: {
                    name: spec.consistencyGroup ?? spec.name,
                    peer: spec.peer,
                    intervalMs: spec.groupIntervalMs ?? 0,
                    maxCoordinationMs: spec.maxCoordinationMs ?? DEFAULT_MAX_COORDINATION_MS,
                    maxDrainMs: spec.maxDrainMs ?? DEFAULT_MAX_DRAIN_MS,
                  },
                },
              }
            : {
                mode: 'sync',
                ...common,
                ...(spec.writeTimeoutMs ? { writeTimeoutMs: spec.writeTimeoutMs } : {}),
                ...(spec.resyncBytesPerSecond ? { resyncBytesPerSecond: spec.resyncBytesPerSecond } : {}),
                ...(ctx.replicationBudgetBytes ? { maxInFlightBytes: ctx.replicationBudgetBytes } : {}),
              },
        );
        exp.attachReplication(replicator, () => meta.diverge());
      }
      nbd = new NbdServer(exp, { logger, onProtocolError: (r) => ctx.onProtocolError?.(spec.name, r) });
      await nbd.listen({ tcp: spec.nbdListen, socket: spec.nbdSocket });
      logger.info('pair started', { role: spec.role, volume: spec.volumePath, bytes: volume.size, nbd: nbd.tcpAddress, socket: nbd.socketPath, generation: meta.current });
      const pair = new Pair(spec, dir, volume, {
        meta,
        tracker,
        logger,
        exp,
        nbd,
        ...(replicator ? { replicator } : {}),
        ...(ctx.onSelfDemoted ? { onSelfDemoted: ctx.onSelfDemoted } : {}),
      });
      self.pair = pair;
      if (!holdReplication) pair.startReplication();
      return pair;
    } catch (err) {
      await nbd?.close(0).catch(() => undefined);
      await tracker?.close().catch(() => undefined);
      await volume.close().catch(() => undefined);
      throw err;
    }
  }

  /**
   * A primary's handshake for this pair: a secondary's endpoint answers it; a primary
   * answers with its generation ids and no session, and demotes itself when the dialler
   * holds a newer generation descending from its own.
   */
  async handshake(req: HandshakeRequest__Output): Promise<HandshakeResponse__Output> {
    if (this.endpoint !== null) return this.endpoint.handshake(req);
    if (req.volumeBytes !== this.#volume.size || req.blockSize !== this.spec.blockSize) {
      throw new GeometryMismatchError(`pair ${this.spec.name} is a primary here, of another geometry (${this.#volume.size} bytes, blocks of ${this.spec.blockSize})`);
    }
    // A primary of the previous release cannot act on an answer: it is refused, as then.
    if (req.generations === null) throw new FailedPreconditionError(`pair ${this.spec.name} is a primary here, not a secondary`);
    const dialer = validGenerations(req.generations);
    if (typeof dialer === 'string') throw new FailedPreconditionError(`bad generation ids: ${dialer}`);
    const v = handshakeVerdict({ role: 'primary', generations: this.meta.generations, discardMyData: false }, dialer);
    const answer = (verdict: string, reason: string): HandshakeResponse__Output => {
      const g = this.meta.generations;
      return { sessionId: '', secondaryGeneration: this.meta.image, fullSyncRequired: false, redirect: '', generations: { ...g, history: [...g.history] }, role: 'primary', verdict, reason, divergentBlocks: Buffer.alloc(0) };
    };
    if (v.kind === 'demote-self') {
      this.#demoteSelf(v.reason, dialer.current);
      return answer('responder-stale', v.reason);
    }
    if (v.kind === 'session') return answer('split-brain', 'two primaries');
    this.#noteVerdict({ verdict: v.verdict, reason: v.reason, peerGeneration: dialer.current });
    // A stale primary that dials us demotes itself and waits as our secondary: dial it
    // now, not when our backoff says (after a failover, up to a second of failback time).
    if (v.verdict === 'dialer-stale') this.#replicator?.peerSeen();
    return answer(v.verdict, v.reason);
  }

  /** What this primary's own link heard: a verdict, or null when a session started. */
  #onPeerVerdict(hs: HandshakeResponse__Output | null): void {
    if (hs === null) {
      this.#verdict = null;
      return;
    }
    const peer = hs.generations === null ? null : validGenerations(hs.generations);
    const peerGeneration = peer !== null && typeof peer !== 'string' ? peer.current : '';
    if (hs.verdict === 'dialer-stale') {
      // Acted on only when our own reading of its ids agrees: a peer that is wrong (or
      // lies) must not make this side stop serving.
      if (peer !== null && typeof peer !== 'string' && peerIsAhead(this.meta.generations, peer)) {
        this.#demoteSelf(hs.reason, peer.current);
        return;
      }
      this.#logger.error('the peer says this primary is stale, but its generation ids do not show it; staying primary', { reason: hs.reason });
    }
    const verdict = hs.verdict === 'dialer-stale' || hs.verdict === 'responder-stale' || hs.verdict === 'split-brain' ? hs.verdict : 'unrelated';
    this.#noteVerdict({ verdict, reason: hs.reason, peerGeneration });
  }

  #noteVerdict(v: PeerVerdict): void {
    if (this.#verdict?.reason !== v.reason && v.verdict !== 'responder-stale') this.#logger.warn('no session with the peer', { verdict: v.verdict, reason: v.reason });
    this.#verdict = v;
  }

  /**
   * This primary is stale: a peer holds a newer generation descending from ours. It never
   * serves a write as a primary again: the export is fenced at once (in memory, before
   * anything else happens), then the role is committed durably; only then is the pair
   * restarted as a secondary, its dirty log — what it wrote that the peer never got —
   * kept for the peer's resync to overwrite.
   */
  #demoteSelf(reason: string, peerGeneration: string): void {
    if (this.#demoting) return;
    this.#demoting = true;
    // For good, whatever happens next: this side never takes a write as a primary again.
    this.#stale = true;
    this.#export?.fenceWrites();
    this.#verdict = { verdict: 'dialer-stale', reason, peerGeneration };
    this.#logger.warn('this primary is stale: demoting itself', { reason, generation: this.meta.current, peerGeneration });
    this.meta.demote().then(
      () => this.#onSelfDemoted?.(this),
      (err: Error) => {
        // Still fenced; the next handshake tries again.
        this.#demoting = false;
        this.#logger.error('could not record the demotion; the export stays fenced', { error: err.message });
      },
    );
  }

  #replicationStarted = false;

  /** Starts a replicator held back by Pair.start(…, { holdReplication: true }). */
  startReplication(): void {
    if (this.#replicationStarted || this.#closed) return;
    this.#replicationStarted = true;
    this.#replicator?.start();
  }

  /** The NBD export over a Unix socket, for the node's splice; null for a secondary. */
  get socketExport(): SocketExport | null {
    if (this.#nbd === null || !this.#nbd.socketPath) return null;
    return { device: this.spec.volumePath, socket: this.#nbd.socketPath, blockSize: this.spec.blockSize };
  }

  recordUntrackedWrites(ranges: ReadonlyArray<readonly [number, number]>): Promise<void> {
    if (this.#export === null) return Promise.reject(new FailedPreconditionError(`pair ${this.spec.name} is a secondary`));
    return this.#export.recordUntrackedWrites(ranges);
  }

  /** Demotion, first step: the export refuses writes from now on. */
  fenceWrites(): void {
    this.#export?.fenceWrites();
  }

  /** A demotion that did not happen: the export takes writes again (never once stale). */
  unfence(): void {
    if (!this.#stale) this.#export?.unfence();
  }

  /**
   * Demotion, second step: resolves once everything acknowledged is durable on the
   * secondary, which holds this side's generation and has been told it demotes. A
   * primary without a peer has nobody to ship to.
   */
  shipEverything(signal: AbortSignal): Promise<void> {
    return this.#replicator?.shipEverything(signal) ?? Promise.resolve();
  }

  /** A secondary's primary is connected right now. */
  get primaryConnected(): boolean {
    return this.endpoint?.connected ?? false;
  }

  /** For a promotion: the primary time of the last point the volume holds (0 unknown). */
  get lastPointTimeMs(): number {
    const ep = this.endpoint;
    if (ep === null) return 0;
    return ep.lastConsistencyPointTimeMs || ep.stats.lastFrameTimeMs;
  }

  get paused(): boolean {
    return this.#paused;
  }

  setPaused(paused: boolean): void {
    this.#paused = paused;
    this.#replicator?.setPaused(paused);
  }

  /** The lineage its volume holds, a secondary's divergent blocks counted as its own writes (withOwnWrites). */
  get lineage(): VolumeLineage | null {
    return withOwnWrites(this.meta.lineage, this.#tracker.dirtyBlocks);
  }

  status(): PairStatusView {
    const t = this.#tracker;
    const counters = this.#export?.counters ?? { bytesWritten: 0, bytesRead: 0, writeOps: 0, readOps: 0 };
    const m = this.meta.data;
    const r = this.#replicator?.status() ?? null;
    return {
      name: this.spec.name,
      role: this.spec.role,
      mode: this.spec.mode,
      state: this.#state(r),
      volumePath: this.spec.volumePath,
      volumeBytes: this.#volume.size,
      blockSize: this.spec.blockSize,
      // With a peer: what the secondary is known not to have (blocks awaiting their
      // durable confirmation are on it, and stay dirty in the log until confirmed).
      outOfSyncBytes: r?.outOfSyncBytes ?? t?.dirtyBytes ?? 0,
      dirtyBlocks: t?.dirtyBlocks ?? 0,
      resyncProgressPercent: r?.progressPercent ?? 0,
      lastInSyncTimeMs: r?.lastInSyncTimeMs ?? 0,
      retries: r?.retries ?? 0,
      lastError: this.#lastError(r),
      ...counters,
      nbdConnections: this.#nbd?.connectionCount ?? 0,
      nbdAddress: this.#nbd?.tcpAddress ?? '',
      nbdSocket: this.#nbd?.socketPath ?? '',
      peer: this.spec.peer ?? '',
      peerPair: this.spec.peer ? (this.spec.peerPair ?? this.spec.name) : '',
      settings: pairSettings(this.spec),
      bytesOnWire: r?.bytesOnWire ?? this.endpoint?.stats.bytesApplied ?? 0,
      bytesReplicated: r?.bytesReplicated ?? this.endpoint?.stats.bytesApplied ?? 0,
      replicationErrors: r?.refusals ?? this.endpoint?.stats.applyErrors ?? 0,
      ...this.#asyncStatus(r),
      generation: m.current,
      bitmapGeneration: m.bitmap,
      historyGenerations: [...m.history],
      // A secondary's: its endpoint's last primary, in session or refused (a session
      // once left it blank, so the operator had nothing to show).
      peerGeneration: r?.peerGeneration || this.#verdict?.peerGeneration || this.endpoint?.peerGeneration || '',
      fenced: (this.#export ?? this.#fencedExport)?.readOnly ?? false,
      consistent: this.endpoint?.consistent ?? m.current !== '',
      primaryDemoted: m.primaryDemoted,
      discardMyData: m.discardMyData,
      promotedTimeMs: m.promotedAtMs,
      promotedPointTimeMs: m.promotedPointMs,
      peerVerdict: (this.#verdict ?? this.endpoint?.verdict)?.verdict ?? '',
    };
  }

  /** `r`: the replicator's status (null: a secondary, or a primary without a peer). */
  #asyncStatus(r: ReplicatorStatus | null): Pick<PairStatusView, 'consistencyGroup' | 'lastConsistencyPointTimeMs' | 'rpoSeconds' | 'groupsFormed' | 'groupsFailed' | 'groupsDeferred' | 'coordinationHoldP50Ms' | 'coordinationHoldP99Ms' | 'coordinationHoldMaxMs'> {
    // A sync replicator has no consistency points (0) and no group (null).
    const last = r?.lastConsistencyPointTimeMs ?? this.endpoint?.lastConsistencyPointTimeMs ?? 0;
    const g = r?.group;
    return {
      consistencyGroup: this.spec.consistencyGroup ?? '',
      lastConsistencyPointTimeMs: last,
      // The primary's data the secondary could not yet restore: now minus the primary
      // time of the last group applied there; 0 when nothing is waiting to be shipped.
      rpoSeconds: r && last > 0 && r.outOfSyncBytes > 0 ? Math.max(0, Date.now() - last) / 1000 : 0,
      groupsFormed: g?.formed ?? 0,
      groupsFailed: g?.failed ?? 0,
      groupsDeferred: g?.deferred ?? 0,
      coordinationHoldP50Ms: g?.holdP50Ms ?? 0,
      coordinationHoldP99Ms: g?.holdP99Ms ?? 0,
      coordinationHoldMaxMs: g?.holdMaxMs ?? 0,
    };
  }

  #state(r: ReplicatorStatus | null): PairStateName {
    if (this.#paused) return 'Paused';
    if (this.endpoint) return this.endpoint.state;
    if (this.#verdict?.verdict === 'split-brain' && r !== null && r.state === 'Retrying') return 'SplitBrain';
    return r?.state ?? 'Standalone';
  }

  #lastError(r: ReplicatorStatus | null): string {
    const trackerError = this.#tracker.lastError;
    if (trackerError) return `dirty log: ${trackerError.message}`;
    // Why there is no session while the peers disagree, not the last dial's transport error.
    // Unrelated data too: a refusal no retry cures, which must not read as a link error.
    if (this.#verdict !== null && (this.#stale || this.#state(r) === 'SplitBrain' || this.#verdict.verdict === 'unrelated')) return this.#verdict.reason;
    return r?.lastError ?? this.endpoint?.lastError ?? '';
  }

  /**
   * A secondary with a peer tells its primary it can take a session now: a restart then
   * costs the primary no reconnect backoff (up to a second more of marking a sync
   * pair's writes out of sync). Called once the peer port serves this pair. Only a hint:
   * if it fails, the primary finds this side by its own retries.
   */
  announceReady(): void {
    const announce = this.#announce;
    if (announce === null || this.#closed) return;
    // Called right after the pair started: a synchronous throw (its TLS files unreadable)
    // would fail a create or restart whose volume is already open, over a hint.
    Promise.resolve(this.#stopping.signal).then(announce).then(
      (at) => this.#logger.info('told the primary this secondary is ready', { peer: at }),
      (err: Error & { details?: string }) => {
        if (!this.#closed) this.#logger.info('could not tell the primary this secondary is ready; it finds it by its own retries', { peer: this.spec.peer, error: err.details || err.message });
      },
    );
  }

  /** PeerReady for a primary: its secondary is ready, dial it now. False without a replicator. */
  peerReady(): boolean {
    if (this.#replicator === null || this.#closed) return false;
    this.#logger.info('the secondary says it is ready: dialling it now');
    this.#replicator.peerSeen();
    return true;
  }

  /** Graceful stop: in-flight requests finish, data is flushed, the bitmap persisted. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopping.abort();
    await this.#nbd?.close();
    // An async replicator leaves its consistency group as it closes.
    this.#replicator?.close();
    await this.endpoint?.journal.close();
    // Durable data first, then the bitmap that describes it.
    await this.#volume.flush().catch(() => undefined);
    await this.#tracker.close();
    await this.#volume.close();
  }

  /** Stops the pair and forgets its state; the volume's data is left untouched. */
  async destroy(): Promise<void> {
    await this.close();
    await rm(this.#stateDir, { recursive: true, force: true });
  }
}

/** The peer's data descends from ours and is newer (a delta or a full copy from it to us). */
function peerIsAhead(own: GenerationIds, peer: GenerationIds): boolean {
  const d = decideResync(own, peer);
  return (d.kind === 'delta' || d.kind === 'full') && d.from === 'b';
}

/** A primary's peer link TLS: the pair's own material when it has some, else the sidecar's. */
function peerLinkTls(spec: PairSpec, ctx: PairContext): { tls?: TlsFiles | TlsMaterial; serverName?: string; serverIdentity?: string } {
  const t = spec.peerTls;
  let tls: TlsFiles | TlsMaterial | undefined = t ? { cert: Buffer.from(t.cert), key: Buffer.from(t.key), ca: Buffer.from(t.ca) } : ctx.tls;
  if (!t && ctx.tls && ctx.peerTrustCa) {
    const own = readTlsMaterial(ctx.tls);
    // The remote site's CA only: a secondary of this site's CA is not the remote site.
    tls = { ...own, ca: Buffer.from(ctx.peerTrustCa) };
  }
  const identity = spec.remoteIdentity ?? ctx.remotePeerIdentity;
  return { ...(tls ? { tls } : {}), ...(ctx.peerServerName ? { serverName: ctx.peerServerName } : {}), ...(identity ? { serverIdentity: identity } : {}) };
}
