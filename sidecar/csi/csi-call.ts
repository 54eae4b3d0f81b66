import { status as GrpcStatus } from '@grpc/grpc-js';
import type { MethodDefinition, PackageDefinition } from '@grpc/proto-loader';
import { InvalidArgumentError } from '../errors.js';
import { parseCsiEndpoint } from './csi-endpoint.js';
import { DriverCallError } from './csi-status.js';
import { DriverConnection } from './driver-connection.js';

/**
 * A CSI method by name: `NodeStageVolume`, `Node.NodeStageVolume` or
 * `csi.v1.Node/NodeStageVolume` (a leading slash is fine). Unary methods only.
 */
export function findCsiMethod(definition: PackageDefinition, name: string): MethodDefinition<object, object> {
  const want = name.replace(/^\//, '');
  const matches: MethodDefinition<object, object>[] = [];
  for (const [service, def] of Object.entries(definition)) {
    if ('format' in def) continue;
    const short = service.split('.').pop()!;
    for (const [method, m] of Object.entries(def)) {
      if (m.requestStream || m.responseStream) continue;
      if ([method, `${short}.${method}`, `${service}/${method}`, `${service}.${method}`].includes(want)) matches.push(m as MethodDefinition<object, object>);
    }
  }
  if (matches.length !== 1) throw new InvalidArgumentError(matches.length === 0 ? `no unary CSI method ${JSON.stringify(name)}` : `${name} is ambiguous: name the service too`);
  return matches[0]!;
}

/** The outcome of one call: the response, or the gRPC status the server answered with. */
export type CsiCallResult = { ok: true; response: object } | { ok: false; code: string; details: string };

/**
 * Calls one CSI method on `endpoint` with a request given as the JSON form of the
 * message (proto-loader's: camelCase fields, enums by name) and gives the response in
 * the same form. For scripts and tests that drive a CSI socket as the kubelet would.
 */
export async function csiCall(definition: PackageDefinition, endpoint: string, method: string, request: object, opts: { timeoutMs?: number } = {}): Promise<CsiCallResult> {
  const m = findCsiMethod(definition, method);
  const conn = new DriverConnection(parseCsiEndpoint(endpoint).address);
  try {
    const res = await conn.raw(m.path, m.requestSerialize(request), { deadline: Date.now() + (opts.timeoutMs ?? 30_000) });
    return { ok: true, response: m.responseDeserialize(res) };
  } catch (err) {
    if (err instanceof DriverCallError) return { ok: false, code: GrpcStatus[err.grpcCode] ?? String(err.grpcCode), details: err.details };
    throw err;
  } finally {
    conn.close();
  }
}
