/**
 * Receive buffers for NBD connections. A socket reads straight into the free tail of
 * the current slab; the bytes it received are handed out as views of the slab (no
 * copy), and a slab returns to the pool once every view of it has been released.
 * Reading ~1-4 MiB per syscall into recycled memory is what lets large writes
 * approach memory bandwidth; Node's default is a fresh 64 KiB buffer per read.
 */
export class Slab {
  readonly buf: Buffer;
  used = 0;
  refs = 0;
  readonly #pool: SlabPool;

  constructor(pool: SlabPool, bytes: number) {
    this.#pool = pool;
    this.buf = Buffer.allocUnsafeSlow(bytes);
  }

  retain(): void {
    this.refs++;
  }

  release(): void {
    if (--this.refs === 0) this.#pool.recycle(this);
  }
}

export class SlabPool {
  readonly slabBytes: number;
  readonly #minTail: number;
  readonly #keep: number;
  readonly #free: Slab[] = [];

  constructor(opts: { slabBytes?: number; minTail?: number; keep?: number } = {}) {
    this.slabBytes = opts.slabBytes ?? 4 << 20;
    this.#minTail = opts.minTail ?? 256 << 10;
    this.#keep = opts.keep ?? 8;
  }

  /** A slab with at least the minimum free tail: `current` if it still has one. */
  nextSlab(current: Slab | null): Slab {
    if (current !== null && current.buf.length - current.used >= this.#minTail) return current;
    const s = this.#free.pop() ?? new Slab(this, this.slabBytes);
    s.used = 0;
    return s;
  }

  recycle(s: Slab): void {
    // A slab still being read into is not done yet; the reader holds a ref on it.
    if (this.#free.length < this.#keep) this.#free.push(s);
  }

  get freeSlabs(): number {
    return this.#free.length;
  }
}
