import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import winston from 'winston';
import { DirtyTracker } from '../../bitmap/dirty-tracker.js';
import { FakeLink } from '../../../test/helpers/fake-link.js';
import { openTempVolume, type TempVolume } from '../../../test/helpers/temp-volume.js';
import { PairMeta } from '../lineage/pair-meta.js';
import { AsyncReplicator } from './async-replicator.js';
import { ConsistencyGroups, type GroupSettings } from './consistency-groups.js';
import { createReplicator } from './create-replicator.js';
import { SyncReplicator } from './sync-replicator.js';

const MiB = 1 << 20;
const BLOCK = 65536;
const logger = winston.createLogger({ silent: true });

describe('createReplicator', () => {
  let tmp: TempVolume;
  let tracker: DirtyTracker;
  let meta: PairMeta;

  beforeEach(async () => {
    tmp = await openTempVolume('bm-create-', 4 * MiB);
    tracker = await DirtyTracker.open({ path: join(tmp.dir, 'dirty.log'), volumeBytes: 4 * MiB, blockSize: BLOCK, sweepIntervalMs: 0 });
    meta = await PairMeta.open(join(tmp.dir, 'state'), 'primary');
  });

  afterEach(async () => {
    await tracker.close();
    await tmp.remove();
  });

  /** What every replicator needs; its link is a fake, never started. */
  const base = () => ({
    volume: tmp.volume,
    tracker,
    meta,
    peer: 'unused',
    remotePair: 'p',
    logger,
    link: (onSession: ConstructorParameters<typeof FakeLink>[0]) => new FakeLink(onSession),
  });

  it('makes a sync replicator for a sync pair, paused as asked', () => {
    const r = createReplicator({ mode: 'sync', ...base(), paused: true });
    expect(r).toBeInstanceOf(SyncReplicator);
    expect(r.status()).toMatchObject({ state: 'Retrying', lastConsistencyPointTimeMs: 0, group: null });
    r.close();
  });

  it('makes an async replicator that is in its consistency group until it closes', () => {
    const groups = new ConsistencyGroups(logger);
    const settings: GroupSettings = { name: 'g', peer: 'site-b:7000', intervalMs: 0, maxCoordinationMs: 100, maxDrainMs: 1000 };
    const r = createReplicator({ mode: 'async', ...base(), group: { groups, settings } });
    expect(r).toBeInstanceOf(AsyncReplicator);
    expect(r.status().group).toMatchObject({ formed: 0, failed: 0 });
    // Another member must use the same peer: refused before any replicator is made.
    expect(() => createReplicator({ mode: 'async', ...base(), group: { groups, settings: { ...settings, peer: 'elsewhere:7000' } } })).toThrow(/replicates to site-b:7000/);
    r.close();
    // Left: the group is gone, so a member with another peer may form it anew.
    expect(() => groups.check({ ...settings, peer: 'elsewhere:7000' })).not.toThrow();
  });
});
