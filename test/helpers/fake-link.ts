import type { OutgoingBlockFrame } from '../../sidecar/replication/wire/block-frame-codec.js';
import type { CommitGroupRequest } from '../../proto/gen/blockmirror/replication/v1/CommitGroupRequest.js';
import type { HandshakeResponse__Output } from '../../proto/gen/blockmirror/replication/v1/HandshakeResponse.js';
import type { GenerationIds } from '../../sidecar/replication/lineage/generation-ids.js';
import { PeerRefusedError, PeerUnavailableError, type ReplicationLink, type StreamKind } from '../../sidecar/replication/primary/peer-link.js';

export interface SentFrame {
  kind: StreamKind;
  frame: Omit<OutgoingBlockFrame, 'sessionId' | 'sequence'>;
  /** The secondary's answer: applied (durable, for a durable frame). */
  ack(): void;
  /** The secondary could not apply it (a full disk). */
  refuse(why?: string): void;
  /** The session ended before an answer. */
  drop(why: string): void;
  settled: boolean;
}

/**
 * A replicator's link with the secondary played by the test: every frame waits until the
 * test acknowledges or refuses it (or `answer` does), so acknowledgement order, stalls and
 * refusals can be staged exactly. A fake for unit tests of the replicators' logic only.
 */
export class FakeLink implements ReplicationLink {
  connected = false;
  sessionId = '';
  retries = 0;
  lastError = '';
  readonly sent: SentFrame[] = [];
  readonly calls: string[] = [];
  /** When set, MarkSynced is refused with this reason (a secondary whose state disk is full). */
  refuseMarkSynced: string | undefined;
  /** Answers frames as they are sent; undefined leaves them waiting. */
  answer: ((f: SentFrame) => 'ack' | 'refuse' | undefined) | undefined;
  readonly #onSession: (s: HandshakeResponse__Output | null, error?: string) => void;

  constructor(onSession: (s: HandshakeResponse__Output | null, error?: string) => void) {
    this.#onSession = onSession;
  }

  start(): void {}

  /** Calls of redialSoon (a replicator told the peer is back). */
  redials = 0;

  redialSoon(): void {
    this.redials++;
  }

  close(): void {
    this.connected = false;
  }

  /**
   * A session starts, as after a handshake. Without `answer.generations`, as with a
   * secondary of the previous release (its answer stands as given).
   */
  connect(fullSyncRequired = false, secondaryGeneration = 'gen-b', answer: Partial<HandshakeResponse__Output> = {}): void {
    this.connected = true;
    this.sessionId = `s${this.retries}`;
    this.#onSession({ sessionId: this.sessionId, secondaryGeneration, fullSyncRequired, redirect: '', generations: null, role: 'secondary', verdict: '', reason: '', divergentBlocks: Buffer.alloc(0), ...answer });
  }

  send(kind: StreamKind, frame: Omit<OutgoingBlockFrame, 'sessionId' | 'sequence'>): Promise<void> {
    if (!this.connected) return Promise.reject(new PeerUnavailableError('not connected'));
    this.calls.push(`send ${kind}${frame.durable ? ' durable' : ''}`);
    return new Promise<void>((resolve, reject) => {
      const f: SentFrame = {
        kind,
        frame,
        settled: false,
        ack: () => {
          f.settled = true;
          resolve();
        },
        refuse: (why = 'VOLUME_IO: write failed: ENOSPC: no space left on device') => {
          f.settled = true;
          reject(new PeerRefusedError(`the secondary could not apply frame: ${why}`));
        },
        drop: (why: string) => {
          f.settled = true;
          reject(new PeerUnavailableError(why));
        },
      };
      this.sent.push(f);
      const a = this.answer?.(f);
      if (a === 'ack') f.ack();
      else if (a === 'refuse') f.refuse();
    });
  }

  /** What each MarkSynced told the secondary. */
  readonly synced: { generations: GenerationIds; primaryDemoting: boolean }[] = [];

  markSynced(generations: GenerationIds, opts: { primaryDemoting?: boolean } = {}): Promise<void> {
    this.calls.push('markSynced');
    this.synced.push({ generations, primaryDemoting: opts.primaryDemoting ?? false });
    if (this.refuseMarkSynced !== undefined) return Promise.reject(new PeerRefusedError(`the secondary could not record the copy: ${this.refuseMarkSynced}`));
    return Promise.resolve();
  }

  commitGroup(_req: CommitGroupRequest): Promise<void> {
    this.calls.push('commitGroup');
    return Promise.resolve();
  }

  fail(reason: string): void {
    if (!this.connected) return;
    this.connected = false;
    this.lastError = reason;
    this.retries++;
    for (const f of this.sent) if (!f.settled) f.drop(reason);
    this.#onSession(null, reason);
  }

  /** Frames of `kind` sent so far that are not yet answered. */
  unanswered(kind: StreamKind): SentFrame[] {
    return this.sent.filter((f) => f.kind === kind && !f.settled);
  }
}
