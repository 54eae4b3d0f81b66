/**
 * Bytes received on a socket, consumed from the front. `take` avoids copying when the
 * bytes lie in one received chunk (the common case for headers and small writes).
 */
export class ByteQueue {
  #chunks: (Buffer | undefined)[] = [];
  #head = 0;
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /** Removes and returns the first `n` bytes; the caller checked `length >= n`. */
  take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.#chunks[this.#head]!;
    if (first.length > n) {
      this.#chunks[this.#head] = first.subarray(n);
      this.#length -= n;
      return first.subarray(0, n);
    }
    if (first.length === n) {
      this.#shift();
      this.#length -= n;
      return first;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.#chunks[this.#head]!;
      const k = Math.min(c.length, n - filled);
      c.copy(out, filled, 0, k);
      filled += k;
      if (k === c.length) this.#shift();
      else this.#chunks[this.#head] = c.subarray(k);
    }
    this.#length -= n;
    return out;
  }

  /**
   * Removes the first `n` bytes as the received chunks that hold them, without copying
   * (a 1 MiB write arrives as ~16 socket reads; gathering them is left to writev).
   */
  takeChunks(n: number): Buffer[] {
    const out: Buffer[] = [];
    let taken = 0;
    while (taken < n) {
      const c = this.#chunks[this.#head]!;
      const k = Math.min(c.length, n - taken);
      if (k === c.length) {
        out.push(c);
        this.#shift();
      } else {
        out.push(c.subarray(0, k));
        this.#chunks[this.#head] = c.subarray(k);
      }
      taken += k;
    }
    this.#length -= n;
    return out;
  }

  /** The first `n` bytes without consuming them; the caller checked `length >= n`. */
  peek(n: number): Buffer {
    const first = this.#chunks[this.#head]!;
    if (first.length >= n) return first.subarray(0, n);
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    for (let i = this.#head; filled < n; i++) {
      const c = this.#chunks[i]!;
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
      const c = this.#chunks[this.#head]!;
      const k = Math.min(c.length, n - dropped);
      if (k === c.length) this.#shift();
      else this.#chunks[this.#head] = c.subarray(k);
      dropped += k;
      this.#length -= k;
    }
    return dropped;
  }

  #shift(): void {
    this.#chunks[this.#head] = undefined;
    this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }
}
