// Named errors with a stable `code`, shared by the sidecar's modules. Callers branch on
// `code`, never on message text.

export type BlockmirrorErrorCode =
  | 'INVALID_ARGUMENT'
  | 'OUT_OF_RANGE'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'STATE_CORRUPT'
  | 'GEOMETRY_MISMATCH'
  | 'VOLUME_IO'
  | 'CLOSED'
  | 'FRAME_CORRUPT'
  | 'UNAVAILABLE'
  | 'INTERNAL'
  | 'FAILED_PRECONDITION'
  | 'CONFLICT'
  | 'DRIVER_CALL'
  // A block device something else holds (a mount, device-mapper, md, another exclusive
  // opener): writes through that holder would not pass blockmirror's tap.
  | 'DEVICE_IN_USE'
  // The peer answered but could not apply what it was sent (disk full, I/O error).
  | 'PEER_REFUSED'
  // A caller whose certificate identity may not make this call (gRPC PERMISSION_DENIED).
  | 'PERMISSION_DENIED'
  // A volume or socket path outside what this sidecar is configured to touch.
  | 'PATH_NOT_ALLOWED';

export class BlockmirrorError extends Error {
  readonly code: BlockmirrorErrorCode;
  constructor(code: BlockmirrorErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BlockmirrorError';
    this.code = code;
  }
}

export class InvalidArgumentError extends BlockmirrorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_ARGUMENT', message, options);
    this.name = 'InvalidArgumentError';
  }
}

export class OutOfRangeError extends BlockmirrorError {
  constructor(message: string) {
    super('OUT_OF_RANGE', message);
    this.name = 'OutOfRangeError';
  }
}

export class FailedPreconditionError extends BlockmirrorError {
  constructor(message: string) {
    super('FAILED_PRECONDITION', message);
    this.name = 'FailedPreconditionError';
  }
}

export class PermissionDeniedError extends BlockmirrorError {
  constructor(message: string) {
    super('PERMISSION_DENIED', message);
    this.name = 'PermissionDeniedError';
  }
}

export class NotFoundError extends BlockmirrorError {
  constructor(message: string) {
    super('NOT_FOUND', message);
    this.name = 'NotFoundError';
  }
}

export class AlreadyExistsError extends BlockmirrorError {
  constructor(message: string) {
    super('ALREADY_EXISTS', message);
    this.name = 'AlreadyExistsError';
  }
}

export class StateCorruptError extends BlockmirrorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('STATE_CORRUPT', message, options);
    this.name = 'StateCorruptError';
  }
}

export class GeometryMismatchError extends BlockmirrorError {
  constructor(message: string) {
    super('GEOMETRY_MISMATCH', message);
    this.name = 'GeometryMismatchError';
  }
}

export class VolumeIoError extends BlockmirrorError {
  /** errno code of the failed system call (EIO, ENOSPC, ...), when known. */
  readonly errno: string | undefined;
  constructor(message: string, options?: { cause?: unknown; errno?: string }) {
    super('VOLUME_IO', message, options);
    this.name = 'VolumeIoError';
    this.errno = options?.errno;
  }
}

export class ClosedError extends BlockmirrorError {
  constructor(message: string) {
    super('CLOSED', message);
    this.name = 'ClosedError';
  }
}

/** A pair's block device is mounted or held by something other than blockmirror. */
export class DeviceInUseError extends BlockmirrorError {
  readonly device: string;
  /** Where it is mounted (in this mount namespace) and what holds it, as found. */
  readonly mounts: readonly string[];
  readonly holders: readonly string[];
  constructor(message: string, detail: { device: string; mounts?: readonly string[]; holders?: readonly string[] }, options?: { cause?: unknown }) {
    super('DEVICE_IN_USE', message, options);
    this.name = 'DeviceInUseError';
    this.device = detail.device;
    this.mounts = detail.mounts ?? [];
    this.holders = detail.holders ?? [];
  }
}

/**
 * A path a control call named (a pair's volume, its NBD socket, a device to splice) lands
 * outside what this sidecar may touch: its allowed volume prefixes, the devices its
 * splice and fences hold, its run directory. Refused before anything is opened or
 * unlinked. The request is well formed; this node's configuration forbids it.
 */
export class PathNotAllowedError extends BlockmirrorError {
  readonly path: string;
  /** Where the path landed once symlinks and `..` were followed ('' when it does not exist). */
  readonly resolved: string;
  constructor(message: string, detail: { path: string; resolved: string }) {
    super('PATH_NOT_ALLOWED', message);
    this.name = 'PathNotAllowedError';
    this.path = detail.path;
    this.resolved = detail.resolved;
  }
}
