import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Volume } from '../../sidecar/volume/volume.js';

/** A sparse volume file `v.img` of `bytes` in a fresh temporary directory. */
export interface TempVolume {
  dir: string;
  /** The volume file's path. */
  path: string;
  volume: Volume;
  /** Closes the volume and removes the directory. */
  remove(): Promise<void>;
}

export async function openTempVolume(prefix: string, bytes: number): Promise<TempVolume> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const path = join(dir, 'v.img');
  writeFileSync(path, '');
  truncateSync(path, bytes);
  const volume = await Volume.open(path);
  return {
    dir,
    path,
    volume,
    async remove() {
      await volume.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
