/**
 * The replicated KV state machine: keys to byte values, plus the client session table that makes
 * writes exactly-once (Raft thesis §6.3). Every replica applies the same commands in the same
 * order and must reach the same state, so nothing here reads a clock or a random source: session
 * expiry is driven by the `time` the leader stamped into each command.
 *
 * Sessions are bounded two ways, both deterministic across replicas:
 * - TTL: a session idle for longer than `sessionTtlMs` of command time is forgotten. A client
 *   that retries a write after being silent that long may see it applied twice; the default
 *   (10 minutes) is far above any client's retry deadline.
 * - Count: at most `maxSessions` sessions; beyond that the least recently used one is evicted.
 * The session map is kept in least-recently-used order (a JS Map preserves insertion order and a
 * touch re-inserts), so both rules only ever look at its front: O(1) amortised per command.
 *
 * One outstanding write per client id is assumed (as in the classic lab): a sequence number
 * lower than the session's last one is answered with a "stale" result rather than applied.
 */
import { Decoder, Encoder } from "@msgpack/msgpack";
import type { Entry, StateMachine } from "../raft/types.ts";
import { CommandError, decodeCommand, type KvCommand } from "./commands.ts";

/** What applying one command produced; handed back to the proposer through Raft's propose(). */
export type ApplyResult =
  /** Applied. For del, `existed` says whether the key was there (HTTP 404 when not). */
  | { status: "ok"; existed?: boolean }
  /** cas precondition failed; nothing changed. `current` is the value now (null = absent). */
  | { status: "mismatch"; current: Uint8Array | null }
  /** The log entry was not a valid command; nothing changed. */
  | { status: "invalid"; error: string }
  /** The (client id, seq) is older than that client's last applied one; nothing changed. */
  | { status: "stale"; error: string };

function nullableBytes(value: unknown, field: string): Uint8Array | null {
  if (value === undefined || value === null) return null;
  if (value instanceof Uint8Array) return value;
  throw new TypeError(`Invalid KV reply: ${field} must be bytes or null`);
}

/**
 * Validates an ApplyResult that crossed the network (a leader's reply to a forwarded write);
 * throws TypeError when malformed. A new result shape is taught here, beside its type.
 */
export function validateApplyResult(raw: unknown): ApplyResult {
  if (typeof raw !== "object" || raw === null) {
    throw new TypeError("Invalid KV reply: result must be an object");
  }
  const r = raw as Record<string, unknown>;
  switch (r.status) {
    case "ok":
      if (typeof r.existed === "boolean") return { status: "ok", existed: r.existed };
      if (r.existed !== undefined && r.existed !== null) {
        throw new TypeError("Invalid KV reply: existed must be a boolean");
      }
      return { status: "ok" };
    case "mismatch":
      return { status: "mismatch", current: nullableBytes(r.current, "current") };
    case "invalid":
    case "stale":
      if (typeof r.error !== "string") throw new TypeError("Invalid KV reply: error must be text");
      return { status: r.status, error: r.error };
    default:
      throw new TypeError(`Invalid KV reply: unknown result status: ${String(r.status)}`);
  }
}

/** Tuning for the session table; both bounds are documented in the module comment. */
export interface KvStateMachineOptions {
  /** Sessions idle longer than this (in command time, ms) expire. Default 10 minutes. */
  sessionTtlMs?: number;
  /** Most sessions kept; the least recently used is evicted beyond it. Default 100000. */
  maxSessions?: number;
}

/** Default session TTL: 10 minutes of leader clock time. */
export const DEFAULT_SESSION_TTL_MS = 10 * 60 * 1000;
/** Default bound on the number of client sessions. */
export const DEFAULT_MAX_SESSIONS = 100_000;

interface Session {
  seq: number;
  lastUsed: number;
  result: ApplyResult;
}

const SNAPSHOT_VERSION = 1;
const encoder = new Encoder();
const decoder = new Decoder();

