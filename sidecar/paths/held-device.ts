import { stat } from 'node:fs/promises';
import type { FenceStore } from '../fence/fence-store.js';
import { spliceHolders } from '../splice/splice-holders.js';
import type { HeldDevice } from './path-policy.js';

/**
 * The devices this node's own records hold, by device number: a volume the node splice
 * staged (STATE_DIR/splices/PV.json) and the raw device of a fenced secondary that the
 * CSI proxy reported holding (STATE_DIR/fences/PV.json). The operator creates pairs on
 * exactly these, wherever the driver's device lives in /dev.
 */
export function heldDevice(stateDir: string, fences: FenceStore): HeldDevice {
  const splices = spliceHolders(stateDir);
  return async (rdev) => {
    const splice = await splices(rdev);
    if (splice !== null) return `staged by the node splice as ${splice.top}`;
    for (const f of await fences.list()) {
      if (f.hold !== 'held' || f.device === '') continue;
      const st = await stat(f.device).catch(() => null);
      if (st !== null && st.isBlockDevice() && st.rdev === rdev) return `held for fenced volume ${f.pv}`;
    }
    return null;
  };
}
