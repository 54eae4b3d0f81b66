import { REPLICATE_KEY } from '../csi/replication-opt-in.js';
import { DeviceInUseError } from '../errors.js';
import type { DeviceHolder, DeviceUsage } from './device-usage.js';

/** The node splice that maps a block device: its volume name and its own dm devices. */
export interface SpliceHolders {
  pv: string;
  /** /dev/mapper/<name> of the splice's stable top device, for messages. */
  top: string;
  /** Names of the device-mapper devices the splice stacks on the volume. */
  devices: ReadonlySet<string>;
}

export interface DeviceRefusalOptions {
  role?: 'primary' | 'secondary';
  /** The splice that maps the device, or null when none does. */
  splice: SpliceHolders | null;
}

/**
 * Why a pair must not take the block device `path`, used as `usage` says, or null when
 * it may. Without a splice, the caller's exclusive open already failed: whatever usage
 * shows (maybe nothing visible from here) is the reason. With a splice, only the splice's
 * own dm devices may hold it, and nothing may have it mounted directly.
 */
export function deviceRefusal(path: string, usage: DeviceUsage, opts: DeviceRefusalOptions): DeviceInUseError | null {
  const { splice } = opts;
  if (splice !== null) {
    const foreign = usage.holders.filter((h) => !splice.devices.has(h.name));
    if (usage.mounts.length === 0 && foreign.length === 0) return null;
    const what = usage.mounts.length > 0 ? `mounted directly at ${usage.mounts.join(', ')}` : `held by ${foreign.map(holderName).join(', ')}`;
    return new DeviceInUseError(
      `device ${path} is staged through blockmirror's splice as ${splice.top} (volume ${splice.pv}) but also ${what}: writes there would not pass blockmirror's tap; use ${splice.top} instead`,
      { device: path, mounts: usage.mounts, holders: foreign.map((h) => h.name) },
    );
  }
  const why =
    usage.mounts.length > 0
      ? `is mounted at ${usage.mounts.join(', ')}`
      : usage.holders.length > 0
        ? `is held by ${usage.holders.map(holderName).join(', ')}`
        : 'is open exclusively by another program (or mounted in another mount namespace)';
  const undo = usage.mounts.length > 0 ? 'unmount it' : usage.holders.length > 0 ? 'remove what holds it' : 'stop what holds it';
  const message =
    opts.role === 'secondary'
      ? `device ${path} ${why}: a secondary volume is written only by its pair (other writes would be overwritten, and readers would see half-applied data); ${undo} first`
      : `device ${path} ${why}: writes there would not pass blockmirror's tap; stage the volume through the splice (StorageClass parameter ${REPLICATE_KEY}) or ${undo}`;
  return new DeviceInUseError(message, { device: path, mounts: usage.mounts, holders: usage.holders.map((h) => h.name) });
}

function holderName(h: DeviceHolder): string {
  return h.deviceMapper ? `device-mapper device ${h.name}` : h.name;
}
