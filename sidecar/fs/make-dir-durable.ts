import { mkdir } from 'node:fs/promises';
import { dirname, relative, resolve, sep } from 'node:path';
import { syncDir } from './write-file-atomic.js';

/**
 * `mkdir -p dir` whose result survives a power cut. A directory's entry is durable only
 * once its parent is fsync'd, so a freshly made `pairs/NAME/` could vanish with the dirty
 * log inside it — and a primary that comes back without its dirty log forgets every
 * block the secondary never confirmed. Every directory from `dir` up to `root` (which
 * must contain it) has its parent fsync'd, whether this call created it or an earlier run
 * did and crashed before syncing. Called when pairs and journals open, not per write.
 */
export async function makeDirDurable(dir: string, root: string): Promise<void> {
  const target = resolve(dir);
  const top = resolve(root);
  const rel = relative(top, target);
  if (rel.startsWith('..') || resolve(top, rel) !== target) throw new Error(`${target} is not inside ${top}`);
  await mkdir(target, { recursive: true });
  const chain = [top];
  if (rel !== '') for (const part of rel.split(sep)) chain.push(resolve(chain[chain.length - 1]!, part));
  // Deepest first: each fsync makes the entry of the level below durable.
  for (const d of chain.reverse()) await syncDir(dirname(d));
}
