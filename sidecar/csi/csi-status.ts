import { Metadata, status as GrpcStatus, type ServerErrorResponse, type ServiceError } from '@grpc/grpc-js';
import type { Logger } from 'winston';
import { BlockmirrorError } from '../errors.js';

/**
 * A CSI call to the driver failed with this gRPC status. Carried as is to whoever called
 * the proxy: the kubelet must see the driver's own code and message.
 */
export class DriverCallError extends BlockmirrorError {
  readonly grpcCode: GrpcStatus;
  readonly details: string;
  readonly metadata: Metadata;
  constructor(method: string, err: ServiceError) {
    super('DRIVER_CALL', `driver ${method}: ${GrpcStatus[err.code] ?? err.code}: ${err.details}`, { cause: err });
    this.name = 'DriverCallError';
    this.grpcCode = err.code;
    this.details = err.details;
    this.metadata = err.metadata ?? new Metadata();
  }
}

// What CSI callers branch on (the spec's error tables): the codes our errors stand for.
const CODES: Partial<Record<BlockmirrorError['code'], GrpcStatus>> = {
  INVALID_ARGUMENT: GrpcStatus.INVALID_ARGUMENT,
  OUT_OF_RANGE: GrpcStatus.OUT_OF_RANGE,
  NOT_FOUND: GrpcStatus.NOT_FOUND,
  ALREADY_EXISTS: GrpcStatus.ALREADY_EXISTS,
  FAILED_PRECONDITION: GrpcStatus.FAILED_PRECONDITION,
  GEOMETRY_MISMATCH: GrpcStatus.FAILED_PRECONDITION,
  UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  CONFLICT: GrpcStatus.ABORTED,
  STATE_CORRUPT: GrpcStatus.INTERNAL,
  // Host tools (mount, mkfs, losetup): their message is what an operator needs in the
  // kubelet's events.
  INTERNAL: GrpcStatus.INTERNAL,
  VOLUME_IO: GrpcStatus.INTERNAL,
};

/** Only deliberate errors reach the caller with their message; the rest are logged. */
export function toCsiStatus(err: unknown, method: string, logger: Logger): ServerErrorResponse {
  if (err instanceof DriverCallError) return Object.assign(new Error(err.details), { code: err.grpcCode, details: err.details, metadata: err.metadata });
  const code = err instanceof BlockmirrorError ? CODES[err.code] : undefined;
  if (code !== undefined) {
    if (code === GrpcStatus.INTERNAL) logger.warn('CSI call failed', { method, error: (err as Error).message });
    return Object.assign(new Error((err as Error).message), { code, details: (err as Error).message });
  }
  logger.error('CSI call failed', { method, error: (err as Error)?.stack ?? String(err) });
  return Object.assign(new Error('internal error'), { code: GrpcStatus.UNKNOWN, details: 'internal error (see log)' });
}
