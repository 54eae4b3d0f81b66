import { stat } from 'node:fs/promises';
import type { SpliceHolders } from '../volume/device-refusal.js';
import { SpliceRecords } from './splice-record.js';
import { VolumeSplice } from './volume-splice.js';

/**
 * Looks up the splice record of this node (under `stateDir`) whose volume is the block
 * device `rdev`: compared by device number, so /dev/loop3 and /dev/block/7:3 are one.
 * Records whose device is gone are skipped.
 */
export function spliceHolders(stateDir: string): (rdev: number) => Promise<SpliceHolders | null> {
  const records = new SpliceRecords(stateDir);
  return async (rdev) => {
    for (const r of await records.list()) {
      const st = await stat(r.device).catch(() => null);
      if (st === null || !st.isBlockDevice() || st.rdev !== rdev) continue;
      return { pv: r.pv, top: `/dev/mapper/${VolumeSplice.topName(r.pv)}`, devices: new Set(VolumeSplice.deviceNames(r.pv)) };
    }
    return null;
  };
}
