/**
 * Group commit for a sync primitive such as fdatasync. `sync()` resolves once a sync
 * that *started after the call* has completed — that is what makes every write that
 * completed before the call durable. Callers arriving while a sync runs share the next
 * one, so N concurrent FLUSH/FUA requests cost at most two fdatasyncs, not N.
 *
 * A failure goes to the callers that sync covers, and the next sync is tried afresh:
 * right for a caller that writes again what the failed one covered (the dirty log);
 * one that cannot must keep the failure (Volume.flush).
 */
export class SyncBatcher {
  readonly #doSync: () => Promise<void>;
  #running: Promise<void> | null = null;
  #next: Promise<void> | null = null;

  constructor(doSync: () => Promise<void>) {
    this.#doSync = doSync;
  }

  sync(): Promise<void> {
    if (this.#running === null) {
      this.#running = this.#start();
      return this.#running;
    }
    // A sync is already running and may have started before our caller's writes
    // completed, so it does not count: join (or schedule) the one after it.
    if (this.#next === null) {
      const after = this.#running;
      this.#next = after.then(
        () => this.#promoteNext(),
        () => this.#promoteNext(),
      );
    }
    return this.#next;
  }

  #promoteNext(): Promise<void> {
    this.#next = null;
    this.#running = this.#start();
    return this.#running;
  }

  #start(): Promise<void> {
    const p = this.#doSync();
    const clear = (): void => {
      if (this.#running === p) this.#running = null;
    };
    p.then(clear, clear);
    return p;
  }
}
