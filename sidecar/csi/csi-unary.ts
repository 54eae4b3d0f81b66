import { status as GrpcStatus, type handleUnaryCall, type ServerUnaryCall } from '@grpc/grpc-js';
import type { Logger } from 'winston';
import { toCsiStatus } from './csi-status.js';

/**
 * A typed unary handler from an async function: its result is the response, a thrown
 * error becomes the CSI status (toCsiStatus). The call's cancellation is an AbortSignal.
 */
export function csiUnary<Req, Res>(method: string, logger: Logger, work: (request: Req, call: ServerUnaryCall<Req, Res>, signal: AbortSignal) => Promise<Res>): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const ac = new AbortController();
    call.once('cancelled', () => ac.abort());
    logger.debug('CSI call', { method });
    work(call.request, call, ac.signal).then(
      (res) => callback(null, res),
      (err: unknown) => callback(toCsiStatus(err, method, logger)),
    );
  };
}

/** A handler for an RPC the service does not offer (its capabilities do not name it). */
export function csiUnimplemented<Req, Res>(method: string): handleUnaryCall<Req, Res> {
  return (_call, callback) => callback(Object.assign(new Error(`${method} is not implemented`), { code: GrpcStatus.UNIMPLEMENTED, details: `${method} is not implemented` }));
}
