import { Metadata, status as GrpcStatus, type ClientDuplexStream } from '@grpc/grpc-js';
import type { Logger } from 'winston';
import type { CommitGroupRequest } from '../../../proto/gen/blockmirror/replication/v1/CommitGroupRequest.js';
import type { FrameAck__Output } from '../../../proto/gen/blockmirror/replication/v1/FrameAck.js';
import type { HandshakeResponse__Output } from '../../../proto/gen/blockmirror/replication/v1/HandshakeResponse.js';
import { BlockmirrorError } from '../../errors.js';
import { channelCredentials, type TlsFiles, type TlsMaterial } from '../../grpc/grpc-credentials.js';
import { Backoff } from './backoff.js';
import type { GenerationIds } from '../lineage/generation-ids.js';
import type { OutgoingBlockFrame } from '../wire/block-frame-codec.js';
import { frameChecksum } from '../wire/frame-builder.js';
import { coalescible, takeCoalesced } from '../wire/frame-coalescer.js';
import { laneParts, soleLane } from '../wire/lane-parts.js';
import { DEFAULT_LIVENESS_MS, emptyFrame, HEARTBEAT_MS, MAX_PEER_MESSAGE_BYTES, MAX_REDIRECTS, PAIR_METADATA, PEER_FLOW_CONTROL_WINDOW, SESSION_METADATA } from '../wire/peer-protocol.js';
import { peerServiceClient, type PeerServiceClient } from '../wire/peer-service.js';

export class PeerUnavailableError extends BlockmirrorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('UNAVAILABLE', message, options);
    this.name = 'PeerUnavailableError';
  }
}

/**
 * The secondary answered but could not apply a frame or a group (a full disk, an I/O
 * error, a corrupt frame): the session is fine, the data did not land. Replicators back
 * off and show it instead of resending in a hot loop.
 */
export class PeerRefusedError extends BlockmirrorError {
  constructor(message: string) {
    super('PEER_REFUSED', message);
    this.name = 'PeerRefusedError';
  }
}

export type StreamKind = 'mirror' | 'resync';

export interface PeerLinkOptions {
  /** The remote site's peer entry point (a Service, or any of its sidecars). */
  address: string;
  tls?: TlsFiles | TlsMaterial;
  /**
   * The name the secondary's certificate must carry. A redirect sends the link to a node
   * address no certificate made beforehand names; the peer is verified by its identity
   * (this name, signed by the trusted CA) instead. Default: the dialled host.
   */
  serverName?: string;
  /**
   * With TLS the secondary must present a peer identity (spiffe://blockmirror/<site>/peer):
   * this one exactly when given. A sidecar's control certificate from the same CA is no peer.
   */
  serverIdentity?: string;
  /** The pair's name on the remote sidecar. */
  remotePair: string;
  volumeBytes: number;
  blockSize: number;
  /** This primary's data-generation ids, sent at each handshake. */
  generations: () => GenerationIds;
  /** What a secondary of the previous release knows this primary as (PairMeta.root). */
  legacyGeneration: () => string;
  /** The secondary image this primary last completed a full copy to (for that release too). */
  syncedPeerGeneration: () => string;
  logger: Logger;
  /** Called when a session starts (with the handshake answer) or ends. */
  onSession(session: HandshakeResponse__Output | null, error?: string): void;
  /**
   * The peer answered with a verdict and no session (it is a newer primary or holds newer
   * data, it is a stale primary demoting itself, a split brain, another lineage). The
   * link retries as after any failure; the pair decides what the verdict means for it.
   */
  onVerdict?(answer: HandshakeResponse__Output): void;
  handshakeTimeoutMs?: number;
  /** Replication mode, told to the secondary so it reports the right state. */
  mode: 'sync' | 'async';
  /** See DEFAULT_LIVENESS_MS. */
  livenessMs?: number;
  /**
   * Mirror streams, each on its own channel (HTTP/2 connection); default 1. Writes are
   * spread over them by LANE_EXTENT_BYTES, so one connection's event-loop handoffs and
   * flow control do not bound the pair, and writes to the same block keep one order.
   */
  lanes?: number;
  /** Paces reconnects; default capped at 1 s (see PeerLink). Tests pass their own. */
  backoff?: Backoff;
}

