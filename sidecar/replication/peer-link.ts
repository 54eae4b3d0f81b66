import { Metadata, type ClientDuplexStream } from '@grpc/grpc-js';
import type { Logger } from 'winston';
import type { BlockFrame } from '../../proto/gen/blockmirror/replication/v1/BlockFrame.js';
import type { CommitGroupRequest } from '../../proto/gen/blockmirror/replication/v1/CommitGroupRequest.js';
import type { FrameAck__Output } from '../../proto/gen/blockmirror/replication/v1/FrameAck.js';
import type { HandshakeResponse__Output } from '../../proto/gen/blockmirror/replication/v1/HandshakeResponse.js';
import type { ReplicationServiceClient } from '../../proto/gen/blockmirror/replication/v1/ReplicationService.js';
import { BlockmirrorError } from '../errors.js';
import { channelCredentials, type TlsFiles } from '../grpc/grpc-credentials.js';
import { loadReplicationProto } from '../grpc/load-proto.js';
import { Backoff } from './backoff.js';
import { PAIR_METADATA, SESSION_METADATA } from './replication-service.js';

export class PeerUnavailableError extends BlockmirrorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('UNAVAILABLE', message, options);
    this.name = 'PeerUnavailableError';
  }
}

export type StreamKind = 'mirror' | 'resync';

/** HTTP/2 flow-control window of peer connections, both ends (the server sets it too). */
export const PEER_FLOW_CONTROL_WINDOW = 32 << 20;

export interface PeerLinkOptions {
  address: string;
  tls?: TlsFiles;
  /** The pair's name on the remote sidecar. */
  remotePair: string;
  volumeBytes: number;
  blockSize: number;
  generation: () => string;
  syncedPeerGeneration: () => string;
  logger: Logger;
  /** Called when a session starts (with the handshake answer) or ends. */
  onSession(session: HandshakeResponse__Output | null, error?: string): void;
  handshakeTimeoutMs?: number;
}

/** What a replicator knows of its pair, enough to link it to its secondary. */
export interface PairLinkSource {
  volume: { size: number };
  tracker: { layout: { blockSize: number } };
  meta: { generation: string; syncedPeerGeneration: string };
  peer: string;
  remotePair: string;
  tls?: TlsFiles;
  logger: Logger;
}

/** The link of a primary pair to its secondary. */
export function pairLink(o: PairLinkSource, onSession: PeerLinkOptions['onSession']): PeerLink {
  return new PeerLink({
    address: o.peer,
    ...(o.tls ? { tls: o.tls } : {}),
    remotePair: o.remotePair,
    volumeBytes: o.volume.size,
    blockSize: o.tracker.layout.blockSize,
    generation: () => o.meta.generation,
    syncedPeerGeneration: () => o.meta.syncedPeerGeneration,
    logger: o.logger,
    onSession,
  });
}

interface Pending {
  resolve(): void;
  reject(err: Error): void;
}

interface OpenStream {
  call: ClientDuplexStream<BlockFrame, FrameAck__Output>;
  pending: Map<number, Pending>;
}

/**
 * The primary's connection to its secondary: handshake, then one stream for
 * foreground writes and one for resync, each on its own channel so that bulk data
 * never delays a foreground acknowledgement. Any failure ends the session and the
 * link reconnects with capped, jittered backoff — it never gives up (no "suspended").
 */
export class PeerLink {
  readonly #opts: PeerLinkOptions;
  // Capped at 1 s: a returning secondary is found within about a second, which bounds
  // how long an outage outlives its cause; a refused or unanswered attempt costs little.
  readonly #backoff = new Backoff({ maxMs: 1000 });
  #clients: { control: ReplicationServiceClient; mirror: ReplicationServiceClient; resync: ReplicationServiceClient } | null = null;
  #session = '';
  #streams: Partial<Record<StreamKind, OpenStream>> = {};
  #sequence = 0;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  retries = 0;
  lastError = '';

  constructor(opts: PeerLinkOptions) {
    this.#opts = opts;
  }

  get connected(): boolean {
    return this.#session !== '';
  }

  get sessionId(): string {
    return this.#session;
  }

