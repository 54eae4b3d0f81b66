import { createHash } from 'node:crypto';

/** What the splice accepts as a volume name: it becomes /dev/mapper/blockmirror-<pv>. */
export const PV_NAME = /^[a-z0-9]([a-z0-9.-]{0,98}[a-z0-9])?$/;

/**
 * The splice name of a CSI volume. Volume ids are the driver's (any string up to 128
 * bytes): one that is already a valid name is used as is, so that the device-mapper name
 * reads like the PV; any other (upper case, slashes, too long) becomes `v-` and an
 * 80-bit SHA-256 prefix of the id: stable across restarts and nodes, and unique in
 * practice.
 */
export function pvNameForVolume(volumeId: string): string {
  if (PV_NAME.test(volumeId)) return volumeId;
  return `v-${createHash('sha256').update(volumeId, 'utf8').digest('hex').slice(0, 20)}`;
}
