import type { VolumeCapability__Output } from '../../../proto/gen/csi/v1/VolumeCapability.js';
import { accessTypeOf } from '../volume-capability.js';

/** One node, one writer: the access modes a loop device on one host can honour. */
const ACCESS_MODES = new Set<string>(['SINGLE_NODE_WRITER', 'SINGLE_NODE_READER_ONLY']);
/** Filesystems the node formats and mounts ('' is the default, ext4). */
const FS_TYPES = new Set(['', 'ext4', 'ext3', 'ext2']);

/** Why the lab driver cannot provide `cap`, or undefined when it can. */
export function unsupportedCapability(cap: VolumeCapability__Output): string | undefined {
  const type = accessTypeOf(cap);
  if (type === undefined) return 'a volume capability needs an access type (block or mount)';
  const mode = cap.accessMode?.mode;
  if (mode === undefined || !ACCESS_MODES.has(String(mode))) return `access mode ${String(mode ?? 'none')} is not supported (only ${[...ACCESS_MODES].join(', ')})`;
  if (type === 'mount' && !FS_TYPES.has(cap.mount!.fsType)) return `filesystem ${cap.mount!.fsType} is not supported (only ext4, ext3, ext2)`;
  return undefined;
}
