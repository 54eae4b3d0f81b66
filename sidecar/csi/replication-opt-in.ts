/**
 * The volume_context key that opts a volume into replication. It reaches the node as a
 * StorageClass parameter (for drivers that copy parameters into volume_context, as the
 * lab driver does) or as a PersistentVolume's `spec.csi.volumeAttributes` entry.
 */
export const REPLICATE_KEY = 'blockmirror.io/replicate';

/** Whether a volume_context opts in: only the value "true" (any case, trimmed) does. */
export function replicationOptIn(volumeContext: Readonly<Record<string, string>> | null | undefined): boolean {
  const v = volumeContext?.[REPLICATE_KEY];
  return typeof v === 'string' && v.trim().toLowerCase() === 'true';
}