/**
 * Writes go to lane (offset / LANE_EXTENT_BYTES) mod lanes: the same bytes always take
 * the same lane (a frame crossing a boundary is cut there), so two overlapping writes in
 * flight land on the secondary in the order they were sent.
 */
export const LANE_EXTENT_BYTES = 1 << 20;
/** Mirror lanes of a sync pair's link (async ships its data on the resync stream). */
export const DEFAULT_SYNC_LANES = 2;
const LANE_PROBE_TIMEOUT_MS = 2000;
/** First backoff ceiling after redialSoon: a peer restarting its pair is ready in tens of ms. */
const REDIAL_CEILING_MS = 25;

/** What a replicator knows of its pair, enough to link it to its secondary. */
export interface PairLinkSource {
  volume: { size: number };
  tracker: { layout: { blockSize: number } };
  meta: { generations: GenerationIds; root: string; peerImage: string };
  peer: string;
  remotePair: string;
  tls?: TlsFiles | TlsMaterial;
  serverName?: string;
  serverIdentity?: string;
  logger: Logger;
  /** Sync mode: a write the secondary does not answer within this fails (see livenessMs). */
  writeTimeoutMs?: number;
  /** See PeerLinkOptions.onVerdict. */
  onVerdict?(answer: HandshakeResponse__Output): void;
}

/** What a replicator uses of its link: a PeerLink, or a fake in unit tests. */
export type ReplicationLink = Pick<PeerLink, 'start' | 'close' | 'connected' | 'sessionId' | 'retries' | 'lastError' | 'send' | 'markSynced' | 'commitGroup' | 'fail' | 'redialSoon'>;

/** Makes a replicator's link; `onSession` is called as a session starts or ends. */
export type LinkFactory = (onSession: PeerLinkOptions['onSession']) => ReplicationLink;

/** The link of a primary pair to its secondary, in either mode. */
export function pairLink(o: PairLinkSource, onSession: PeerLinkOptions['onSession'], mode: PeerLinkOptions['mode'], opts: { lanes?: number } = {}): PeerLink {
  return new PeerLink({
    mode,
    lanes: opts.lanes ?? (mode === 'sync' ? DEFAULT_SYNC_LANES : 1),
    ...(o.onVerdict ? { onVerdict: (hs: HandshakeResponse__Output) => o.onVerdict?.(hs) } : {}),
    // A peer slower than the write timeout already ends the session; liveness is the
    // backstop for one that stops answering altogether, so never shorter than that.
    livenessMs: Math.max(DEFAULT_LIVENESS_MS, o.writeTimeoutMs ?? 0),
    address: o.peer,
    ...(o.tls ? { tls: o.tls } : {}),
    ...(o.serverName ? { serverName: o.serverName } : {}),
    ...(o.serverIdentity ? { serverIdentity: o.serverIdentity } : {}),
    remotePair: o.remotePair,
    volumeBytes: o.volume.size,
    blockSize: o.tracker.layout.blockSize,
    generations: () => o.meta.generations,
    legacyGeneration: () => o.meta.root,
    syncedPeerGeneration: () => o.meta.peerImage,
    logger: o.logger,
    onSession,
  });
}

interface Pending {
  resolve(): void;
  reject(err: Error): void;
}

interface OpenStream {
  kind: StreamKind;
  call: ClientDuplexStream<OutgoingBlockFrame, FrameAck__Output>;
  session: string;
  cancelled: boolean;
  pending: Map<number, Pending & { sentAt: number }>;
  /**
   * Frames not yet handed to grpc-js: waiting for the stream's 'drain' (write() asked us
   * to stop), or, on a mirror stream, small frames held while a message is still being
   * written out, to go joined as one message when it is.
   */
  queue: OutgoingBlockFrame[];
  blocked: boolean;
  /** Messages handed to grpc-js whose write has not called back yet: the lane is busy. */
  writing: number;
  /** A joined message's sequence → the earlier frames its answer settles too. */
  joined: Map<number, number[]>;
  lastSentAt: number;
}

