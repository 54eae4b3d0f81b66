import type { OutgoingBlockFrame } from './block-frame-codec.js';
import { DEFAULT_MAX_FRAME_PAYLOAD, DEFAULT_MAX_FRAME_RUNS, frameChecksum } from './frame-builder.js';

/**
 * A mirror frame up to this payload may share a message with the frames queued beside
 * it: below it grpc-js's and HTTP/2's cost per message outweighs the cost per byte.
 */
export const COALESCE_FRAME_BYTES = 64 * 1024;

/** What one message joined from several frames may carry at most. */
export const COALESCED_PAYLOAD_BYTES = DEFAULT_MAX_FRAME_PAYLOAD;

/** The bytes a frame's payload holds. */
export function framePayloadBytes(frame: Pick<OutgoingBlockFrame, 'payload'>): number {
  if (Buffer.isBuffer(frame.payload)) return frame.payload.length;
  let n = 0;
  for (const c of frame.payload) n += c.length;
  return n;
}

/**
 * May share a message: a small write outside any consistency group. Heartbeats, barriers
 * and probes (no runs) always go alone, and grouped frames are counted one by one at
 * the group's commit.
 */
export function coalescible(frame: OutgoingBlockFrame): boolean {
  return frame.runs.length > 0 && (frame.group ?? 0) === 0 && framePayloadBytes(frame) <= COALESCE_FRAME_BYTES;
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
  if (!coalescible(first) || first.durable || queue.length === 0 || !coalescible(queue[0]!)) return { frame: first, sequences: [first.sequence] };
  const runs = [...first.runs];
  const payload: Buffer[] = [];
  const addPayload = (f: OutgoingBlockFrame): void => {
    if (Buffer.isBuffer(f.payload)) payload.push(f.payload);
    else payload.push(...f.payload);
  };
  addPayload(first);
  let bytes = framePayloadBytes(first);
  const sequences = [first.sequence];
  let last = first;
  for (;;) {
    const next = queue[0];
    if (next === undefined || !coalescible(next)) break;
    const n = framePayloadBytes(next);
    if (bytes + n > COALESCED_PAYLOAD_BYTES || runs.length + next.runs.length > DEFAULT_MAX_FRAME_RUNS) break;
    queue.shift();
    runs.push(...next.runs);
    addPayload(next);
    bytes += n;
    sequences.push(next.sequence);
    last = next;
    if (next.durable) break;
  }
  // Each frame's own checksum covered its runs alone: the message gets one over all of them.
  return { frame: { sessionId: last.sessionId, sequence: last.sequence, runs, payload, crc32c: frameChecksum(runs, payload), durable: last.durable }, sequences };
}
