/**
 * Frames a resync pass (sync) or a group's drain (async) reads from the volume ahead of
 * the one being sent. Both read scattered blocks after an outage or a failback, and with
 * too few reads in flight they go at the disk's latency: more than the sync window's
 * floor (16 frames), so the window and not the disk paces them (a failback of 40 MiB
 * waited 100–190 ms for reads with 8, 6–24 ms with 32). The blocks read ahead are held
 * in memory until sent: 8 MiB per pair at 256 KiB frames. A sync resync reads more
 * ahead while its window is larger (the window's worth: see SyncReplicator).
 */
export const READ_AHEAD_FRAMES = 32;
