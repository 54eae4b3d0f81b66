import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { NbdTestClient } from './nbd-test-client.js';

// Helpers for replication tests: volume contents, metrics, a background recorder of a
// pair's state and a random writer that counts what was acknowledged, and when.

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** A sparse file of exactly `bytes`. */
export async function sparseFile(path: string, bytes: number): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.truncate(bytes);
  } finally {
    await fh.close();
  }
}

/** A file of `bytes` random bytes. */
export async function randomFile(path: string, bytes: number): Promise<void> {
  const fh = await open(path, 'w');
  try {
    for (let at = 0; at < bytes; at += 1 << 20) await fh.write(randomBytes(Math.min(1 << 20, bytes - at)), 0, undefined, at);
  } finally {
    await fh.close();
  }
}

/** Bytes of `path` in `granularity`-sized blocks that hold anything but zeroes. */
export async function nonZeroBytes(path: string, granularity: number): Promise<number> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const buf = Buffer.alloc(granularity);
    const zero = Buffer.alloc(granularity);
    let n = 0;
    for (let at = 0; at < size; at += granularity) {
      const { bytesRead } = await fh.read(buf, 0, granularity, at);
      if (!buf.subarray(0, bytesRead).equals(zero.subarray(0, bytesRead))) n += bytesRead;
    }
    return n;
  } finally {
    await fh.close();
  }
}

