import { stat } from 'node:fs/promises';
import { mountsAt } from '../csi/mount-table.js';
import { REPLICATE_KEY } from '../csi/replication-opt-in.js';
import { InvalidArgumentError } from '../errors.js';
import { deviceRefusal, type SpliceHolders } from './device-refusal.js';
import { deviceUsage, type DeviceUsageOptions } from './device-usage.js';
import type { ZeroerLogger } from './range-zeroer.js';
import { Volume } from './volume.js';

export interface PairVolumeOptions extends DeviceUsageOptions {
  role?: 'primary' | 'secondary';
  /** The splice record of this node that names the block device `rdev`, if any. */
  spliceHolders?(rdev: number): Promise<SpliceHolders | null>;
  /** Told once when the volume cannot punch holes (zero runs are then written as zeroes). */
  logger?: ZeroerLogger;
}

/**
 * Opens a pair's volume so that nothing writes around the pair:
 * - a block device no splice maps is opened exclusively (O_EXCL): refused while mounted
 *   or claimed, and while the pair holds it, a mount or dm table over it fails (for a
 *   secondary this is the sidecar's own fencing);
 * - a block device the node splice maps is held by the splice's dm devices (dm-era while
 *   staged), which later detaches must be able to create again: it is opened shared,
 *   after checking that nothing else holds it or has it mounted;
 * - a regular file is opened as it is (tests, state-dir volumes);
 * - a directory is refused: writes through a filesystem mounted there would never pass
 *   the pair's tap, and the pair would report a secondary in sync that is not.
 * Refusals are DeviceInUseError (in use) or InvalidArgumentError (a directory).
 */
export async function openPairVolume(path: string, opts: PairVolumeOptions = {}): Promise<Volume> {
  const st = await stat(path).catch((err: Error) => {
    throw new InvalidArgumentError(`cannot open volume ${path}: ${err.message}`, { cause: err });
  });
  if (st.isDirectory()) throw new InvalidArgumentError(await directoryMessage(path, opts));
  const zeroing = opts.logger ? { logger: opts.logger } : {};
  if (!st.isBlockDevice()) return Volume.open(path, zeroing);
  const splice = (await opts.spliceHolders?.(st.rdev)) ?? null;
  if (splice === null) {
    try {
      return await Volume.open(path, { exclusive: true, ...zeroing });
    } catch (err) {
      if (((err as Error).cause as NodeJS.ErrnoException | undefined)?.code !== 'EBUSY') throw err;
      throw deviceRefusal(path, await deviceUsage(st.rdev, opts), { splice, ...(opts.role ? { role: opts.role } : {}) })!;
    }
  }
  const refused = deviceRefusal(path, await deviceUsage(st.rdev, opts), { splice });
  if (refused !== null) throw refused;
  // Shared: the splice's dm-era claims the device exclusively while staged or detached.
  return Volume.open(path, zeroing);
}

async function directoryMessage(path: string, opts: DeviceUsageOptions): Promise<string> {
  const mounts = await mountsAt(path, opts.mountinfoPath).catch(() => []);
  const source = mounts.at(-1)?.source;
  const what = source !== undefined ? `the mount point of ${source}` : 'a directory';
  return `volume ${path} is ${what}: writes through a filesystem there would not pass blockmirror's tap; give the pair the block device, staged through the splice (StorageClass parameter ${REPLICATE_KEY})`;
}
