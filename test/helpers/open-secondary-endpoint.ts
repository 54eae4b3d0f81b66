import { join } from 'node:path';
import type { Logger } from 'winston';
import { DirtyTracker } from '../../sidecar/bitmap/dirty-tracker.js';
import { GroupJournal } from '../../sidecar/replication/secondary/group-journal.js';
import { PairMeta } from '../../sidecar/replication/lineage/pair-meta.js';
import { SecondaryEndpoint } from '../../sidecar/replication/secondary/secondary-endpoint.js';
import type { Volume } from '../../sidecar/volume/volume.js';

/**
 * A secondary endpoint on `volume` with its state in `dir` (metadata, journal, dirty log of
 * divergent blocks), as a secondary pair makes one; for unit tests of the peer protocol.
 */
export async function openSecondaryEndpoint(name: string, volume: Volume, blockSize: number, dir: string, logger: Logger): Promise<SecondaryEndpoint> {
  const divergent = await DirtyTracker.open({ path: join(dir, 'dirty.log'), volumeBytes: volume.size, blockSize, sweepIntervalMs: 0 });
  const meta = await PairMeta.open(dir, 'secondary');
  const journal = await GroupJournal.open(join(dir, 'journal'), volume);
  return new SecondaryEndpoint(name, { volume, blockSize, meta, journal, divergent, logger });
}
