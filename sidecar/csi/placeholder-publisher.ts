import { createHash } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'winston';
import { readJsonState } from '../fs/json-state-file.js';
import { syncDir, writeFileAtomic } from '../fs/write-file-atomic.js';
import { runTool } from '../host/run-tool.js';
import type { HostMounts } from './host-mounts.js';
import type { AccessType } from './volume-capability.js';

/** What was put at one target path, recorded before it was put there. */
interface PlaceholderRecord {
  target: string;
  type: AccessType;
}

export interface PlaceholderPublisherOptions {
  /** Where the records (and the empty images of block placeholders) live. */
  dir: string;
  mounts: HostMounts;
  logger: Logger;
}

/**
 * What a pod is given for a read-only publish of a fenced volume: something harmless,
 * never the volume its pair writes under (a filesystem mounted over changing blocks
 * shows torn data and can fault the kernel). A filesystem volume gets an empty read-only
 * tmpfs; a block volume a read-only loop device of zero bytes, over which the kubelet's
 * own loop device (its lock on the published device) is empty too: nothing to write.
 * Each target's record is written first, so an unpublish after a restart still knows
 * what to undo.
 */
export class PlaceholderPublisher {
  readonly #o: PlaceholderPublisherOptions;

  constructor(o: PlaceholderPublisherOptions) {
    this.#o = o;
  }

  #paths(target: string): { record: string; image: string } {
    const key = createHash('sha256').update(target).digest('hex').slice(0, 32);
    return { record: join(this.#o.dir, `${key}.json`), image: join(this.#o.dir, `${key}.img`) };
  }

  async publish(target: string, type: AccessType): Promise<void> {
    const { record, image } = this.#paths(target);
    await writeFileAtomic(record, JSON.stringify({ target, type } satisfies PlaceholderRecord) + '\n');
    const mounts = this.#o.mounts;
    if (type === 'mount') {
      await mounts.ensureDirectory(target);
      await mounts.mount('blockmirror-fenced', target, 'tmpfs', ['ro', 'nodev', 'nosuid', 'noexec', 'size=4k', 'mode=0555']);
    } else {
      await (await open(image, 'a')).close();
      const loop = (await loopsOf(image))[0] ?? (await runTool('losetup', ['--read-only', '--find', '--show', image])).trim();
      await mounts.ensureFile(target);
      await mounts.bind(loop, target, { readonly: true });
    }
    this.#o.logger.info('fenced volume published as a placeholder', { target, type });
  }

  /** Undoes a placeholder publish at `target`; false when there is none (the caller's to undo). */
  async unpublish(target: string): Promise<boolean> {
    const { record, image } = this.#paths(target);
    const r = await readRecord(record);
    if (r === undefined || r.target !== target) return false;
    await this.#o.mounts.unmount(target);
    await this.#o.mounts.removeTarget(target);
    if (r.type === 'block') {
      for (const loop of await loopsOf(image)) await runTool('losetup', ['--detach', loop]);
      await rm(image, { force: true });
    }
    await rm(record, { force: true });
    await syncDir(this.#o.dir);
    this.#o.logger.info('placeholder unpublished', { target });
    return true;
  }
}

function readRecord(file: string): Promise<PlaceholderRecord | undefined> {
  return readJsonState(file, 'placeholder record', (v): v is PlaceholderRecord => {
    const r = v as Partial<PlaceholderRecord> | null;
    return typeof r === 'object' && r !== null && typeof r.target === 'string' && (r.type === 'mount' || r.type === 'block');
  });
}

async function loopsOf(image: string): Promise<string[]> {
  const out = await runTool('losetup', ['--noheadings', '--output', 'NAME', '--associated', image]);
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
}
