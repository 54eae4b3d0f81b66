/** What a handler asks the queue to do with its key next. */
export type HandlerResult = { requeueAfterMs?: number } | void;

export interface WorkQueueOptions {
  /** Keys handled at once (different keys only). */
  concurrency: number;
  /** First retry delay after a failure; doubles per consecutive failure of the key. */
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  onError?: (key: string, err: unknown, retryInMs: number) => void;
}

/**
 * A work queue keyed per object, after client-go's: a key is never handled twice at
 * once (an add while it runs marks it dirty and it runs again after), different keys
 * run in parallel up to `concurrency`, adds of a waiting key collapse into one, and
 * failures retry with per-key exponential backoff.
 */
export class WorkQueue {
  readonly #handler: (key: string, signal: AbortSignal) => Promise<HandlerResult>;
  readonly #opts: Required<Omit<WorkQueueOptions, 'onError'>> & Pick<WorkQueueOptions, 'onError'>;
  readonly #queue: string[] = [];
  readonly #queued = new Set<string>();
  readonly #running = new Set<string>();
  readonly #dirty = new Set<string>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #failures = new Map<string, number>();
  readonly #abort = new AbortController();
  readonly #idleWaiters: (() => void)[] = [];

  constructor(handler: (key: string, signal: AbortSignal) => Promise<HandlerResult>, opts: WorkQueueOptions) {
    this.#handler = handler;
    this.#opts = { baseBackoffMs: 200, maxBackoffMs: 30_000, ...opts };
  }

  /** Queues `key` now; a pending delayed add of it is superseded. */
  add(key: string): void {
    if (this.#abort.signal.aborted) return;
    const t = this.#timers.get(key);
    if (t !== undefined) {
      clearTimeout(t);
      this.#timers.delete(key);
    }
    if (this.#running.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    this.#queued.add(key);
    this.#queue.push(key);
    this.#pump();
  }

  /** Queues `key` after `ms`, unless an earlier add comes first. */
  addAfter(key: string, ms: number): void {
    if (this.#abort.signal.aborted) return;
    const existing = this.#timers.get(key);
    if (existing !== undefined) clearTimeout(existing);
    const t = setTimeout(() => {
      this.#timers.delete(key);
      this.add(key);
    }, ms);
    t.unref();
    this.#timers.set(key, t);
  }

  /** Forgets the failure count of `key` (its object is gone). */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  get length(): number {
    return this.#queue.length;
  }

  /** Stops: running handlers see their signal aborted; queued and delayed keys are dropped. */
  shutdown(): void {
    this.#abort.abort();
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    this.#queue.length = 0;
    this.#queued.clear();
  }

  /** Resolves when nothing is queued or running (delayed adds do not count). */
  idle(): Promise<void> {
    if (this.#queue.length === 0 && this.#running.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #pump(): void {
    while (this.#running.size < this.#opts.concurrency && this.#queue.length > 0) {
      const key = this.#queue.shift()!;
      this.#queued.delete(key);
      this.#running.add(key);
      void this.#run(key);
    }
    if (this.#queue.length === 0 && this.#running.size === 0) {
      for (const w of this.#idleWaiters.splice(0)) w();
    }
  }

  async #run(key: string): Promise<void> {
    let next: number | undefined;
    try {
      const result = await this.#handler(key, this.#abort.signal);
      this.#failures.delete(key);
      next = result?.requeueAfterMs;
    } catch (err) {
      const n = (this.#failures.get(key) ?? 0) + 1;
      this.#failures.set(key, n);
      next = Math.min(this.#opts.baseBackoffMs * 2 ** (n - 1), this.#opts.maxBackoffMs);
      this.#opts.onError?.(key, err, next);
    } finally {
      this.#running.delete(key);
    }
    if (this.#dirty.delete(key)) this.add(key);
    else if (next !== undefined) this.addAfter(key, next);
    this.#pump();
  }
}
