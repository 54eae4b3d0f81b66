import { createHash } from 'node:crypto';

/**
 * The pair's name on its sidecar: unique per cluster, and derivable by the other site
 * from `remote.namespace`/`remote.name`. Sidecar names stop at 63 characters, so a
 * longer one keeps a prefix and a hash of the whole.
 */
export function sidecarPairName(namespace: string, name: string): string {
  const full = `${namespace}.${name}`;
  if (full.length <= 63) return full;
  const hash = createHash('sha256').update(full).digest('hex').slice(0, 12);
  return `${full.slice(0, 50).replace(/[-.]+$/, '')}-${hash}`;
}
