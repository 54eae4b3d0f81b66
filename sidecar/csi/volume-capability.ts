import { InvalidArgumentError } from '../errors.js';
import type { VolumeCapability__Output } from '../../proto/gen/csi/v1/VolumeCapability.js';

export type AccessType = 'mount' | 'block';

/** How a capability wants the volume: a filesystem or a raw block device. */
export function accessTypeOf(cap: VolumeCapability__Output | null | undefined): AccessType | undefined {
  if (cap?.block != null) return 'block';
  if (cap?.mount != null) return 'mount';
  return undefined;
}

/** The capability's access type; INVALID_ARGUMENT when the capability or its type is missing. */
export function requireAccessType(cap: VolumeCapability__Output | null | undefined): AccessType {
  if (cap == null) throw new InvalidArgumentError('volume_capability is required');
  const t = accessTypeOf(cap);
  if (t === undefined) throw new InvalidArgumentError('volume_capability has neither block nor mount access type');
  return t;
}

/** INVALID_ARGUMENT unless `value` is a non-empty string. */
export function requireField(value: string | undefined, name: string): string {
  if (value === undefined || value === '') throw new InvalidArgumentError(`${name} is required`);
  return value;
}