  start(): void {
    const Ctor = loadReplicationProto().blockmirror.replication.v1.ReplicationService;
    const creds = channelCredentials(this.#opts.address, this.#opts.tls);
    // Separate subchannels: each client gets its own TCP connection.
    // Flow-control window well above HTTP/2's default 64 KiB: with it, a 1 MiB frame
    // would wait for window updates several times per frame.
    const own = {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': 64 << 20,
      'grpc.max_send_message_length': 64 << 20,
      'grpc-node.flow_control_window': PEER_FLOW_CONTROL_WINDOW,
      // The channel's own reconnect backoff (1 s growing to 120 s by default) would
      // fail our handshakes fast for minutes after an outage; ours paces the retries.
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
    };
    this.#clients = {
      control: new Ctor(this.#opts.address, creds, own),
      mirror: new Ctor(this.#opts.address, creds, own),
      resync: new Ctor(this.#opts.address, creds, own),
    };
    void this.#connect();
  }

  /** Sends a frame; resolves when the secondary has it durably. */
  send(kind: StreamKind, frame: Omit<BlockFrame, 'sessionId' | 'sequence'>): Promise<void> {
    const s = this.#streams[kind];
    if (!this.connected || s === undefined) return Promise.reject(new PeerUnavailableError('not connected'));
    const sequence = ++this.#sequence;
    return new Promise<void>((resolve, reject) => {
      s.pending.set(sequence, { resolve, reject });
      s.call.write({ ...frame, sessionId: this.#session, sequence });
    });
  }

  /** Tells the secondary it now holds a complete image of this generation. */
  markSynced(): Promise<void> {
    const c = this.#clients?.control;
    if (!c || !this.connected) return Promise.reject(new PeerUnavailableError('not connected'));
    return new Promise((resolve, reject) => {
      c.MarkSynced({ pairId: this.#opts.remotePair, sessionId: this.#session }, { deadline: new Date(Date.now() + 5000) }, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Async mode: asks the secondary to apply a staged consistency group; resolves once applied there. */
  commitGroup(req: CommitGroupRequest, signal?: AbortSignal): Promise<void> {
    const c = this.#clients?.control;
    if (!c || !this.connected) return Promise.reject(new PeerUnavailableError('not connected'));
    return new Promise((resolve, reject) => {
      const call = c.CommitGroup(req, (err) => (err ? reject(new PeerUnavailableError(`group commit refused: ${err.details || err.message}`)) : resolve()));
      signal?.addEventListener('abort', () => call.cancel(), { once: true });
    });
  }

  /** Ends the session (a failed write, a stalled peer) and reconnects. */
  fail(reason: string): void {
    if (!this.connected) return;
    this.#drop(reason);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#drop('link closed');
    if (this.#clients) for (const c of Object.values(this.#clients)) c.close();
  }

  async #connect(): Promise<void> {
    if (this.#closed || this.#clients === null) return;
    const c = this.#clients;
    try {
      const hs = await new Promise<HandshakeResponse__Output>((resolve, reject) => {
        c.control.Handshake(
          {
            pairId: this.#opts.remotePair,
            volumeBytes: this.#opts.volumeBytes,
            blockSize: this.#opts.blockSize,
            primaryGeneration: this.#opts.generation(),
            syncedSecondaryGeneration: this.#opts.syncedPeerGeneration(),
          },
          { deadline: new Date(Date.now() + (this.#opts.handshakeTimeoutMs ?? 5000)) },
          (err, res) => (err || !res ? reject(err ?? new Error('empty handshake answer')) : resolve(res)),
        );
      });
      if (this.#closed) return;
      this.#session = hs.sessionId;
      this.#streams = { mirror: this.#open('mirror', c.mirror), resync: this.#open('resync', c.resync) };
      this.#backoff.reset();
      this.lastError = '';
      this.#opts.logger.info('peer session started', { peer: this.#opts.address, fullSyncRequired: hs.fullSyncRequired });
      this.#opts.onSession(hs);
    } catch (err) {
      this.#retryLater(((err as { details?: string }).details || (err as Error).message).replace(/\s*Resolution note:\s*$/, ''));
    }
  }

  #open(kind: StreamKind, client: ReplicationServiceClient): OpenStream {
    const md = new Metadata();
    md.set(SESSION_METADATA, this.#session);
    md.set(PAIR_METADATA, this.#opts.remotePair);
    const call = kind === 'mirror' ? client.Mirror(md) : client.Resync(md);
    const s: OpenStream = { call, pending: new Map() };
    const session = this.#session;
    call.on('data', (ack: FrameAck__Output) => {
      const p = s.pending.get(ack.sequence);
      if (!p) return;
      s.pending.delete(ack.sequence);
      if (ack.error === '') p.resolve();
      else p.reject(new PeerUnavailableError(`secondary refused frame ${ack.sequence}: ${ack.error}`));
    });
    const end = (why: string): void => {
      if (this.#session === session) this.#drop(why);
    };
    call.on('error', (err: Error & { details?: string }) => end(`${kind} stream: ${err.details || err.message}`));
    call.on('end', () => end(`${kind} stream ended`));
    return s;
  }

  #drop(reason: string): void {
    const streams = this.#streams;
    this.#streams = {};
    const wasConnected = this.#session !== '';
    if (!wasConnected && !this.#closed) return; // already dropped; a reconnect is scheduled
    this.#session = '';
    for (const s of Object.values(streams)) {
      for (const p of s.pending.values()) p.reject(new PeerUnavailableError(reason));
      s.pending.clear();
      s.call.cancel();
    }
    if (wasConnected) {
      this.#opts.logger.warn('peer session ended', { peer: this.#opts.address, reason });
      this.#opts.onSession(null, reason);
    }
    if (!this.#closed) this.#retryLater(reason);
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
