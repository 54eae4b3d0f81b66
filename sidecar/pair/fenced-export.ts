import { VolumeIoError } from '../errors.js';
import type { NbdExport } from '../nbd/nbd-export.js';

/**
 * The NBD export of a secondary that has export settings (a demoted primary, or one
 * configured for its promotion): it stays listening, so a client under the node's splice
 * keeps its connection instead of the splice falling back to writing the device directly,
 * but every read and write is refused with EPERM — its volume is written by replication
 * in block order and is never shown, torn, to anyone — until the pair is promoted.
 */
export class FencedExport implements NbdExport {
  readonly name: string;
  readonly description: string;
  readonly size: number;
  readonly readOnly = true;

  constructor(name: string, size: number) {
    this.name = name;
    this.description = `blockmirror pair ${name} (secondary: fenced)`;
    this.size = size;
  }

  read(): Promise<Buffer> {
    return Promise.reject(this.#refused());
  }

  write(): Promise<void> {
    return Promise.reject(this.#refused());
  }

  writeZeroes(): Promise<void> {
    return Promise.reject(this.#refused());
  }

  trim(): Promise<void> {
    return Promise.reject(this.#refused());
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  #refused(): VolumeIoError {
    return new VolumeIoError(`pair ${this.name} is a secondary: its export refuses I/O until it is promoted`, { errno: 'EPERM' });
  }
}
