/**
 * What every listener shares to stay up under abuse: a cap on concurrent connections (counted,
 * with refusals, for /metrics), a log that says a repeated problem once per interval instead of
 * once per connection, and an accept loop that outlives EMFILE/ENFILE.
 */

/** Counts a listener's open connections against a cap; refused ones are counted too. */
export class ConnectionGate {
  /** Listener name for logs and metrics ("http", "peer", "mr"). */
  readonly name: string;
  readonly max: number;
  #open = 0;
  #accepted = 0;
  #refused = 0;

  constructor(name: string, max: number) {
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new RangeError(`Invalid connection cap for ${name}: ${max}`);
    }
    this.name = name;
    this.max = max;
  }

  /** Connections open now. */
  get open(): number {
    return this.#open;
  }

  /** Connections admitted since start. */
  get accepted(): number {
    return this.#accepted;
  }

  /** Connections closed at once because the cap was reached, or refused later (auth, limits). */
  get refused(): number {
    return this.#refused;
  }

  /** Admits one connection if under the cap; the caller must call leave() when it ends. */
  enter(): boolean {
    if (this.#open >= this.max) {
      this.#refused++;
      return false;
    }
    this.#open++;
    this.#accepted++;
    return true;
  }

  /** Ends one admitted connection. */
  leave(): void {
    if (this.#open > 0) this.#open--;
  }

  /** Counts a refusal decided after admission (a failed handshake, a timeout). */
  countRefusal(): void {
    this.#refused++;
  }
}

/**
 * Logs a line at most once per interval per key; the next line says how many were suppressed.
 * An attacker who opens thousands of bad connections must not fill the disk with one line each.
 */
export class RateLimitedLog {
  readonly #log: (line: string) => void;
  readonly #intervalMs: number;
  readonly #last = new Map<string, { at: number; suppressed: number }>();

  constructor(log: (line: string) => void, intervalMs = 10_000) {
    this.#log = log;
    this.#intervalMs = intervalMs;
  }

  /** Logs `line` unless a line with this key was logged within the interval. */
  line(key: string, line: string): void {
    const now = performance.now();
    const last = this.#last.get(key);
    if (last && now - last.at < this.#intervalMs) {
      last.suppressed++;
      return;
    }
    const note = last && last.suppressed > 0
      ? ` (${last.suppressed} more like it since the last report)`
      : "";
    this.#last.set(key, { at: now, suppressed: 0 });
    this.#log(line + note);
  }
}

/** Whether an accept error is the process (EMFILE) or system (ENFILE) running out of files. */
export function isOutOfFiles(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  return /too many open files|EMFILE|ENFILE|os error 2[34]\b/i.test(message);
}

const ACCEPT_BACKOFF_MIN_MS = 5;
const ACCEPT_BACKOFF_MAX_MS = 1000;

/**
 * Runs `listener`'s accept loop until it is closed, handing each connection to `onConn`. An
 * accept that fails (out of file descriptors, a connection reset before accept) is retried
 * after a pause that doubles up to a second, and logged once per episode: the loop never stops
 * on its own, so a node that ran out of descriptors recovers as soon as some are released
 * (Go's net/http Server does the same on temporary accept errors).
 */
export async function acceptLoop<C extends Deno.Conn>(
  listener: Deno.Listener<C>,
  name: string,
  onConn: (conn: C) => void,
  log?: (line: string) => void,
): Promise<void> {
  let backoffMs = 0;
  while (true) {
    let conn: C;
    try {
      conn = await listener.accept();
    } catch (error) {
      // Closed by us: the normal way out.
      if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) {
        return;
      }
      if (backoffMs === 0) {
        const detail = error instanceof Error ? error.message : String(error);
        const hint = isOutOfFiles(error) ? " (out of file descriptors)" : "";
        log?.(`Cannot accept ${name} connections${hint}: ${detail}; retrying with backoff`);
      }
      backoffMs = Math.min(Math.max(backoffMs * 2, ACCEPT_BACKOFF_MIN_MS), ACCEPT_BACKOFF_MAX_MS);
      await new Promise((resolve) => setTimeout(resolve, backoffMs));
      continue;
    }
    if (backoffMs > 0) {
      log?.(`Accepting ${name} connections again`);
      backoffMs = 0;
    }
    onConn(conn);
  }
}

/** The soft limit on open files of this process (RLIMIT_NOFILE), or undefined off Linux. */
export function openFileLimit(): number | undefined {
  try {
    const limits = Deno.readTextFileSync("/proc/self/limits");
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
    if (!match || match[1] === "unlimited") return undefined;
    return Number(match[1]);
  } catch {
    return undefined;
  }
}

/** Descriptors kept free of client connections: WAL segments, snapshots, peer dials, stdio. */
const RESERVED_FILES = 64;

/**
 * The default cap per listener: the open-file limit, less a reserve for the node's own files,
 * shared by `listeners` listeners; at most `ceiling`. Capping below the limit is what keeps a
 * node from reaching EMFILE at all (a flood is refused at the cap, one descriptor at a time).
 */
export function defaultConnectionCap(listeners = 3, ceiling = 4096): number {
  const limit = openFileLimit();
  if (limit === undefined) return ceiling;
  return Math.max(8, Math.min(ceiling, Math.floor((limit - RESERVED_FILES) / listeners)));
}

/** Per-listener limits a daemon applies. */
export interface ListenerLimits {
  /** Cap on concurrent connections of each listener. */
  maxConnections: number;
  /** HTTP: time to complete request headers (ms). */
  headerTimeoutMs?: number;
  /** HTTP: idle time allowed between keep-alive requests (ms). */
  idleTimeoutMs?: number;
}
