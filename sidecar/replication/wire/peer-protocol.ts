import { frameChecksum, type Frame } from './frame-builder.js';

/**
 * The peer protocol's constants, in one place both sides import: the primary's link
 * (primary/peer-link.ts) and the secondary's service and endpoint (secondary/). A value
 * one side relies on the other to honour is defined here, once.
 */

/** How many redirects one call to a site follows (a pair moving as we dial). */
export const MAX_REDIRECTS = 3;

/** Metadata of the Mirror and Resync streams: the session they belong to. */
export const SESSION_METADATA = 'x-blockmirror-session';
/** Metadata of the Mirror and Resync streams: the pair, by its name on the secondary's sidecar. */
export const PAIR_METADATA = 'x-blockmirror-pair';

/**
 * The primary's link sends an empty frame on an idle mirror stream this often, in both
 * modes: the secondary's sign of life (see SECONDARY_LIVENESS_MS).
 */
export const HEARTBEAT_MS = 1000;
/** Primary: a frame unanswered this long means the secondary is gone, even if TCP says otherwise. */
export const DEFAULT_LIVENESS_MS = 10_000;
/** Secondary: no frame (heartbeats included) for this long means the primary is gone. */
export const SECONDARY_LIVENESS_MS = 5 * HEARTBEAT_MS;

/**
 * Largest peer message, both ends (the link sends and receives, the server receives): a
 * sync write is mirrored as one frame, whatever its size.
 */
export const MAX_PEER_MESSAGE_BYTES = 64 << 20;
/** HTTP/2 flow-control window of peer connections, both ends (the server sets it too). */
export const PEER_FLOW_CONTROL_WINDOW = 32 << 20;

const EMPTY = Buffer.alloc(0);
const EMPTY_CHECKSUM = frameChecksum([], EMPTY);

/**
 * A frame without runs: a heartbeat (not durable), or a barrier whose acknowledgement
 * means every frame before it on its stream is durable on the secondary.
 */
export function emptyFrame(durable: boolean): Frame & { durable: boolean } {
  return { runs: [], payload: EMPTY, crc32c: EMPTY_CHECKSUM, durable };
}
