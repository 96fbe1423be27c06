/**
 * Header and idle timeouts of HTTP connections on one sweeping interval per listener instead of
 * a timer per request. Arming and clearing a timer around every request cost the KV leader
 * about 5% of its CPU under load (Deno 2.9.6 profile: setTimeout/clearTimeout, a Timeout object
 * and a clock read each time); here a request only bumps a counter and stamps a clock value the
 * sweep refreshed, and the sweep itself runs a few times per timeout period. The rule is the
 * one net/deadlines.ts follows for request deadlines; a timeout fires at most two sweep periods
 * late (a tenth of the shorter timeout each), never early.
 */

/** One connection as the sweep sees it. */
export interface SweptConnection {
  /** Requests in progress; a connection with one in progress is never timed out. */
  active: number;
  /** Clock value (IdleSweep.now) when it opened or its last request ended. */
  idleSince: number;
  /** Whether a request has begun: the idle limit applies, else the header limit. */
  started: boolean;
  /** Called once when it timed out. */
  close(): void;
}

/** Shortest and longest time between sweeps (ms). */
const MIN_SWEEP_MS = 10;
const MAX_SWEEP_MS = 1000;

/** Closes connections past their header or idle limit, on one interval while any is tracked. */
export class IdleSweep {
  readonly #headerMs: number;
  readonly #idleMs: number;
  readonly #periodMs: number;
  readonly #onTimeout: () => void;
  readonly #open = new Set<SweptConnection>();
  #now = performance.now();
  #timer: ReturnType<typeof setInterval> | undefined;

  /** `onTimeout` is called for each connection closed by a timeout (to count them). */
  constructor(headerMs: number, idleMs: number, onTimeout: () => void) {
    if (!(headerMs > 0 && idleMs > 0)) {
      throw new RangeError(`Invalid HTTP timeouts: header ${headerMs} ms, idle ${idleMs} ms`);
    }
    this.#headerMs = headerMs;
    this.#idleMs = idleMs;
    this.#periodMs = Math.min(
      MAX_SWEEP_MS,
      Math.max(MIN_SWEEP_MS, Math.floor(Math.min(headerMs, idleMs) / 10)),
    );
    this.#onTimeout = onTimeout;
  }

  /**
   * The monotonic clock as of the last sweep (or track()): at most one sweep period behind,
   * which the sweep allows for. Free to read, unlike performance.now().
   */
  get now(): number {
    return this.#now;
  }

  /** Starts watching a new connection: its header limit runs from now. */
  track(conn: SweptConnection): void {
    // The clock may be stale by far more than a period if no timer ran: refresh it first.
    this.#now = performance.now();
    conn.idleSince = this.#now;
    this.#open.add(conn);
    this.#timer ??= setInterval(() => this.#sweep(), this.#periodMs);
  }

  /** Stops watching a connection (it ended on its own). */
  forget(conn: SweptConnection): void {
    this.#open.delete(conn);
    if (this.#open.size === 0) this.#stop();
  }

  /** Stops the interval and forgets every connection without closing any. */
  close(): void {
    this.#open.clear();
    this.#stop();
  }

  #sweep(): void {
    const now = performance.now();
    this.#now = now;
    // idleSince may lag the truth by one period (a stale `now`): add it so none is cut early.
    const header = this.#headerMs + this.#periodMs;
    const idle = this.#idleMs + this.#periodMs;
    for (const conn of this.#open) {
      if (conn.active > 0) continue;
      if (now - conn.idleSince < (conn.started ? idle : header)) continue;
      this.#open.delete(conn);
      this.#onTimeout();
      conn.close();
    }
    if (this.#open.size === 0) this.#stop();
  }

  #stop(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
