import { status as GrpcStatus, type ServerDuplexStream, type ServerErrorResponse } from '@grpc/grpc-js';
import type { Logger } from 'winston';
import type { CommitGroupRequest__Output } from '../../../proto/gen/blockmirror/replication/v1/CommitGroupRequest.js';
import type { BlockFrame__Output } from '../../../proto/gen/blockmirror/replication/v1/BlockFrame.js';
import type { FrameAck } from '../../../proto/gen/blockmirror/replication/v1/FrameAck.js';
import type { HandshakeRequest__Output } from '../../../proto/gen/blockmirror/replication/v1/HandshakeRequest.js';
import type { HandshakeResponse__Output } from '../../../proto/gen/blockmirror/replication/v1/HandshakeResponse.js';
import type { ReplicationServiceHandlers } from '../../../proto/gen/blockmirror/replication/v1/ReplicationService.js';
import { BlockmirrorError } from '../../errors.js';
import { peerRefusal } from '../../identity/peer-refusal.js';
import type { AuthContext } from '../../identity/auth-context.js';
import type { FrameStream, SecondaryEndpoint } from './secondary-endpoint.js';
import { PAIR_METADATA, SESSION_METADATA } from '../wire/peer-protocol.js';
import type { SitePairLocator } from './site-pair-locator.js';

/** What answers a handshake for a pair: its secondary endpoint, or a primary that says what it holds. */
export interface HandshakeResponder {
  handshake(req: HandshakeRequest__Output): Promise<HandshakeResponse__Output>;
}

export interface ReplicationServiceOptions {
  /** The secondary endpoint of a pair, if this sidecar has one by that name. */
  lookup(pairId: string): SecondaryEndpoint | undefined;
  /**
   * The one peer identity a pair held here accepts (its spec's, else the sidecar's
   * default); undefined: any peer identity. Checked on every call naming the pair.
   */
  remoteIdentity?(pairId: string): string | undefined;
  /**
   * What answers a handshake for a pair of either role; default `lookup`. A primary
   * answers with its generation ids and no session: so two primaries learn which of them
   * is stale, or that they split.
   */
  responder?(pairId: string): HandshakeResponder | undefined;
  logger: Logger;
  /** Async mode: applies a complete consistency group (see GroupCommitter). */
  commitGroup(req: CommitGroupRequest__Output): Promise<void>;
  /**
   * A secondary says it is ready (PeerReady): the primary pair by that name dials it now.
   * False when no primary pair here has the name.
   */
  peerReady?(pairId: string): boolean;
  /** A peer was refused; `reason` is a short stable word for metrics. */
  onRefused?(reason: string): void;
  /** The other sidecars of this site: a handshake for a pair one of them holds is redirected there. */
  site?: SitePairLocator;
  onRedirected?(): void;
}

// Frames applied ahead of the acknowledgement stream before reading pauses.
const MAX_QUEUED_FRAMES = 16;

