/**
 * Request deadlines without a timer per request: every pending request sits in one set that a
 * single interval sweeps while anything is pending. A timer per request costs a few
 * microseconds to arm and clear, paid by every write at thousands of writes per second; the
 * sweep costs nothing while requests finish in time, and a deadline fires at most one sweep
 * period late, which is noise against a timeout measured in seconds.
 */

interface Pending {
  deadline: number;
  expire: () => void;
}

/** Default time between sweeps (ms). */
export const DEFAULT_SWEEP_MS = 20;

/** Races promises against wall-clock deadlines, all on one shared timer. */
export class Deadlines {
  readonly #pending = new Set<Pending>();
  readonly #sweepMs: number;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(sweepMs = DEFAULT_SWEEP_MS) {
    this.#sweepMs = sweepMs;
  }

  /** Number of promises still racing (for tests). */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Settles like `promise`, or rejects with `onTimeout()` once `deadline` (a Date.now() value)
   * has passed, whichever comes first.
   */
  race<T>(promise: Promise<T>, deadline: number, onTimeout: () => Error): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const entry: Pending = { deadline, expire: () => reject(onTimeout()) };
      this.#pending.add(entry);
      this.#timer ??= setInterval(() => this.#sweep(), this.#sweepMs);
      promise.then(
        (value) => {
          this.#pending.delete(entry);
          resolve(value);
        },
        (error) => {
          this.#pending.delete(entry);
          reject(error);
        },
      );
    });
  }

  /** Stops the timer; pending races then settle only with their promises. */
  close(): void {
    this.#pending.clear();
    this.#stopTimer();
  }

  #sweep(): void {
    const now = Date.now();
    for (const entry of this.#pending) {
      if (entry.deadline > now) continue;
      this.#pending.delete(entry);
      entry.expire();
    }
    // Stopped only by a sweep that finds nothing, so a steady stream of short requests does
    // not arm and clear the interval once per request.
    if (this.#pending.size === 0) this.#stopTimer();
  }

  #stopTimer(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
