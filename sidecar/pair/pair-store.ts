import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StateCorruptError } from '../errors.js';
import { writeFileAtomic } from '../fs/write-file-atomic.js';
import { validatePairSpec, type PairSpec } from './pair-spec.js';

interface StoreFile {
  version: 1;
  pairs: PairSpec[];
}

/**
 * Pair definitions in STATE_DIR/pairs.json, replaced atomically (write a temp file,
 * fsync it, rename over, fsync the directory) so a crash leaves the old or the new
 * list, never a torn one.
 */
export class PairStore {
  readonly #file: string;
  #queue: Promise<void> = Promise.resolve();

  constructor(stateDir: string) {
    this.#file = join(stateDir, 'pairs.json');
  }

  async load(): Promise<PairSpec[]> {
    let text: string;
    try {
      text = await readFile(this.#file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    try {
      const parsed = JSON.parse(text) as StoreFile;
      if (parsed.version !== 1 || !Array.isArray(parsed.pairs)) throw new Error('unknown format');
      return parsed.pairs.map((p) => validatePairSpec(p));
    } catch (err) {
      throw new StateCorruptError(`${this.#file}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Saves the whole list; saves are serialized so the last call wins on disk. */
  save(pairs: PairSpec[]): Promise<void> {
    const body: StoreFile = { version: 1, pairs };
    const run = this.#queue.then(() => this.#write(JSON.stringify(body, null, 2) + '\n'));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #write(text: string): Promise<void> {
    // Owner only: a pair's peer TLS material includes its private key.
    return writeFileAtomic(this.#file, text, { mode: 0o600 });
  }
}
