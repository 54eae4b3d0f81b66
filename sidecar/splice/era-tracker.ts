import { open, rm } from 'node:fs/promises';
import type { Dmsetup } from './dmsetup.js';
import { runTool } from '../host/run-tool.js';

export interface EraTrackerOptions {
  dm: Dmsetup;
  losetup?: string;
  eraInvalidate?: string;
}

/** Block ranges (in era blocks, end exclusive) written while the era target was live. */
export interface WrittenRanges {
  blockBytes: number;
  ranges: Array<[number, number]>;
}

const META_BYTES = 8 << 20;

/**
 * In-kernel write tracking for the time the sidecar is out of the data path: a dm-era
 * device over the volume, its metadata in a file of the state dir behind a loop device.
 * dm-era holds a write to a block until that block's mark is committed to the metadata,
 * so a node crash in the window still leaves every written block recorded.
 */
export class EraTracker {
  readonly #dm: Dmsetup;
  readonly #losetup: string;
  readonly #eraInvalidate: string;

  constructor(opts: EraTrackerOptions) {
    this.#dm = opts.dm;
    this.#losetup = opts.losetup ?? 'losetup';
    this.#eraInvalidate = opts.eraInvalidate ?? 'era_invalidate';
  }

  /** Creates the era device `name` over `device`; returns the loop device of its metadata. */
  async create(name: string, device: string, sectors: number, metaFile: string, blockBytes: number): Promise<string> {
    // A fresh, zeroed metadata area: dm-era formats it when its superblock is blank.
    const fh = await open(metaFile, 'w');
    try {
      await fh.truncate(META_BYTES);
      await fh.sync();
    } finally {
      await fh.close();
    }
    return this.reopen(name, device, sectors, metaFile, blockBytes);
  }

  /**
   * The era device `name` again over metadata it wrote before (the node restarted and
   * took the device with it): dm-era opens a metadata area it finds formatted, with every
   * mark it committed — and it commits a block's mark before the write to that block
   * completes — and goes on recording. Fails on metadata it cannot open.
   */
  async reopen(name: string, device: string, sectors: number, metaFile: string, blockBytes: number): Promise<string> {
    const loop = (await runTool(this.#losetup, ['--find', '--show', metaFile])).trim();
    try {
      await this.#dm.create(name, `0 ${sectors} era ${loop} ${device} ${blockBytes / 512}`);
    } catch (err) {
      await runTool(this.#losetup, ['-d', loop]).catch(() => undefined);
      throw err;
    }
    return loop;
  }

  /**
   * Every block written through `name` since it was created. Read from a metadata
   * snapshot: the kernel commits the current era's marks before taking it.
   */
  async written(name: string, loop: string, blockBytes: number): Promise<WrittenRanges> {
    await this.#dm.message(name, 'take_metadata_snap');
    let xml: string;
    try {
      // Era 1 is the first era of fresh metadata: "since 1" is every write ever made.
      xml = await runTool(this.#eraInvalidate, ['--written-since', '1', '--metadata-snapshot', loop]);
    } finally {
      await this.#dm.message(name, 'drop_metadata_snap');
    }
    return { blockBytes, ranges: parseEraInvalidate(xml) };
  }

  async remove(name: string, loop: string, metaFile: string): Promise<void> {
    await this.#dm.remove(name);
    if (loop) await runTool(this.#losetup, ['-d', loop]).catch(() => undefined);
    await rm(metaFile, { force: true });
  }
}

/** era_invalidate's XML: <block block="n"/> and <range begin="a" end="b"/> (end exclusive). */
export function parseEraInvalidate(xml: string): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const m of xml.matchAll(/<block\s+block\s*=\s*"(\d+)"|<range\s+begin\s*=\s*"(\d+)"\s+end\s*=\s*"(\d+)"/g)) {
    if (m[1] !== undefined) out.push([Number(m[1]), Number(m[1]) + 1]);
    else out.push([Number(m[2]), Number(m[3])]);
  }
  return out;
}