/** KV state machine the Raft driver applies committed entries to (see raft/types.ts). */
export class KvStateMachine implements StateMachine {
  #data = new Map<string, Uint8Array>();
  #sessions = new Map<string, Session>();
  #appliedIndex = 0;
  #now = 0;
  #valueBytes = 0;
  readonly #ttl: number;
  readonly #maxSessions: number;

  constructor(options: KvStateMachineOptions = {}) {
    this.#ttl = options.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS;
    this.#maxSessions = options.maxSessions ?? DEFAULT_MAX_SESSIONS;
    if (!(this.#ttl > 0)) throw new RangeError(`Invalid session TTL: ${this.#ttl}`);
    if (!Number.isInteger(this.#maxSessions) || this.#maxSessions < 1) {
      throw new RangeError(`Invalid session limit: ${this.#maxSessions}`);
    }
  }

  /** Index of the last entry applied (or restored from a snapshot). */
  get appliedIndex(): number {
    return this.#appliedIndex;
  }

  /** Number of live keys. */
  get size(): number {
    return this.#data.size;
  }

  /** Total bytes of all live values (for metrics). */
  get valueBytes(): number {
    return this.#valueBytes;
  }

  /** Number of client sessions currently remembered. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Current value of `key`, or null when absent. The caller must not mutate the bytes. */
  get(key: string): Uint8Array | null {
    return this.#data.get(key) ?? null;
  }

  /**
   * Applies one committed entry. Empty data is the leader's no-op: returns undefined. Entries at
   * or below the applied index (already covered by a restored snapshot) are skipped likewise.
   */
  apply(entry: Entry): ApplyResult | undefined {
    if (entry.index <= this.#appliedIndex) return undefined;
    this.#appliedIndex = entry.index;
    if (entry.data.length === 0) return undefined;
    let command: KvCommand;
    try {
      command = decodeCommand(entry.data);
    } catch (error) {
      // Deterministic on every replica: the same bytes fail the same way, and state is untouched.
      if (error instanceof CommandError) return { status: "invalid", error: error.message };
      throw error;
    }
    // The leader's clock may step back across leader changes; never let expiry time regress.
    if (command.time > this.#now) this.#now = command.time;
    this.#expireSessions();
    if (command.clientId === undefined) return this.#execute(command);

    const clientId = command.clientId;
    const seq = command.seq!;
    const session = this.#sessions.get(clientId);
    if (session !== undefined) {
      this.#sessions.delete(clientId);
      session.lastUsed = this.#now;
      this.#sessions.set(clientId, session);
      if (seq === session.seq) return session.result;
      if (seq < session.seq) {
        return {
          status: "stale",
          error: `Request sequence number is older than the last applied: ${seq} < ${session.seq}`,
        };
      }
      session.seq = seq;
      session.result = this.#execute(command);
      return session.result;
    }
    const result = this.#execute(command);
    this.#sessions.set(clientId, { seq, lastUsed: this.#now, result });
    if (this.#sessions.size > this.#maxSessions) {
      this.#sessions.delete(this.#sessions.keys().next().value!);
    }
    return result;
  }

  #expireSessions(): void {
    const cutoff = this.#now - this.#ttl;
    for (const [id, session] of this.#sessions) {
      if (session.lastUsed >= cutoff) break;
      this.#sessions.delete(id);
    }
  }

  #execute(command: KvCommand): ApplyResult {
    const key = command.key;
    const current = this.#data.get(key);
    switch (command.op) {
      case "put":
        this.#set(key, current, command.value!);
        return { status: "ok" };
      case "append": {
        const suffix = command.value!;
        if (current === undefined) {
          this.#set(key, current, suffix);
        } else {
          const joined = new Uint8Array(current.length + suffix.length);
          joined.set(current, 0);
          joined.set(suffix, current.length);
          this.#set(key, current, joined);
        }
        return { status: "ok" };
      }
      case "del":
        if (current === undefined) return { status: "ok", existed: false };
        this.#data.delete(key);
        this.#valueBytes -= current.length;
        return { status: "ok", existed: true };
      case "cas": {
        const expect = command.expect ?? null;
        const matches = expect === null
          ? current === undefined
          : current !== undefined && bytesEqual(current, expect);
        if (!matches) return { status: "mismatch", current: current ?? null };
        this.#set(key, current, command.value!);
        return { status: "ok" };
      }
    }
  }

  #set(key: string, previous: Uint8Array | undefined, value: Uint8Array): void {
    // Decoded values are views into the entry's buffer; copy so the map does not pin it.
    const owned = value.byteOffset === 0 && value.byteLength === value.buffer.byteLength
      ? value
      : value.slice();
    this.#data.set(key, owned);
    this.#valueBytes += owned.length - (previous?.length ?? 0);
  }

  /** Serialises live keys, the session table and the applied index (no log, no tombstones). */
  snapshot(): Uint8Array {
    const pairs: (string | Uint8Array)[] = new Array(this.#data.size * 2);
    let i = 0;
    for (const [key, value] of this.#data) {
      pairs[i++] = key;
      pairs[i++] = value;
    }
    const sessions: (string | number | Uint8Array | boolean | null)[] = [];
    for (const [id, s] of this.#sessions) {
      // Only ok and mismatch results are ever cached (see apply), so two fields suffice.
      const r = s.result;
      if (r.status === "ok") sessions.push(id, s.seq, s.lastUsed, 0, r.existed ?? null);
      else if (r.status === "mismatch") sessions.push(id, s.seq, s.lastUsed, 1, r.current);
    }
    return encoder.encode([SNAPSHOT_VERSION, this.#appliedIndex, this.#now, pairs, sessions]);
  }

  /** Replaces the whole state with snapshot data; empty data means the initial empty state. */
  restore(data: Uint8Array): void {
    const fresh = new Map<string, Uint8Array>();
    const sessions = new Map<string, Session>();
    let applied = 0;
    let now = 0;
    let valueBytes = 0;
    if (data.length > 0) {
      const raw = decoder.decode(data);
      if (!Array.isArray(raw) || raw.length !== 5 || raw[0] !== SNAPSHOT_VERSION) {
        throw new Error("Cannot restore KV snapshot: unknown format");
      }
      const [, index, time, pairs, flat] = raw as [unknown, unknown, unknown, unknown, unknown];
      if (
        typeof index !== "number" || typeof time !== "number" || !Array.isArray(pairs) ||
        !Array.isArray(flat) || pairs.length % 2 !== 0 || flat.length % 5 !== 0
      ) {
        throw new Error("Cannot restore KV snapshot: malformed header");
      }
      applied = index;
      now = time;
      for (let i = 0; i < pairs.length; i += 2) {
        const key = pairs[i];
        const value = pairs[i + 1];
        if (typeof key !== "string" || !(value instanceof Uint8Array)) {
          throw new Error(`Cannot restore KV snapshot: bad key/value pair at ${i / 2}`);
        }
        const owned = value.slice();
        fresh.set(key, owned);
        valueBytes += owned.length;
      }
      for (let i = 0; i < flat.length; i += 5) {
        const [id, seq, lastUsed, kind, payload] = flat.slice(i, i + 5);
        if (typeof id !== "string" || typeof seq !== "number" || typeof lastUsed !== "number") {
          throw new Error(`Cannot restore KV snapshot: bad session at ${i / 5}`);
        }
        let result: ApplyResult;
        if (kind === 0 && (payload === null || typeof payload === "boolean")) {
          result = payload === null ? { status: "ok" } : { status: "ok", existed: payload };
        } else if (kind === 1 && (payload === null || payload instanceof Uint8Array)) {
          result = { status: "mismatch", current: payload === null ? null : payload.slice() };
        } else {
          throw new Error(`Cannot restore KV snapshot: bad session result at ${i / 5}`);
        }
        sessions.set(id, { seq, lastUsed, result });
      }
    }
    this.#data = fresh;
    this.#sessions = sessions;
    this.#appliedIndex = applied;
    this.#now = now;
    this.#valueBytes = valueBytes;
  }
}

/** Byte-wise equality of two arrays. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
