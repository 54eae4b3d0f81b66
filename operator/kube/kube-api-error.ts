import { BlockmirrorError } from '../../sidecar/errors.js';

/** A failed API server call, with its HTTP status (0: no answer). */
export class KubeApiError extends BlockmirrorError {
  readonly status: number;
  constructor(message: string, status: number, cause?: unknown) {
    super(status === 404 ? 'NOT_FOUND' : status === 409 ? 'CONFLICT' : 'UNAVAILABLE', message, { cause });
    this.name = 'KubeApiError';
    this.status = status;
  }
}
