interface Resource {
  what: string;
  release: () => Promise<void>;
  done: boolean;
}

/**
 * What a test set up, released in reverse order after it — even when it fails half-way.
 * Each release runs at most once; `track` also returns a function to release it early.
 */
export class CleanupStack {
  readonly #resources: Resource[] = [];

  /** Registers a release action; returns a function that runs it now (once). */
  track(what: string, release: () => Promise<void>): () => Promise<void> {
    const r: Resource = { what, release, done: false };
    this.#resources.push(r);
    return async () => {
      if (r.done) return;
      r.done = true;
      this.#resources.splice(this.#resources.indexOf(r), 1);
      await release();
    };
  }

  /** Releases everything left, newest first; throws once with every failure. */
  async releaseAll(): Promise<void> {
    const errors: string[] = [];
    while (this.#resources.length > 0) {
      const r = this.#resources.pop()!;
      if (r.done) continue;
      r.done = true;
      try {
        await r.release();
      } catch (err) {
        errors.push(`${r.what}: ${(err as Error).message}`);
      }
    }
    if (errors.length > 0) throw new Error(`cleanup failed:\n${errors.join('\n')}`);
  }
}