export async function scrapeMetrics(address: string, timeoutMs = 3000): Promise<string> {
  const res = await fetch(`http://${address}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`GET /metrics: HTTP ${res.status}`);
  return res.text();
}

/** Sum of the samples of `name` whose labels include all of `labels`. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have[l[1]!] = l[2]!;
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[4]);
  }
  return sum;
}

/** The state a pair shows in `blockmirror_pair_state` (the one set to 1), or a marker. */
export function stateFromMetrics(text: string, pair: string): string {
  const on: string[] = [];
  let seen = false;
  for (const line of text.split('\n')) {
    const m = /^blockmirror_pair_state\{([^}]*)\}\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (labels['pair'] !== pair) continue;
    seen = true;
    if (Number(m[2]) === 1) on.push(labels['state']!);
  }
  if (!seen) return '<no pair>';
  // None set: the pair is in a state outside the list the metric knows.
  return on.length === 1 ? on[0]! : `<${on.length} states: ${on.join(',')}>`;
}

export interface StateSample {
  t: number;
  state: string;
}

/**
 * Samples a pair's state from a sidecar's /metrics every ~100 ms until stopped. The
 * metrics address is asked for on each sample (the sidecar may be restarted); samples
 * taken while the sidecar is unreachable are counted, not recorded as states.
 */
export class StateRecorder {
  readonly samples: StateSample[] = [];
  unreachable = 0;
  #stopped = false;
  readonly #loop: Promise<void>;

  constructor(address: () => string, pair: string, intervalMs = 100) {
    this.#loop = (async () => {
      while (!this.#stopped) {
        const started = Date.now();
        try {
          const text = await scrapeMetrics(address(), 2000);
          this.samples.push({ t: Date.now(), state: stateFromMetrics(text, pair) });
        } catch {
          this.unreachable++;
        }
        await new Promise((r) => setTimeout(r, Math.max(0, intervalMs - (Date.now() - started))));
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
  }

  /** Distinct states seen, in order of first appearance. */
  get states(): string[] {
    return [...new Set(this.samples.map((s) => s.state))];
  }

  /** The run-length encoded history, for failure messages. */
  history(): string {
    const out: string[] = [];
    const t0 = this.samples[0]?.t ?? 0;
    let last = '';
    for (const s of this.samples) {
      if (s.state !== last) out.push(`+${s.t - t0}ms ${s.state}`);
      last = s.state;
    }
    return out.join(', ');
  }

  /** Samples (first to last) taken in `state`, as a time span; undefined if never seen. */
  span(state: string): { from: number; to: number } | undefined {
    const xs = this.samples.filter((s) => s.state === state);
    return xs.length === 0 ? undefined : { from: xs[0]!.t, to: xs[xs.length - 1]!.t };
  }
}

export interface RandomWriterOptions {
  /** Region written: [from, to). */
  from: number;
  to: number;
  /** Requests in flight. Default 4. */
  depth?: number;
  /** Write sizes picked from. Default 4, 16, 64 and 128 KiB. */
  sizes?: number[];
  /** Offsets are multiples of this. Default 512. */
  align?: number;
  /** Pause of each worker after each write (pacing, to bound the data written). Default 0. */
  pauseMs?: number;
}

/**
 * Keeps `depth` random writes of random data in flight on an NBD connection until
 * stopped; counts acknowledgements (with their times), error replies and failures.
 */
export class RandomWriter {
  acks = 0;
  bytesAcked = 0;
  /** Completion time of every acknowledged write. */
  readonly ackTimes: number[] = [];
  /** Latency of every acknowledged write (same order as ackTimes). */
  readonly ackLatencies: number[] = [];
  /** NBD error replies (a write the server refused). */
  readonly errors: number[] = [];
  /** Requests that got no reply (the connection closed). */
  failures = 0;
  maxLatencyMs = 0;
  readonly #client: NbdTestClient;
  readonly #inFlightSince = new Set<number>();
  #stopped = false;
  readonly #done: Promise<void>;

  constructor(client: NbdTestClient, opts: RandomWriterOptions) {
    this.#client = client;
    const sizes = opts.sizes ?? [4096, 16384, 65536, 131072];
    const align = opts.align ?? 512;
    const worker = async (): Promise<void> => {
      while (!this.#stopped && !client.isClosed) {
        const size = sizes[Math.floor(Math.random() * sizes.length)]!;
        const slots = Math.floor((opts.to - opts.from - size) / align);
        const offset = opts.from + Math.floor(Math.random() * (slots + 1)) * align;
        const started = Date.now();
        const token = started + Math.random();
        this.#inFlightSince.add(token);
        try {
          const r = await client.write(offset, randomBytes(size));
          const now = Date.now();
          this.maxLatencyMs = Math.max(this.maxLatencyMs, now - started);
          if (r.error !== 0) {
            this.errors.push(r.error);
          } else {
            this.acks++;
            this.bytesAcked += size;
            this.ackTimes.push(now);
            this.ackLatencies.push(now - started);
          }
        } catch {
          this.failures++;
        } finally {
          this.#inFlightSince.delete(token);
        }
        if (opts.pauseMs) await new Promise((r) => setTimeout(r, opts.pauseMs));
      }
    };
    this.#done = Promise.all(Array.from({ length: opts.depth ?? 4 }, () => worker())).then(() => undefined);
  }

  /** Acknowledgements completed after `t`. */
  acksSince(t: number): number {
    let n = 0;
    for (const x of this.ackTimes) if (x > t) n++;
    return n;
  }

  /** Longest latency of the writes acknowledged after `t` (0: none). */
  maxLatencySince(t: number): number {
    let m = 0;
    this.ackTimes.forEach((x, i) => {
      if (x > t) m = Math.max(m, this.ackLatencies[i]!);
    });
    return m;
  }

  /** Acknowledgements completed in [from, to]. */
  acksBetween(from: number, to: number): number {
    return this.ackTimes.filter((x) => x >= from && x <= to).length;
  }

  /** Age of the oldest write still waiting for its reply (0: none). */
  get oldestPendingMs(): number {
    let oldest = Infinity;
    for (const t of this.#inFlightSince) oldest = Math.min(oldest, t);
    return oldest === Infinity ? 0 : Date.now() - oldest;
  }

  /** Stops issuing writes and waits for the ones in flight; throws if they hang. */
  async stop(timeoutMs = 15_000): Promise<void> {
    this.#stopped = true;
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<'hung'>((r) => (timer = setTimeout(() => r('hung'), timeoutMs)));
    const r = await Promise.race([this.#done, hung]);
    clearTimeout(timer);
    if (r === 'hung') throw new Error(`${this.#inFlightSince.size} NBD writes still unanswered ${timeoutMs} ms after the writer stopped`);
  }

  get client(): NbdTestClient {
    return this.#client;
  }
}
