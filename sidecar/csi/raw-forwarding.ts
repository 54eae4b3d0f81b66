import type { handleUnaryCall, ServerUnaryCall, ServiceDefinition } from '@grpc/grpc-js';
import type { PackageDefinition } from '@grpc/proto-loader';
import type { Logger } from 'winston';
import { toCsiStatus } from './csi-status.js';
import { forwardableMetadata, type DriverCallOptions, type DriverConnection } from './driver-connection.js';

const identity = (b: Buffer): Buffer => b;

/**
 * A service definition that leaves messages encoded: requests reach the handler as the
 * caller's bytes and responses leave as the handler's bytes, so what is forwarded is
 * forwarded byte for byte. Only unary methods (every CSI Identity, Node and Controller
 * RPC is unary).
 */
export function rawUnaryService(definition: PackageDefinition, service: string): ServiceDefinition {
  const def = definition[service];
  if (def === undefined || 'format' in def) throw new Error(`${service} is not a service of the loaded proto`);
  const out: Record<string, ServiceDefinition[string]> = {};
  for (const [name, m] of Object.entries(def)) {
    if (m.requestStream || m.responseStream) continue;
    out[name] = { ...m, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity };
  }
  return out;
}

/** The caller's metadata, deadline and cancellation, for a call made on its behalf. */
export function onBehalfOf(call: ServerUnaryCall<Buffer, Buffer>, signal: AbortSignal, fallbackDeadlineMs?: number): DriverCallOptions {
  const d = call.getDeadline();
  const deadline = d === Infinity && fallbackDeadlineMs !== undefined ? Date.now() + fallbackDeadlineMs : d;
  return { metadata: forwardableMetadata(call.metadata), deadline, signal };
}

/**
 * A raw handler: `work` gets the request bytes and returns the response bytes; errors
 * become CSI statuses (a driver's own status passes through unchanged).
 */
export function rawUnary(method: string, logger: Logger, work: (request: Buffer, call: ServerUnaryCall<Buffer, Buffer>, signal: AbortSignal) => Promise<Buffer>): handleUnaryCall<Buffer, Buffer> {
  return (call, callback) => {
    const ac = new AbortController();
    call.once('cancelled', () => ac.abort());
    work(call.request, call, ac.signal).then(
      (res) => callback(null, res),
      (err: unknown) => callback(toCsiStatus(err, method, logger)),
    );
  };
}

/** Forwards the call to the driver unchanged: request, metadata, deadline, response or status. */
export function forwardUnary(driver: DriverConnection, path: string, logger: Logger): handleUnaryCall<Buffer, Buffer> {
  return rawUnary(path, logger, (request, call, signal) => driver.raw(path, request, onBehalfOf(call, signal)));
}
