import type { Server as GrpcServer } from '@grpc/grpc-js';
import type { Http2Server, ServerHttp2Session, Settings } from 'node:http2';
import { BlockmirrorError } from '../errors.js';

/** grpc-js internals this module relies on (checked at run time: an upgrade that renames them fails loudly). */
interface GrpcServerInternals {
  commonServerOptions: { settings?: Settings };
  _sessionHandler(server: Http2Server): (session: ServerHttp2Session) => void;
  _channelzSessionHandler(server: Http2Server): (session: ServerHttp2Session) => void;
}

export interface FlowControlStats {
  /** Sessions whose connection window was raised. */
  sessions: number;
  /** The connection receive window of the latest session, after raising it. */
  lastLocalWindowSize: number;
}

export class GrpcInternalsChangedError extends BlockmirrorError {
  constructor(what: string) {
    super('INTERNAL', `@grpc/grpc-js no longer has ${what}: the peer server's flow-control window cannot be raised`);
    this.name = 'GrpcInternalsChangedError';
  }
}

/**
 * Raises the HTTP/2 receive windows (per stream and per connection) of a grpc-js server
 * to `bytes`. grpc-js honours 'grpc-node.flow_control_window' only on the client; its
 * server keeps HTTP/2's 64 KiB, so a sender may have 64 KiB in flight per round trip —
 * and that round trip includes the receiver's event loop, so a busy secondary capped
 * replication near 100 MB/s. Call before any listener or connection injector is made.
 */
export function raiseServerFlowControlWindow(server: GrpcServer, bytes: number): FlowControlStats {
  const internals = server as unknown as Partial<GrpcServerInternals>;
  const opts = internals.commonServerOptions;
  if (typeof opts !== 'object' || opts === null) throw new GrpcInternalsChangedError('Server.commonServerOptions');
  // Per stream: every new stream starts with this window (SETTINGS_INITIAL_WINDOW_SIZE).
  opts.settings = { ...opts.settings, initialWindowSize: bytes };
  const stats: FlowControlStats = { sessions: 0, lastLocalWindowSize: 0 };
  // Per connection: no setting exists, only a WINDOW_UPDATE once the session is up.
  for (const name of ['_sessionHandler', '_channelzSessionHandler'] as const) {
    const original = internals[name];
    if (typeof original !== 'function') throw new GrpcInternalsChangedError(`Server.${name}`);
    internals[name] = (http2Server: Http2Server) => {
      const handle = original.call(server, http2Server);
      return (session: ServerHttp2Session) => {
        session.setLocalWindowSize(bytes);
        stats.sessions++;
        stats.lastLocalWindowSize = session.state.localWindowSize ?? 0;
        handle(session);
      };
    };
  }
  return stats;
}