/** The secondary side of the peer protocol. */
export function replicationService(opts: ReplicationServiceOptions): ReplicationServiceHandlers {
  const refuse = (reason: string, code: GrpcStatus, message: string): ServerErrorResponse => {
    opts.logger.warn('peer refused', { reason, error: message });
    opts.onRefused?.(reason);
    return Object.assign(new Error(message), { code, details: message });
  };
  // Undefined when the caller's identity may act on the pair; else the refusal to send.
  const denied = (call: { getAuthContext(): AuthContext }, pairId: string): ServerErrorResponse | undefined => {
    const why = peerRefusal(call.getAuthContext(), { pairId, expected: opts.remoteIdentity?.(pairId) });
    return why === undefined ? undefined : refuse('identity', GrpcStatus.PERMISSION_DENIED, why);
  };

  const stream = (kind: FrameStream) => (call: ServerDuplexStream<BlockFrame__Output, FrameAck>): void => {
    const pairId = String(call.metadata.get(PAIR_METADATA)[0] ?? '');
    const session = String(call.metadata.get(SESSION_METADATA)[0] ?? '');
    const notYours = denied(call, pairId);
    if (notYours !== undefined) {
      call.destroy(notYours);
      return;
    }
    const ep = opts.lookup(pairId);
    if (ep === undefined || !ep.isSession(session)) {
      call.destroy(refuse('session', GrpcStatus.PERMISSION_DENIED, `no session ${session} for pair ${pairId}`));
      return;
    }
    // Frames are written strictly in arrival order: the primary sends overlapping
    // writes in the order it completed them, and that order must hold here. Settling
    // (fdatasync for durable frames) overlaps the following writes, so a burst of
    // durable frames shares one fdatasync. A durable frame's acknowledgement still
    // means every frame written before it is durable.
    let writes: Promise<void> = Promise.resolve();
    let acks: Promise<void> = Promise.resolve();
    let queued = 0;
    const fail = (frame: BlockFrame__Output, err: unknown): string => {
      const error = err instanceof BlockmirrorError ? `${err.code}: ${err.message}` : `apply failed: ${(err as Error).message}`;
      const corrupt = err instanceof BlockmirrorError && err.code === 'FRAME_CORRUPT';
      // Apply failures (a full disk) are logged once per episode by the endpoint; a
      // line per refused frame would flood the log while the primary retries.
      if (corrupt) opts.logger.warn('frame refused', { pair: pairId, sequence: frame.sequence, error });
      else opts.logger.debug('frame refused', { pair: pairId, sequence: frame.sequence, error });
      opts.onRefused?.(corrupt ? 'crc' : 'apply');
      return error;
    };
    call.on('data', (frame: BlockFrame__Output) => {
      // The pair was deleted, recreated or restarted in another role since this stream
      // began: its endpoint (and volume) are closed. Answering every frame with an apply
      // error would keep the primary in this dead session for good; ending the stream
      // makes it reconnect and handshake with whatever holds the name now.
      if (opts.lookup(pairId) !== ep) {
        ep.endSession(session);
        if (!call.destroyed) call.destroy(refuse('session', GrpcStatus.UNAVAILABLE, `pair ${pairId} was stopped or replaced since session ${session} began: reconnect`));
        return;
      }
      if (++queued >= MAX_QUEUED_FRAMES) call.pause();
      const written = writes.then(() => ep.write(frame, kind));
      writes = written.catch(() => undefined);
      const settled = written.then(() => ep.settle(frame)).then(
        () => '',
        (err: unknown) => fail(frame, err),
      );
      // Each acknowledgement goes out as soon as its frame is settled: a plain frame must
      // not wait behind a durable one's fdatasync (which writes back everything before it).
      acks = Promise.all([acks, settled.then((error) => {
        if (!call.destroyed) call.write({ sequence: frame.sequence, error });
        if (--queued < MAX_QUEUED_FRAMES / 2) call.resume();
      })]).then(() => undefined);
    });
    call.on('end', () => void acks.then(() => call.end()));
    // Either stream ending ends the session: the primary reconnects with a new one.
    call.on('error', () => ep.endSession(session));
    call.on('close', () => ep.endSession(session));
    call.on('cancelled', () => ep.endSession(session));
  };

  // A pair this sidecar does not hold: the holder's peer address when another sidecar of
  // the site holds it, else NOT_FOUND with `notHere`.
  const redirect = (pairId: string, notHere: string, done: (err: ServerErrorResponse | null, holder: string) => void): void => {
    const site = opts.site;
    if (site === undefined) return done(refuse('pair', GrpcStatus.NOT_FOUND, notHere), '');
    site.holderOf(pairId).then(
      (holder) => {
        if (holder === undefined) return done(refuse('pair', GrpcStatus.NOT_FOUND, `no sidecar of this site holds pair ${JSON.stringify(pairId)}`), '');
        opts.logger.info('peer redirected', { pair: pairId, holder });
        opts.onRedirected?.();
        done(null, holder);
      },
      (err: Error) => done(refuse('lookup', GrpcStatus.UNAVAILABLE, `pair ${JSON.stringify(pairId)} is not here and the site's sidecars cannot be looked up: ${err.message}`), ''),
    );
  };

  return {
    Handshake(call, callback) {
      const pairId = call.request.pairId;
      const ep = opts.responder ? opts.responder(pairId) : opts.lookup(pairId);
      // A pair held here answers only its configured remote; one held elsewhere is only
      // redirected (the holder checks), so a peer learns no more than the site's Leases say.
      const notYours = denied(call, ep === undefined ? '' : pairId);
      if (notYours !== undefined) return callback(notYours);
      if (ep === undefined) {
        redirect(pairId, `no secondary pair ${JSON.stringify(pairId)} here`, (err, holder) =>
          err !== null ? callback(err) : callback(null, { sessionId: '', secondaryGeneration: '', fullSyncRequired: false, redirect: holder }),
        );
        return;
      }
      ep.handshake(call.request).then(
        (res) => {
          if (res.verdict !== '') opts.onRefused?.(res.verdict);
          callback(null, res);
        },
        (err: Error) => callback(refuse('handshake', GrpcStatus.FAILED_PRECONDITION, err.message)),
      );
    },
    Mirror: stream('mirror'),
    Resync: stream('resync'),
    CommitGroup(call, callback) {
      for (const m of call.request.members) {
        const notYours = denied(call, m.pairId);
        if (notYours !== undefined) return callback(notYours);
      }
      opts.commitGroup(call.request).then(
        () => callback(null, {}),
        (err: Error) => {
          opts.logger.warn('group refused', { consistencyGroup: call.request.consistencyGroup, group: call.request.group, error: err.message });
          callback(Object.assign(new Error(err.message), { code: GrpcStatus.FAILED_PRECONDITION, details: err.message }));
        },
      );
    },
    PeerReady(call, callback) {
      const pairId = call.request.pairId;
      // Checked like a handshake: only the pair's configured remote may hurry it (a hint
      // that makes it dial sooner, never one that changes what a session does).
      const held = (opts.responder ? opts.responder(pairId) : opts.lookup(pairId)) !== undefined;
      const notYours = denied(call, held ? pairId : '');
      if (notYours !== undefined) return callback(notYours);
      if (!held) return redirect(pairId, `no pair ${JSON.stringify(pairId)} here`, (err, holder) => (err !== null ? callback(err) : callback(null, { redirect: holder })));
      // Not a refusal of the caller (no warning, no refusal counted): in a planned
      // switchover the demoted side announces itself before the other is promoted.
      if (opts.peerReady?.(pairId) !== true) {
        const why = `pair ${JSON.stringify(pairId)} is not a primary with a peer here`;
        return callback(Object.assign(new Error(why), { code: GrpcStatus.FAILED_PRECONDITION, details: why }));
      }
      callback(null, {});
    },
    MarkSynced(call, callback) {
      const notYours = denied(call, call.request.pairId);
      if (notYours !== undefined) return callback(notYours);
      const ep = opts.lookup(call.request.pairId);
      if (ep === undefined) return callback(refuse('pair', GrpcStatus.NOT_FOUND, `no secondary pair ${call.request.pairId}`));
      ep.markSynced(call.request.sessionId, call.request.generations, call.request.primaryDemoting).then(
        () => callback(null, {}),
        (err: Error) => {
          if (err instanceof BlockmirrorError && err.code === 'GEOMETRY_MISMATCH') return callback(refuse('session', GrpcStatus.PERMISSION_DENIED, err.message));
          // The session is fine but the record could not be written (a full state disk).
          ep.noteFailure(`recording the complete image failed: ${err.message}`);
          callback(Object.assign(new Error(err.message), { code: GrpcStatus.FAILED_PRECONDITION, details: err.message }));
        },
      );
    },
  };
}

