import { InvalidArgumentError, OutOfRangeError } from '../../errors.js';
import type { CapacityRange__Output } from '../../../proto/gen/csi/v1/CapacityRange.js';

/** Size of a volume whose request names no capacity (the file is sparse: it costs nothing until written). */
export const DEFAULT_CAPACITY = 1 << 30;
/** Image sizes are whole 4 KiB blocks: loop devices and filesystems need it. */
const ALIGN = 4096;

/**
 * The size to provision for a CSI capacity range: at least `required_bytes` (or the
 * default), rounded up to 4 KiB, and never above `limit_bytes`.
 */
export function labCapacity(range: CapacityRange__Output | null | undefined): number {
  const required = range?.requiredBytes ?? 0;
  const limit = range?.limitBytes ?? 0;
  if (required < 0 || limit < 0) throw new InvalidArgumentError('capacity_range bytes must not be negative');
  if (limit > 0 && limit < required) throw new InvalidArgumentError(`limit_bytes ${limit} is below required_bytes ${required}`);
  let size = Math.ceil((required > 0 ? required : DEFAULT_CAPACITY) / ALIGN) * ALIGN;
  if (limit > 0 && size > limit) {
    size = Math.floor(limit / ALIGN) * ALIGN;
    if (size < required || size === 0) throw new OutOfRangeError(`no size in whole ${ALIGN}-byte blocks between ${required} and ${limit} bytes`);
  }
  return size;
}

/** Whether an existing volume of `capacity` satisfies the range (CreateVolume's idempotency rule). */
export function capacityFits(capacity: number, range: CapacityRange__Output | null | undefined): boolean {
  const required = range?.requiredBytes ?? 0;
  const limit = range?.limitBytes ?? 0;
  return capacity >= required && (limit === 0 || capacity <= limit);
}
