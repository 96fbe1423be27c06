/**
 * A shared bound on bytes held on behalf of many connections: the buffers of frames that have
 * started to arrive but are not complete. Without it, N connections each sending half of a
 * maximal frame hold N half-frames of memory (20 x 32 MiB was 750 MB of resident memory); with
 * it, the connection whose buffer would cross the bound is closed instead.
 */

/** Default process-wide bound on partially received frames: 256 MiB. */
export const DEFAULT_PARTIAL_FRAME_BUDGET_BYTES = 256 * 1024 * 1024;

/** Counts reserved bytes against a fixed limit; reserve() refuses what would exceed it. */
export class ByteBudget {
  readonly limit: number;
  #used = 0;
  #refusals = 0;

  constructor(limit: number) {
    if (!Number.isSafeInteger(limit) || limit <= 0) {
      throw new RangeError(`Invalid byte budget: ${limit}`);
    }
    this.limit = limit;
  }

  /** Bytes reserved now. */
  get used(): number {
    return this.#used;
  }

  /** How many reservations were refused since start. */
  get refusals(): number {
    return this.#refusals;
  }

  /** Reserves `bytes` if they fit under the limit; returns whether they did. */
  reserve(bytes: number): boolean {
    if (this.#used + bytes > this.limit) {
      this.#refusals++;
      return false;
    }
    this.#used += bytes;
    return true;
  }

  /** Gives back bytes reserved earlier. */
  release(bytes: number): void {
    this.#used = Math.max(0, this.#used - bytes);
  }
}

/**
 * The budget every frame decoder of this process shares unless given its own: one process, one
 * memory, so one bound (set it at start with `partialFrameBudget.limit` via a new instance).
 */
export let partialFrameBudget = new ByteBudget(DEFAULT_PARTIAL_FRAME_BUDGET_BYTES);

/** Replaces the process-wide budget (at start, before any connection exists). */
export function setPartialFrameBudget(limit: number): void {
  partialFrameBudget = new ByteBudget(limit);
}
