import { readdir, readFile } from 'node:fs/promises';
import { StateCorruptError } from '../errors.js';

/**
 * A JSON record of the state dir, checked by `valid`: undefined when the file is absent;
 * a StateCorruptError naming `what` and the file when it is not JSON or not valid (a
 * record nobody can read must stop the caller, never be taken for "none").
 */
export async function readJsonState<T>(file: string, what: string, valid: (v: unknown) => v is T): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new StateCorruptError(`${what} ${file} is not JSON`, { cause: err });
  }
  if (!valid(parsed)) throw new StateCorruptError(`${what} ${file} is malformed`);
  return parsed;
}

/** The names (without `.json`) of the records in `dir`, sorted; none when it is absent. */
export async function jsonStateNames(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names
    .filter((n) => n.endsWith('.json'))
    .sort()
    .map((n) => n.slice(0, -'.json'.length));
}
