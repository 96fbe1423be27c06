/**
 * Deadlines without a timer each: everything waiting for one sits in a set that a single
 * interval sweeps while anything is pending. A timer per request costs a few microseconds to
 * arm and clear, paid by every write and every RPC at thousands per second; the sweep costs
 * nothing while requests finish in time, and a deadline fires at most one sweep period late,
 * which is noise against timeouts measured in seconds.
 */

/** A registered deadline; pass it to cancel() once the wait is over. */
export interface Deadline {
  readonly at: number;
  readonly expire: () => void;
}

/** Default time between sweeps (ms). */
export const DEFAULT_SWEEP_MS = 20;

/**
 * Deadlines on the monotonic clock (performance.now() values), all on one shared timer: a
 * wall-clock step (NTP, an operator) must not fire them early or hold them for an hour.
 */
export class Deadlines {
  readonly #pending = new Set<Deadline>();
  readonly #sweepMs: number;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(sweepMs = DEFAULT_SWEEP_MS) {
    this.#sweepMs = sweepMs;
  }

  /** Number of deadlines still registered (for tests). */
  get pending(): number {
    return this.#pending.size;
  }

  /** Calls `expire` once `at` has passed, unless cancel() comes first. */
  add(at: number, expire: () => void): Deadline {
    const deadline: Deadline = { at, expire };
    this.#pending.add(deadline);
    this.#timer ??= setInterval(() => this.#sweep(), this.#sweepMs);
    return deadline;
  }

  /** Forgets a deadline; it will not fire. */
  cancel(deadline: Deadline): void {
    this.#pending.delete(deadline);
  }

  /** Settles like `promise`, or rejects with `onTimeout()` once `at` (monotonic) has passed. */
  race<T>(promise: Promise<T>, at: number, onTimeout: () => Error): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const deadline = this.add(at, () => reject(onTimeout()));
      promise.then(
        (value) => {
          this.#pending.delete(deadline);
          resolve(value);
        },
        (error) => {
          this.#pending.delete(deadline);
          reject(error);
        },
      );
    });
  }

  /** Stops the timer and forgets every deadline: none of them fires. */
  close(): void {
    this.#pending.clear();
    this.#stopTimer();
  }

  #sweep(): void {
    const now = performance.now();
    for (const deadline of this.#pending) {
      if (deadline.at > now) continue;
      this.#pending.delete(deadline);
      deadline.expire();
    }
    // Stopped only by a sweep that finds nothing, so a steady stream of short waits does not
    // arm and clear the interval once each.
    if (this.#pending.size === 0) this.#stopTimer();
  }

  #stopTimer(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
