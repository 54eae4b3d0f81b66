import { Backoff } from './backoff.js';

/**
 * A secondary that answers but cannot apply what it is sent (its disk is full, its
 * volume fails): the error a primary shows, and the pace of its retries. Resending the
 * whole out-of-sync set every few milliseconds would only fill the secondary's log and
 * the link; retries back off (capped, jittered) and the first attempt that applies
 * cleanly ends the fault, so the pair heals by itself once space returns.
 */
export class PeerFault {
  readonly #backoff: Backoff;
  readonly #now: () => number;
  #retryAt = 0;
  #error = '';
  /** Refusals seen since the pair started (a counter for metrics). */
  count = 0;

  constructor(options: { initialMs?: number; maxMs?: number; now?: () => number } = {}) {
    this.#backoff = new Backoff({ initialMs: options.initialMs ?? 250, maxMs: options.maxMs ?? 15_000 });
    this.#now = options.now ?? (() => performance.now());
  }

  get active(): boolean {
    return this.#error !== '';
  }

  get error(): string {
    return this.#error;
  }

  /** Milliseconds until the next attempt may start (0: now). */
  get waitMs(): number {
    return this.#error === '' ? 0 : Math.max(0, this.#retryAt - this.#now());
  }

  /** A refusal: shown as `message`; the next attempt waits one backoff step. */
  fail(message: string): void {
    this.count++;
    // Several frames of one attempt refused together count as one step.
    if (this.#error !== '' && this.#now() < this.#retryAt) {
      this.#error = message;
      return;
    }
    this.#error = message;
    this.#retryAt = this.#now() + this.#backoff.next();
  }

  /** An attempt went through cleanly. */
  clear(): void {
    if (this.#error === '') return;
    this.#error = '';
    this.#retryAt = 0;
    this.#backoff.reset();
  }
}
