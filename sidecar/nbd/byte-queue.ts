import type { Slab } from './slab-pool.js';

interface Entry {
  buf: Buffer;
  slab: Slab | null;
}

/** Bytes handed out by `takeChunks`; `release` when done with them. */
export interface TakenChunks {
  chunks: Buffer[];
  release(): void;
}

const NOTHING_TO_RELEASE = (): void => undefined;

/**
 * Bytes received on a socket, consumed from the front, without copying where possible.
 * Chunks may live in recycled slab memory: a chunk holds a reference to its slab until
 * it is consumed, and `takeChunks` hands references over to the caller.
 */
export class ByteQueue {
  #entries: (Entry | undefined)[] = [];
  #head = 0;
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(chunk: Buffer, slab: Slab | null = null): void {
    if (chunk.length === 0) return;
    slab?.retain();
    this.#entries.push({ buf: chunk, slab });
    this.#length += chunk.length;
  }

  /**
   * Removes and returns the first `n` bytes; the caller checked `length >= n`. The
   * result may be a view of slab memory: use it now, before returning to the event
   * loop (copy what must outlive that).
   */
  take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.#entries[this.#head]!;
    if (first.buf.length > n) {
      const out = first.buf.subarray(0, n);
      first.buf = first.buf.subarray(n);
      this.#length -= n;
      return out;
    }
    if (first.buf.length === n) {
      this.#shift(true);
      this.#length -= n;
      return first.buf;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const e = this.#entries[this.#head]!;
      const k = Math.min(e.buf.length, n - filled);
      e.buf.copy(out, filled, 0, k);
      filled += k;
      if (k === e.buf.length) this.#shift(true);
      else e.buf = e.buf.subarray(k);
    }
    this.#length -= n;
    return out;
  }

  /**
   * Removes the first `n` bytes as the received chunks that hold them, without copying
   * (a 1 MiB write arrives in a few reads; gathering them is left to writev).
   */
  takeChunks(n: number): TakenChunks {
    const chunks: Buffer[] = [];
    const slabs: Slab[] = [];
    let taken = 0;
    while (taken < n) {
      const e = this.#entries[this.#head]!;
      const k = Math.min(e.buf.length, n - taken);
      if (k === e.buf.length) {
        chunks.push(e.buf);
        // The entry's reference moves to the caller.
        if (e.slab) slabs.push(e.slab);
        this.#shift(false);
      } else {
        chunks.push(e.buf.subarray(0, k));
        e.buf = e.buf.subarray(k);
        if (e.slab) {
          e.slab.retain();
          slabs.push(e.slab);
        }
      }
      taken += k;
    }
    this.#length -= n;
    if (slabs.length === 0) return { chunks, release: NOTHING_TO_RELEASE };
    let released = false;
    return {
      chunks,
      release: () => {
        if (released) return;
        released = true;
        for (const s of slabs) s.release();
      },
    };
  }

  /** The first `n` bytes without consuming them (same lifetime rule as `take`). */
  peek(n: number): Buffer {
    const first = this.#entries[this.#head]!.buf;
    if (first.length >= n) return first.subarray(0, n);
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    for (let i = this.#head; filled < n; i++) {
      const c = this.#entries[i]!.buf;
      const k = Math.min(c.length, n - filled);
      c.copy(out, filled, 0, k);
      filled += k;
    }
    return out;
  }

  /** Drops up to `n` bytes from the front; returns how many were dropped. */
  skip(n: number): number {
    let dropped = 0;
    while (dropped < n && this.#length > 0) {
      const e = this.#entries[this.#head]!;
      const k = Math.min(e.buf.length, n - dropped);
      if (k === e.buf.length) this.#shift(true);
      else e.buf = e.buf.subarray(k);
      dropped += k;
      this.#length -= k;
    }
    return dropped;
  }

  /** Drops everything (the connection is gone), releasing slab references. */
  clear(): void {
    while (this.#head < this.#entries.length) this.#shift(true);
    this.#length = 0;
  }

  #shift(release: boolean): void {
    const e = this.#entries[this.#head]!;
    if (release) e.slab?.release();
    this.#entries[this.#head] = undefined;
    this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
  }
}