/**
 * The primary's connection to its secondary: handshake, then per lane one stream for
 * foreground writes and one for resync. Lane 0 is the handshake's own channel (HTTP/2
 * connection) and carries the unary calls; the remote site's entry point may spread
 * connections over its nodes and only the node holding the secondary knows the
 * session, so every further lane proves it reached that node before it is used.
 *
 * The link dials the remote site's entry point; a sidecar there that does not hold the
 * pair redirects the handshake to the one that does. The link then keeps dialling that
 * sidecar, across reconnects, and goes back to the entry point when it fails (the pair
 * may have moved to another node). Any failure ends the session and the link
 * reconnects with capped, jittered backoff — it never gives up (no "suspended").
 * The link owns the heartbeat, for both modes: an idle link still sends a frame every
 * HEARTBEAT_MS, and a frame unanswered for `livenessMs` ends the session.
 */
export class PeerLink {
  readonly #opts: PeerLinkOptions;
  // Capped at 1 s: a returning secondary is found within about a second, which bounds
  // how long an outage outlives its cause; a refused or unanswered attempt costs little.
  readonly #backoff: Backoff;
  #client: PeerServiceClient | null = null;
  /** Channels of mirror lanes 1.., to the same address as #client (lane 0). */
  #laneClients: PeerServiceClient[] = [];
  /** The address #client dials: the entry point, or the sidecar it redirected to. */
  #target = '';
  #started = false;
  /** An attempt is under way (redialSoon must not start a second one). */
  #connecting = false;
  #session = '';
  /** The session's mirror and resync streams, one of each per lane (lane 0 first); empty between sessions. */
  #mirrors: OpenStream[] = [];
  #resyncs: OpenStream[] = [];
  #nextResync = 0;
  #sequence = 0;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  retries = 0;
  lastError = '';

  constructor(opts: PeerLinkOptions) {
    // Refused now, not at the first dial: a plaintext entry point off loopback is a spec
    // the pair's creation must refuse (INVALID_ARGUMENT), before any state is kept.
    channelCredentials(opts.address, opts.tls);
    this.#opts = opts;
    this.#backoff = opts.backoff ?? new Backoff({ maxMs: 1000 });
  }

  get connected(): boolean {
    return this.#session !== '';
  }

  get sessionId(): string {
    return this.#session;
  }

  /** Mirror lanes of the current session (0 between sessions). */
  get lanes(): number {
    return this.#mirrors.length;
  }

  /** The address sessions go to now: the entry point, or the sidecar it redirected to. */
  get target(): string {
    return this.#target || this.#opts.address;
  }

  start(): void {
    this.#started = true;
    void this.#connect();
  }

  /** Points the link's one channel at `address` (closing the channel to the previous one). */
  #dial(address: string): PeerServiceClient {
    if (this.#client !== null && this.#target === address) return this.#client;
    this.#closeClients();
    this.#target = address;
    this.#client = this.#channel(address);
    return this.#client;
  }

  /** Closes every channel of the link. */
  #closeClients(): void {
    this.#client?.close();
    this.#client = null;
    for (const c of this.#laneClients) c.close();
    this.#laneClients = [];
  }

