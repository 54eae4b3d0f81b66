import { InvalidArgumentError } from '../../errors.js';

export const DEFAULT_MIN_RESYNC_WINDOW = 256 * 1024;
export const DEFAULT_MAX_RESYNC_WINDOW = 64 * 1024 * 1024;

export interface ResyncControllerOptions {
  /**
   * Clock in milliseconds; every `nowMs` argument must come from the same clock. Default
   * performance.now: monotonic, so a wall clock step neither expires nor freezes what
   * was measured.
   */
  now?: () => number;
  /** Default 256 KiB. */
  minWindowBytes?: number;
  /** Default 64 MiB. */
  maxWindowBytes?: number;
  /** Acknowledged bytes are averaged over this span into a bandwidth. Default 1000 ms. */
  bandwidthWindowMs?: number;
  /** Weight of a new sample in the smoothed RTT. Default 1/8, as TCP's SRTT. */
  rttGain?: number;
  /** A minimum RTT not seen again for this long is measured afresh. Default 10 s. */
  minRttWindowMs?: number;
  /** Hard cap on the resync rate; 0 or undefined: none. */
  maxBytesPerSecond?: number;
  /** Depth of the rate cap's token bucket. Default max(256 KiB, 100 ms at the cap). */
  burstBytes?: number;
}

/**
 * How much resync data may be in flight, as DRBD's dynamic resync controller: about
 * twice the bandwidth-delay product, so the link stays busy without a deep queue in
 * front of the foreground writes that share it. Optionally under a hard rate cap.
 *
 * The delay in the product is the minimum RTT seen lately, not the smoothed RTT: RTTs
 * measured while our own data queues grow with the window, and 2 × bandwidth × smoothed
 * RTT would double the window every round trip until it hit the maximum. As BBR does,
 * a minimum not seen again for `minRttWindowMs` is measured afresh: the window closes
 * until nothing is in flight, and the first frame sent after that gives the new minimum
 * (a few round trips of lower throughput every 10 s).
 */
export class ResyncController {
  readonly minWindowBytes: number;
  readonly maxWindowBytes: number;
  readonly #now: () => number;
  readonly #bandwidthWindowMs: number;
  readonly #rttGain: number;
  readonly #minRttWindowMs: number;
  readonly #burstOption: number | undefined;
  #inFlight = 0;
  // Acknowledgements in the bandwidth window: parallel queues, oldest first from #ackHead.
  #ackTimes: number[] = [];
  #ackBytes: number[] = [];
  #ackHead = 0;
  #ackSum = 0;
  /** Start of the current measurement: the first send after an idle period. */
  #measureFrom: number | undefined;
  #srtt: number | undefined;
  #minRtt: number | undefined;
  #minRttAt = 0;
  #probing = false;
  #drainedAt: number | undefined;
  #rate = 0;
  #burst = 0;
  #tokens = 0;
  #refilledAt = 0;

