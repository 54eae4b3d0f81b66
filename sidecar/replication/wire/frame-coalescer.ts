import type { OutgoingBlockFrame } from './block-frame-codec.js';
import { DEFAULT_MAX_FRAME_PAYLOAD, DEFAULT_MAX_FRAME_RUNS, frameChecksum } from './frame-builder.js';

/**
 * A mirror frame up to this payload may share a message with the frames queued beside
 * it: below it grpc-js's and HTTP/2's cost per message outweighs the cost per byte.
 */
export const COALESCE_FRAME_BYTES = 64 * 1024;

/** What one message joined from several frames may carry at most. */
export const COALESCED_PAYLOAD_BYTES = DEFAULT_MAX_FRAME_PAYLOAD;

/** Bytes of a payload given whole or as chunks. */
export function payloadBytes(payload: Buffer | readonly Buffer[]): number {
  if (Buffer.isBuffer(payload)) return payload.length;
  let n = 0;
  for (const c of payload) n += c.length;
  return n;
}

/**
 * The payload bytes of a frame that may share a message, -1 for one that may not: a small
 * write outside any consistency group may. Heartbeats, barriers and probes (no runs)
 * always go alone, and grouped frames are counted one by one at the group's commit.
 */
function joinableBytes(frame: OutgoingBlockFrame): number {
  if (frame.runs.length === 0 || (frame.group ?? 0) !== 0) return -1;
  const n = payloadBytes(frame.payload);
  return n <= COALESCE_FRAME_BYTES ? n : -1;
}

/** May share a message with the frames beside it (see joinableBytes). */
export function coalescible(frame: OutgoingBlockFrame): boolean {
  return joinableBytes(frame) !== -1;
}

/** One message taken from a queue: the frame to send, and the sequences its answer settles. */
export interface CoalescedFrame {
  frame: OutgoingBlockFrame;
  /** The sequences of every frame joined into it, in queue order; the last is the message's own. */
  sequences: number[];
}

/**
 * Takes the next message off the head of `queue`: the first frame, joined with the
 * coalescible frames after it while they fit one message. Joined runs keep their queue
 * order — the secondary writes a frame's runs in order, so overlapping writes land as
 * they would have in separate frames. A durable frame ends the message (its answer
 * then means every run before it is durable, as separate frames' answers would).
 * The message carries the last frame's sequence: the secondary answers that one.
 */
export function takeCoalesced(queue: OutgoingBlockFrame[]): CoalescedFrame {
  const first = queue.shift();
  if (first === undefined) throw new RangeError('no frame to take');
  const alone = { frame: first, sequences: [first.sequence] };
  let bytes = first.durable ? -1 : joinableBytes(first);
  if (bytes === -1) return alone;
  const runs = [...first.runs];
  const payload: Buffer[] = [];
  const addPayload = (f: OutgoingBlockFrame): void => {
    if (Buffer.isBuffer(f.payload)) payload.push(f.payload);
    else payload.push(...f.payload);
  };
  addPayload(first);
  const sequences = [first.sequence];
  let last = first;
  for (;;) {
    const next = queue[0];
    const n = next === undefined ? -1 : joinableBytes(next);
    if (next === undefined || n === -1) break;
    if (bytes + n > COALESCED_PAYLOAD_BYTES || runs.length + next.runs.length > DEFAULT_MAX_FRAME_RUNS) break;
    queue.shift();
    runs.push(...next.runs);
    addPayload(next);
    bytes += n;
    sequences.push(next.sequence);
    last = next;
    if (next.durable) break;
  }
  // Nothing joined: the frame goes as it is, with the checksum it has.
  if (last === first) return alone;
  // Each frame's own checksum covered its runs alone: the message gets one over all of them.
  return { frame: { sessionId: last.sessionId, sequence: last.sequence, runs, payload, crc32c: frameChecksum(runs, payload), durable: last.durable }, sequences };
}