  /** A channel (its own HTTP/2 connection) to `address`. */
  #channel(address: string): PeerServiceClient {
    // Throws for a plaintext non-loopback address (a redirect too: TLS stays required).
    const creds = channelCredentials(address, this.#opts.tls, { role: 'peer', ...(this.#opts.serverIdentity ? { uri: this.#opts.serverIdentity } : {}) });
    return peerServiceClient(address, creds, {
      // A subchannel of its own: another pair's session to the same node never shares
      // (or tears down) this one's connection.
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': MAX_PEER_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_PEER_MESSAGE_BYTES,
      // Flow-control window well above HTTP/2's default 64 KiB: with it, a 1 MiB frame
      // would wait for window updates several times per frame.
      'grpc-node.flow_control_window': PEER_FLOW_CONTROL_WINDOW,
      // The channel's own reconnect backoff (1 s growing to 120 s by default) would
      // fail our handshakes fast for minutes after an outage; ours paces the retries.
      // No replays by grpc-js: a session that fails ends, and the link starts a new one.
      // Its retry buffer also called a write back before the message was written, which
      // hid a busy lane from the coalescing in #write; with no buffer, a write calls back
      // once its message is on the connection.
      'grpc.enable_retries': 0,
      'grpc.per_rpc_retry_buffer_size': 0,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
      ...(this.#opts.serverName && this.#opts.tls ? { 'grpc.ssl_target_name_override': this.#opts.serverName, 'grpc.default_authority': this.#opts.serverName } : {}),
    });
  }

  /**
   * Sends a frame; resolves when the secondary acknowledged it (written, or durable for a
   * durable frame). Rejects with PeerRefusedError when the secondary could not apply it,
   * PeerUnavailableError when the session ended first.
   */
  send(kind: StreamKind, frame: Omit<OutgoingBlockFrame, 'sessionId' | 'sequence'>): Promise<void> {
    if (!this.connected || this.#resyncs.length === 0) return Promise.reject(new PeerUnavailableError('not connected'));
    if (kind === 'resync') {
      // Resync frames carry blocks locked until acknowledged, so no two in flight share a
      // block: any lane will do, and each lane's stream is written on the secondary
      // concurrently with the others'. One lane in async mode, whose frames are staged
      // in order.
      const s = this.#resyncs[this.#nextResync++ % this.#resyncs.length]!;
      return this.#write(s, frame);
    }
    const lanes = this.#mirrors;
    if (lanes.length === 1 || frame.runs.length === 0) return this.#write(lanes[0]!, frame);
    // The common case, a write within one extent, goes whole without building parts.
    const lane = soleLane(frame.runs, lanes.length, LANE_EXTENT_BYTES);
    if (lane !== -1) return this.#write(lanes[lane]!, frame);
    const parts = laneParts(frame, lanes.length, LANE_EXTENT_BYTES);
    // Cut at lane boundaries: each part checked on its own.
    return Promise.all(parts.map((p) => this.#write(lanes[p.lane]!, { ...p, crc32c: frameChecksum(p.runs, p.payload), durable: frame.durable }))).then(() => undefined);
  }

  #write(s: OpenStream, frame: Omit<OutgoingBlockFrame, 'sessionId' | 'sequence'>): Promise<void> {
    const sequence = ++this.#sequence;
    return new Promise<void>((resolve, reject) => {
      const now = performance.now();
      s.pending.set(sequence, { resolve, reject, sentAt: now });
      s.lastSentAt = now;
      const msg = { ...frame, sessionId: s.session, sequence };
      // Honour the stream's backpressure: once write() says stop, frames wait here for
      // 'drain' instead of piling up in grpc-js's buffers (the callers bound how many).
      // And while a message is being written out, a small write waits beside it, to go
      // joined with the others that arrive meanwhile: one message instead of many, with
      // no timer — an idle lane (QD1) sends every write at once.
      if (s.queue.length > 0 || s.blocked || (s.writing > 0 && s.kind === 'mirror' && coalescible(msg))) s.queue.push(msg);
      else this.#put(s, msg);
    });
  }

  /** Hands a message to grpc-js; its callback says the lane is free again. */
  #put(s: OpenStream, msg: OutgoingBlockFrame): void {
    s.writing++;
    const ok = s.call.write(msg, () => {
      s.writing--;
      if (s.writing === 0) this.#flushQueue(s);
    });
    if (!ok) s.blocked = true;
  }

  /** Sends what waits in the queue, small mirror frames joined, until write() says stop. */
  #flushQueue(s: OpenStream): void {
    while (s.queue.length > 0 && !s.blocked && !s.cancelled) {
      if (s.kind !== 'mirror') {
        this.#put(s, s.queue.shift()!);
        continue;
      }
      const { frame, sequences } = takeCoalesced(s.queue);
      if (sequences.length > 1) s.joined.set(frame.sequence, sequences.slice(0, -1));
      this.#put(s, frame);
    }
  }

  /**
   * Tells the secondary it now holds a complete image of `generations` (this primary's,
   * as of the copy or resync just made durable there); `primaryDemoting`: and that this
   * primary demotes itself with nothing left to ship.
   */
  markSynced(generations: GenerationIds, opts: { primaryDemoting?: boolean } = {}): Promise<void> {
    const c = this.#client;
    if (!c || !this.connected) return Promise.reject(new PeerUnavailableError('not connected'));
    const req = { pairId: this.#opts.remotePair, sessionId: this.#session, generations: { ...generations, history: [...generations.history] }, primaryDemoting: opts.primaryDemoting ?? false };
    return new Promise((resolve, reject) => {
      c.MarkSynced(req, { deadline: new Date(Date.now() + 5000) }, (err) => {
        if (!err) return resolve();
        const why = `the secondary could not record the complete image: ${err.details || err.message}`;
        reject(err.code === GrpcStatus.FAILED_PRECONDITION ? new PeerRefusedError(why) : new PeerUnavailableError(why));
      });
    });
  }

  /** Async mode: asks the secondary to apply a staged consistency group; resolves once applied there. */
  commitGroup(req: CommitGroupRequest, signal?: AbortSignal): Promise<void> {
    const c = this.#client;
    if (!c || !this.connected) return Promise.reject(new PeerUnavailableError('not connected'));
    return new Promise((resolve, reject) => {
      const call = c.CommitGroup(req, (err) => {
        if (!err) return resolve();
        // FAILED_PRECONDITION is the secondary's own answer (it could not apply the group);
        // anything else is the transport's.
        const why = `group commit refused: ${err.details || err.message}`;
        reject(err.code === GrpcStatus.FAILED_PRECONDITION ? new PeerRefusedError(why) : new PeerUnavailableError(why));
      });
      signal?.addEventListener('abort', () => call.cancel(), { once: true });
    });
  }

  /**
   * The peer is known to be up again: the next attempt goes now, on a new channel, and
   * the backoff starts over, instead of waiting out delays grown during the outage. A
   * failed attempt backs off from a low ceiling (REDIAL_CEILING_MS, doubling), so a peer
   * that is up but not yet ready (restarting in its new role, tens of milliseconds) is
   * tried again as soon as it is likely to be, not a uniform 0–200 ms later.
   */
  redialSoon(): void {
    if (this.#closed || !this.#started || this.connected || this.#connecting) return;
    this.#backoff.reset(REDIAL_CEILING_MS);
    // A fresh channel too: the old one's own reconnect backoff, grown while the peer was
    // down, would hold the attempt back by as much again.
    this.#closeClients();
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#connect(), 0);
    this.#timer.unref();
  }

  /** Ends the session (a failed write, a stalled peer) and reconnects. */
  fail(reason: string): void {
    if (!this.connected) return;
    this.#drop(reason);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    clearInterval(this.#heartbeat);
    this.#drop('link closed');
    this.#closeClients();
  }

  async #connect(): Promise<void> {
    if (this.#closed || !this.#started || this.#connecting) return;
    this.#connecting = true;
    try {
      await this.#attempt();
    } finally {
      this.#connecting = false;
    }
  }

  /** One connection attempt: handshake (following redirects), lanes, session; or a retry later. */
  async #attempt(): Promise<void> {
    try {
      // The remembered sidecar first; the entry point when there is none.
      let c = this.#dial(this.target);
      let hs = await this.#handshake(c);
      for (let hops = 0; hs.redirect !== ''; hops++) {
        if (this.#closed) return;
        if (hops >= MAX_REDIRECTS) throw new PeerUnavailableError(`redirected more than ${MAX_REDIRECTS} times (last to ${hs.redirect}): the remote site's sidecars disagree on who holds ${this.#opts.remotePair}`);
        if (hs.redirect === this.#target) throw new PeerUnavailableError(`${this.#target} redirected to itself`);
        this.#opts.logger.info('peer redirected', { from: this.#target, to: hs.redirect, remotePair: this.#opts.remotePair });
        c = this.#dial(hs.redirect);
        hs = await this.#handshake(c);
      }
      if (this.#closed) return;
      if (hs.verdict !== '' || hs.sessionId === '') {
        // No session, and why: the pair acts on it; the link tries again later (the other
        // side may demote itself, or a person may resolve a split brain meanwhile).
        this.#opts.onVerdict?.(hs);
        this.#retryLater(hs.reason || `the peer started no session (${hs.verdict || 'no reason given'})`);
        return;
      }
      const lanes = await this.#openLanes(c, hs.sessionId);
      if (this.#closed) {
        for (const l of lanes) this.#cancel(l.mirror, 'link closed');
        return;
      }
      this.#session = hs.sessionId;
      this.#mirrors = lanes.map((l) => l.mirror);
      this.#resyncs = lanes.map((l) => this.#open('resync', l.client, hs.sessionId));
      this.#backoff.reset();
      this.lastError = '';
      this.#startHeartbeat();
      this.#opts.logger.info('peer session started', { peer: this.#target, entry: this.#opts.address, fullSyncRequired: hs.fullSyncRequired, lanes: lanes.length });
      this.#opts.onSession(hs);
    } catch (err) {
      const why = ((err as { details?: string }).details || (err as Error).message).replace(/\s*Resolution note:\s*$/, '');
      // A sidecar found by redirect that fails may no longer hold the pair: ask the
      // entry point again next time.
      const from = this.#target;
      if (from !== this.#opts.address) {
        this.#opts.logger.info('redirected peer failed; back to the entry point', { peer: from, entry: this.#opts.address, error: why });
        this.#closeClients();
        this.#target = '';
      }
      this.#retryLater(from === this.#opts.address ? why : `${from} (found by redirect): ${why}`);
    }
  }

  #handshake(c: PeerServiceClient): Promise<HandshakeResponse__Output> {
    return new Promise<HandshakeResponse__Output>((resolve, reject) => {
      c.Handshake(
        {
          pairId: this.#opts.remotePair,
          volumeBytes: this.#opts.volumeBytes,
          blockSize: this.#opts.blockSize,
          mode: this.#opts.mode,
          primaryGeneration: this.#opts.legacyGeneration(),
          syncedSecondaryGeneration: this.#opts.syncedPeerGeneration(),
          generations: { ...this.#opts.generations(), history: [...this.#opts.generations().history] },
        },
        { deadline: new Date(Date.now() + (this.#opts.handshakeTimeoutMs ?? 5000)) },
        (err, res) => (err || !res ? reject(err ?? new Error('empty handshake answer')) : resolve(res)),
      );
    });
  }

  /**
   * The session's mirror lanes: lane 0 on the handshake's own channel, the others each on
   * a channel of its own, kept only if an empty frame sent on it is answered. Behind an
   * entry point that spreads connections over a site's nodes, a lane may reach a sidecar
   * that does not hold the session: it is refused there and left out, never used. The set
   * is fixed for the session, so a block's lane never changes while writes are in flight.
   */
  async #openLanes(c: PeerServiceClient, session: string): Promise<{ client: PeerServiceClient; mirror: OpenStream }[]> {
    const lanes = [{ client: c, mirror: this.#open('mirror', c, session) }];
    const want = Math.max(1, Math.floor(this.#opts.lanes ?? 1));
    if (want === 1) return lanes;
    while (this.#laneClients.length < want - 1) this.#laneClients.push(this.#channel(this.#target));
    const extra = this.#laneClients.map((lc) => this.#open('mirror', lc, session));
    // A healthy lane answers within a round trip or two (its TLS handshake included); a
    // refused one may only time out, and holds up the session start as long.
    const timeoutMs = Math.min(this.#opts.handshakeTimeoutMs ?? 5000, LANE_PROBE_TIMEOUT_MS);
    const answered = await Promise.all(
      extra.map((s) => {
        let timer: NodeJS.Timeout | undefined;
        const probe = this.#write(s, emptyFrame(false));
        const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('no answer')), timeoutMs)));
        return Promise.race([probe, timeout])
          .then(
            () => true,
            (err: Error) => {
              this.#opts.logger.info('peer lane refused; going on without it', { peer: this.#target, error: err.message });
              return false;
            },
          )
          .finally(() => clearTimeout(timer));
      }),
    );
    extra.forEach((s, i) => {
      if (answered[i]) lanes.push({ client: this.#laneClients[i]!, mirror: s });
      else this.#cancel(s, 'lane refused');
    });
    return lanes;
  }

  #cancel(s: OpenStream, reason: string): void {
    s.cancelled = true;
    for (const p of s.pending.values()) p.reject(new PeerUnavailableError(reason));
    s.pending.clear();
    s.queue = [];
    s.joined.clear();
    s.call.cancel();
  }

  #open(kind: StreamKind, client: PeerServiceClient, session: string): OpenStream {
    const md = new Metadata();
    md.set(SESSION_METADATA, session);
    md.set(PAIR_METADATA, this.#opts.remotePair);
    const call = kind === 'mirror' ? client.Mirror(md) : client.Resync(md);
    const s: OpenStream = { kind, call, session, cancelled: false, pending: new Map(), queue: [], blocked: false, writing: 0, joined: new Map(), lastSentAt: performance.now() };
    const settle = (sequence: number, error: string): void => {
      const p = s.pending.get(sequence);
      if (!p) return;
      s.pending.delete(sequence);
      if (error === '') p.resolve();
      else p.reject(new PeerRefusedError(`the secondary could not apply frame ${sequence}: ${error}`));
    };
    call.on('data', (ack: FrameAck__Output) => {
      // A joined message's answer is every one of its frames' answer.
      const earlier = s.joined.get(ack.sequence);
      if (earlier !== undefined) {
        s.joined.delete(ack.sequence);
        for (const seq of earlier) settle(seq, ack.error);
      }
      settle(ack.sequence, ack.error);
    });
    call.on('drain', () => {
      s.blocked = false;
      this.#flushQueue(s);
    });
    const end = (why: string): void => {
      // A stream we cancelled (a refused lane, a dropped session) says so later: no news.
      if (s.cancelled) return;
      if (this.#session === session) this.#drop(why);
      // A lane still being tried: its probe fails now, not at its timeout.
      else this.#cancel(s, why);
    };
    call.on('error', (err: Error & { details?: string }) => end(`${kind} stream: ${err.details || err.message}`));
    call.on('end', () => end(`${kind} stream ended`));
    return s;
  }

  #drop(reason: string): void {
    const streams = [...this.#mirrors, ...this.#resyncs];
    this.#mirrors = [];
    this.#resyncs = [];
    const wasConnected = this.#session !== '';
    if (!wasConnected && !this.#closed) return; // already dropped; a reconnect is scheduled
    this.#session = '';
    clearInterval(this.#heartbeat);
    for (const s of streams) this.#cancel(s, reason);
    if (wasConnected) {
      this.#opts.logger.warn('peer session ended', { peer: this.#target, reason });
      this.#opts.onSession(null, reason);
    }
    if (!this.#closed) this.#retryLater(reason);
  }

  /**
   * Every HEARTBEAT_MS: an empty frame on an idle mirror stream, so the secondary can
   * tell a live session from a dead one in both modes; and a check that the secondary
   * still answers — a frame unacknowledged for `livenessMs` ends the session (a peer
   * that hangs with its TCP connection open would otherwise stall the pair forever).
   */
  #startHeartbeat(): void {
    clearInterval(this.#heartbeat);
    const liveness = this.#opts.livenessMs ?? DEFAULT_LIVENESS_MS;
    this.#heartbeat = setInterval(() => {
      const now = performance.now();
      const m = this.#mirrors[0];
      if (m === undefined) return;
      // Only the mirror lanes are watched: bulk frames may queue behind a slow link for
      // long, but heartbeats and foreground writes are answered unless the peer is gone.
      for (const lane of this.#mirrors) {
        const oldest = lane.pending.values().next().value;
        if (oldest !== undefined && now - oldest.sentAt > liveness) {
          this.fail(`the secondary did not answer for ${Math.round((now - oldest.sentAt) / 1000)} s`);
          return;
        }
      }
      if (now - m.lastSentAt >= HEARTBEAT_MS) this.send('mirror', emptyFrame(false)).catch(() => undefined);
    }, HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  #retryLater(reason: string): void {
    if (this.#closed) return;
    this.lastError = reason;
    this.retries++;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#connect(), this.#backoff.next());
    this.#timer.unref();
  }
}
