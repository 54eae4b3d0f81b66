import { InvalidArgumentError } from '../../errors.js';

export interface BackoffOptions {
  /** Ceiling of the first delay. Default 200 ms. */
  initialMs?: number;
  /** Largest ceiling. Default 10 s. */
  maxMs?: number;
  /** Growth of the ceiling per attempt. Default 2. */
  factor?: number;
  /** Uniform in [0, 1); injectable for tests. Default Math.random. */
  random?: () => number;
}

/**
 * Capped exponential backoff with full jitter: each delay is uniform in [0, ceiling),
 * the ceiling growing by `factor` per attempt up to `maxMs`. Full jitter spreads the
 * reconnects of many pairs that lost their peer at the same moment.
 */
export class Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly factor: number;
  readonly #random: () => number;
  #ceiling: number;
  #attempts = 0;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? 200;
    this.maxMs = options.maxMs ?? 10_000;
    this.factor = options.factor ?? 2;
    this.#random = options.random ?? Math.random;
    if (!(Number.isFinite(this.initialMs) && this.initialMs > 0)) throw new InvalidArgumentError(`initialMs must be positive, not ${this.initialMs}`);
    if (!(Number.isFinite(this.maxMs) && this.maxMs >= this.initialMs)) {
      throw new InvalidArgumentError(`maxMs must be at least initialMs (${this.initialMs}), not ${this.maxMs}`);
    }
    if (!(Number.isFinite(this.factor) && this.factor >= 1)) throw new InvalidArgumentError(`factor must be at least 1, not ${this.factor}`);
    this.#ceiling = this.initialMs;
  }

  /** Delays handed out since the last reset. */
  get attempts(): number {
    return this.#attempts;
  }

  /** The next delay in whole milliseconds. */
  next(): number {
    const ceiling = this.#ceiling;
    // Grown by multiplication and capped, so it never overflows however long the outage.
    this.#ceiling = Math.min(this.maxMs, ceiling * this.factor);
    this.#attempts++;
    const r = Math.min(Math.max(this.#random(), 0), 1);
    return Math.min(Math.floor(r * ceiling), Math.ceil(ceiling) - 1);
  }

  /**
   * After a success: the next delay is short again. `ceilingMs` (at most `initialMs`)
   * starts the ceilings lower, for a peer known to be coming up.
   */
  reset(ceilingMs: number = this.initialMs): void {
    if (!(Number.isFinite(ceilingMs) && ceilingMs > 0)) throw new InvalidArgumentError(`ceilingMs must be positive, not ${ceilingMs}`);
    this.#ceiling = Math.min(ceilingMs, this.initialMs);
    this.#attempts = 0;
  }
}