  constructor(options: ResyncControllerOptions = {}) {
    this.#now = options.now ?? (() => performance.now());
    this.minWindowBytes = options.minWindowBytes ?? DEFAULT_MIN_RESYNC_WINDOW;
    this.maxWindowBytes = options.maxWindowBytes ?? DEFAULT_MAX_RESYNC_WINDOW;
    this.#bandwidthWindowMs = options.bandwidthWindowMs ?? 1000;
    this.#rttGain = options.rttGain ?? 1 / 8;
    this.#minRttWindowMs = options.minRttWindowMs ?? 10_000;
    this.#burstOption = options.burstBytes;
    positive('minWindowBytes', this.minWindowBytes);
    positive('maxWindowBytes', this.maxWindowBytes);
    if (this.maxWindowBytes < this.minWindowBytes) throw new InvalidArgumentError('maxWindowBytes is below minWindowBytes');
    positive('bandwidthWindowMs', this.#bandwidthWindowMs);
    positive('minRttWindowMs', this.#minRttWindowMs);
    if (!(this.#rttGain > 0 && this.#rttGain <= 1)) throw new InvalidArgumentError(`rttGain must be in (0, 1], not ${this.#rttGain}`);
    if (this.#burstOption !== undefined) positive('burstBytes', this.#burstOption);
    this.setMaxBytesPerSecond(options.maxBytesPerSecond);
  }

  /** Bytes sent and neither acknowledged nor dropped. */
  get inFlightBytes(): number {
    return this.#inFlight;
  }

  /** EWMA of the RTT samples, for display and timeouts; undefined before the first. */
  get smoothedRttMs(): number | undefined {
    return this.#srtt;
  }

  /** The RTT the window is computed from; undefined before the first sample. */
  get minRttMs(): number | undefined {
    return this.#minRtt;
  }

  /** True while the window is held at its minimum to measure the RTT afresh. */
  get probingRtt(): boolean {
    return this.#probing;
  }

  /** The hard cap, 0 when there is none. */
  get maxBytesPerSecond(): number {
    return this.#rate;
  }

  /** Changes the hard cap (0 or undefined: none); takes effect at once. */
  setMaxBytesPerSecond(rate: number | undefined, nowMs: number = this.#now()): void {
    const r = rate ?? 0;
    if (!(Number.isFinite(r) && r >= 0)) throw new InvalidArgumentError(`invalid maxBytesPerSecond ${rate}`);
    const wasCapped = this.#rate > 0;
    this.#refill(nowMs);
    this.#rate = r;
    this.#burst = r === 0 ? 0 : (this.#burstOption ?? Math.max(DEFAULT_MIN_RESYNC_WINDOW, r / 10));
    // A new cap starts with a full bucket; a changed one keeps what it had saved.
    this.#tokens = wasCapped ? Math.min(this.#tokens, this.#burst) : this.#burst;
    this.#refilledAt = nowMs;
  }

  /** Measured throughput of acknowledged bytes over the bandwidth window. */
  bandwidthBytesPerSecond(nowMs: number = this.#now()): number {
    const span = this.#measuredSpan(nowMs);
    return span === 0 ? 0 : (this.#ackSum * 1000) / span;
  }

  /**
   * Bytes that may be in flight: clamp(2 × bandwidth × minimum RTT, min, max). While the
   * RTT is re-measured it is 0 until nothing is in flight (only then does a frame see an
   * empty queue), then the minimum.
   */
  window(nowMs: number = this.#now()): number {
    this.#maybeStartProbe(nowMs);
    if (this.#probing) return this.#drainedAt === undefined ? 0 : this.minWindowBytes;
    const span = this.#measuredSpan(nowMs);
    if (this.#minRtt === undefined || span === 0) return this.minWindowBytes;
    const w = Math.round((2 * this.#ackSum * this.#minRtt) / span);
    return Math.min(this.maxWindowBytes, Math.max(this.minWindowBytes, w));
  }

  /**
   * True when `bytes` more may be sent now: within the window (always, when nothing is
   * in flight, so a frame larger than the window cannot stall) and under the rate cap.
   */
  canSend(bytes: number, nowMs: number = this.#now()): boolean {
    const windowOk = this.#inFlight === 0 || this.#inFlight + bytes <= this.window(nowMs);
    return windowOk && this.delayMs(bytes, nowMs) === 0;
  }

  /**
   * Milliseconds until the rate cap lets `bytes` go; 0 without a cap. The window is not
   * time-bound: when it is full, wait for an acknowledgement instead.
   */
  delayMs(bytes: number, nowMs: number = this.#now()): number {
    if (this.#rate === 0) return 0;
    this.#refill(nowMs);
    // A send larger than the bucket goes once the bucket is full, leaving a debt that
    // later sends wait out: the average rate stays under the cap.
    const need = Math.min(bytes, this.#burst);
    return this.#tokens >= need ? 0 : Math.ceil(((need - this.#tokens) * 1000) / this.#rate);
  }

  onSent(bytes: number, nowMs: number = this.#now()): void {
    nonNegative('bytes', bytes);
    this.#expireAcks(nowMs);
    if (this.#inFlight === 0 && this.#ackSum === 0) this.#measureFrom = nowMs;
    this.#inFlight += bytes;
    if (this.#rate > 0) {
      this.#refill(nowMs);
      this.#tokens -= bytes;
    }
  }

  /** `bytes` acknowledged by the peer, `rttMs` after they were sent. */
  onAcked(bytes: number, rttMs: number, nowMs: number = this.#now()): void {
    nonNegative('bytes', bytes);
    nonNegative('rttMs', rttMs);
    this.#srtt = this.#srtt === undefined ? rttMs : this.#srtt + this.#rttGain * (rttMs - this.#srtt);
    this.#maybeStartProbe(nowMs);
    const clean = this.#probing && this.#drainedAt !== undefined && nowMs - rttMs >= this.#drainedAt;
    if (this.#minRtt === undefined || rttMs <= this.#minRtt || clean) {
      this.#minRtt = rttMs;
      this.#minRttAt = nowMs;
      this.#probing = false;
      this.#drainedAt = undefined;
    }
    this.#inFlight = Math.max(0, this.#inFlight - bytes);
    this.#measureFrom ??= nowMs - rttMs;
    if (bytes > 0) {
      this.#ackTimes.push(nowMs);
      this.#ackBytes.push(bytes);
      this.#ackSum += bytes;
    }
    this.#noteDrained(nowMs);
  }

  /** `bytes` sent that will never be acknowledged (a refused frame, a broken stream). */
  onDropped(bytes: number, nowMs: number = this.#now()): void {
    nonNegative('bytes', bytes);
    this.#inFlight = Math.max(0, this.#inFlight - bytes);
    this.#noteDrained(nowMs);
  }

  /** Forgets everything measured and in flight (a new session); keeps the rate cap's state. */
  reset(): void {
    this.#inFlight = 0;
    this.#ackTimes = [];
    this.#ackBytes = [];
    this.#ackHead = 0;
    this.#ackSum = 0;
    this.#measureFrom = undefined;
    this.#srtt = undefined;
    this.#minRtt = undefined;
    this.#minRttAt = 0;
    this.#probing = false;
    this.#drainedAt = undefined;
  }

  /** Milliseconds the acknowledged bytes in the window were measured over; 0: none. */
  #measuredSpan(nowMs: number): number {
    this.#expireAcks(nowMs);
    if (this.#ackSum === 0 || this.#measureFrom === undefined) return 0;
    // Until a whole window has passed, average over the time since sending started.
    return Math.max(1, Math.min(this.#bandwidthWindowMs, nowMs - this.#measureFrom));
  }

  #expireAcks(nowMs: number): void {
    const horizon = nowMs - this.#bandwidthWindowMs;
    while (this.#ackHead < this.#ackTimes.length && this.#ackTimes[this.#ackHead]! <= horizon) {
      this.#ackSum -= this.#ackBytes[this.#ackHead]!;
      this.#ackHead++;
    }
    if (this.#ackHead === this.#ackTimes.length) {
      this.#ackTimes = [];
      this.#ackBytes = [];
      this.#ackHead = 0;
      this.#ackSum = 0; // no drift from float sums
    } else if (this.#ackHead > 1024 && this.#ackHead * 2 > this.#ackTimes.length) {
      this.#ackTimes = this.#ackTimes.slice(this.#ackHead);
      this.#ackBytes = this.#ackBytes.slice(this.#ackHead);
      this.#ackHead = 0;
    }
  }

  #maybeStartProbe(nowMs: number): void {
    if (this.#probing || this.#minRtt === undefined || nowMs - this.#minRttAt <= this.#minRttWindowMs) return;
    this.#probing = true;
    this.#drainedAt = undefined;
    this.#noteDrained(nowMs);
  }

  #noteDrained(nowMs: number): void {
    if (this.#probing && this.#drainedAt === undefined && this.#inFlight === 0) this.#drainedAt = nowMs;
  }

  #refill(nowMs: number): void {
    if (this.#rate === 0) return;
    const elapsed = nowMs - this.#refilledAt;
    // A clock that steps back (an injected wall clock) refills nothing, and is followed
    // from there: waiting for it to catch up could stall the resync for hours.
    if (elapsed > 0) this.#tokens = Math.min(this.#burst, this.#tokens + (this.#rate * elapsed) / 1000);
    this.#refilledAt = nowMs;
  }
}

function positive(name: string, n: number): void {
  if (!(Number.isFinite(n) && n > 0)) throw new InvalidArgumentError(`${name} must be a positive number, not ${n}`);
}

function nonNegative(name: string, n: number): void {
  if (!(Number.isFinite(n) && n >= 0)) throw new InvalidArgumentError(`${name} must be a non-negative number, not ${n}`);
}
