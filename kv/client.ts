/**
 * Native KV client over the peers' RPC port (method "kv", see kv/service.ts). Any node accepts any
 * request (followers forward to the leader), so the client only needs to find a live node: it
 * rotates through the endpoints on connection errors, timeouts and "unavailable" answers, and
 * goes straight to the leader when a reply names it.
 *
 * Exactly-once: the client has a random id; each write takes the next sequence number, and every
 * retry of that write reuses the same (client id, seq), so the state machine applies it once.
 * Writes from one KvClient are issued one at a time, in call order, because the session table
 * keeps only each client's last sequence number (classic lab assumption). Use several clients
 * for parallel writes; reads are not serialised.
 */
import { ConnectionLostError, RemoteError, RpcClient, RpcTimeoutError } from "../net/rpc.ts";
import {
  KV_RPC_METHOD,
  type KvRpcParams,
  type KvRpcReply,
  TIMEOUT_PREFIX,
  UNAVAILABLE_PREFIX,
} from "./service.ts";

/** One connection to one endpoint, as the client uses it (RpcClient fits; tests inject fakes). */
export interface KvConnection {
  call(method: string, params: unknown, options: { timeoutMs: number }): Promise<unknown>;
  close(): void;
}

/** Options of KvClient. */
export interface KvClientOptions {
  /** Overall deadline for one operation, retries included, in ms (default 10000). */
  timeoutMs?: number;
  /** Timeout of one attempt against one endpoint, in ms (default 2000). */
  callTimeoutMs?: number;
  /** First pause before retrying after "unavailable" or a full round of failures (default 50). */
  retryPauseMs?: number;
  /** Cap on the retry pause, which doubles on each consecutive failure (default 1000). */
  maxRetryPauseMs?: number;
  /** Client id for exactly-once writes (default: 62 random bits in hex). */
  clientId?: string;
  /** Opens a connection to "host:port" (default: an RpcClient). */
  connect?: (endpoint: string) => KvConnection;
}

/** An operation did not complete before its deadline; a write's outcome is unknown. */
export class DeadlineExceededError extends Error {
  /** The last error seen while retrying, if any. */
  readonly lastError: Error | undefined;
  constructor(message: string, lastError?: Error) {
    super(lastError ? `${message}: ${lastError.message}` : message);
    this.name = "DeadlineExceededError";
    this.lastError = lastError;
  }
}

/** The cluster refused the request for good (bad key, too large, ...): retrying cannot help. */
export class KvRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KvRequestError";
  }
}

/** Parses "host:port" (IPv6 hosts in brackets); throws TypeError when malformed. */
export function parseEndpoint(endpoint: string): { hostname: string; port: number } {
  const colon = endpoint.lastIndexOf(":");
  const rawHost = colon > 0 ? endpoint.slice(0, colon) : "";
  const hostname = rawHost.startsWith("[") && rawHost.endsWith("]")
    ? rawHost.slice(1, -1)
    : rawHost;
  const portText = endpoint.slice(colon + 1);
  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (hostname.length === 0 || !(port >= 1 && port <= 65535)) {
    throw new TypeError(`Invalid endpoint: expected host:port: ${endpoint}`);
  }
  return { hostname, port };
}

function randomClientId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  bytes[0] &= 0x3f; // 62 bits, as in the classic lab.
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const textEncoder = new TextEncoder();

function toBytes(value: Uint8Array | string): Uint8Array {
  return typeof value === "string" ? textEncoder.encode(value) : value;
}

function optionalBytes(value: unknown, field: string): Uint8Array | null | undefined {
  if (value === undefined || value === null || value instanceof Uint8Array) return value;
  throw new TypeError(`Invalid KV reply: ${field} must be bytes or null`);
}

/** Validates a reply from the network. */
function parseReply(raw: unknown): KvRpcReply {
  if (typeof raw !== "object" || raw === null) {
    throw new TypeError("Invalid KV reply: not an object");
  }
  const r = raw as Record<string, unknown>;
  if (typeof r.ok !== "boolean" || typeof r.index !== "number") {
    throw new TypeError("Invalid KV reply: missing ok or index");
  }
  const reply: KvRpcReply = { ok: r.ok, index: r.index };
  const value = optionalBytes(r.value, "value");
  if (value !== undefined) reply.value = value;
  const current = optionalBytes(r.current, "current");
  if (current !== undefined) reply.current = current;
  if (typeof r.existed === "boolean") reply.existed = r.existed;
  if (typeof r.leader === "string") reply.leader = r.leader;
  return reply;
}

/** A KV client over the native protocol with leader discovery and exactly-once retries. */
export class KvClient {
  readonly #endpoints: string[];
  readonly #connections = new Map<string, KvConnection>();
  readonly #sleepers = new Set<() => void>();
  readonly #timeoutMs: number;
  readonly #callTimeoutMs: number;
  readonly #retryPauseMs: number;
  readonly #maxRetryPauseMs: number;
  readonly #clientId: string;
  readonly #connect: (endpoint: string) => KvConnection;
  #current = 0;
  #seq = 0;
  #writes: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(endpoints: string[], options: KvClientOptions = {}) {
    if (endpoints.length === 0) throw new TypeError("KvClient needs at least one endpoint");
    for (const endpoint of endpoints) parseEndpoint(endpoint);
    this.#endpoints = [...endpoints];
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#callTimeoutMs = options.callTimeoutMs ?? 2_000;
    this.#retryPauseMs = options.retryPauseMs ?? 50;
    this.#maxRetryPauseMs = options.maxRetryPauseMs ?? 1_000;
    this.#clientId = options.clientId ?? randomClientId();
    this.#connect = options.connect ??
      ((endpoint) => new RpcClient(parseEndpoint(endpoint), { timeoutMs: this.#callTimeoutMs }));
    // Spread load (and first-contact failures) across clients.
    this.#current = Math.floor(Math.random() * endpoints.length);
  }

  /** This client's id for exactly-once writes. */
  get clientId(): string {
    return this.#clientId;
  }

  /** The endpoint the next request goes to first (the leader, once a reply named it). */
  get preferredEndpoint(): string {
    return this.#endpoints[this.#current];
  }

  /** Reads a key: linearizable unless `stale`; value null when absent. */
  async get(
    key: string,
    options: { stale?: boolean } = {},
  ): Promise<{ value: Uint8Array | null; index: number }> {
    const reply = await this.#run({ op: "get", key, stale: options.stale === true });
    return { value: reply.value ?? null, index: reply.index };
  }

  /** Sets a key. */
  async put(key: string, value: Uint8Array | string): Promise<{ index: number }> {
    const reply = await this.#write({ op: "put", key, value: toBytes(value) });
    return { index: reply.index };
  }

  /** Appends to a key's value (a missing key acts as empty). */
  async append(key: string, value: Uint8Array | string): Promise<{ index: number }> {
    const reply = await this.#write({ op: "append", key, value: toBytes(value) });
    return { index: reply.index };
  }

  /** Deletes a key; `existed` says whether it was there. */
  async del(key: string): Promise<{ index: number; existed: boolean }> {
    const reply = await this.#write({ op: "del", key });
    return { index: reply.index, existed: reply.existed === true };
  }

  /**
   * Sets `key` to `value` only if it currently equals `expect` (null: only if absent). Returns
   * ok and the value now held (the new value on success, the current one on mismatch).
   */
  async cas(
    key: string,
    expect: Uint8Array | string | null,
    value: Uint8Array | string,
  ): Promise<{ ok: boolean; index: number; current: Uint8Array | null }> {
    const bytes = toBytes(value);
    const reply = await this.#write({
      op: "cas",
      key,
      value: bytes,
      expect: expect === null ? null : toBytes(expect),
    });
    return { ok: reply.ok, index: reply.index, current: reply.ok ? bytes : reply.current ?? null };
  }

  /** Closes every connection; pending and later operations fail. */
  close(): void {
    this.#closed = true;
    for (const wake of [...this.#sleepers]) wake();
    for (const connection of this.#connections.values()) connection.close();
    this.#connections.clear();
  }

  #write(params: KvRpcParams): Promise<KvRpcReply> {
    params.clientId = this.#clientId;
    params.seq = ++this.#seq;
    const run = this.#writes.then(() => this.#run(params));
    this.#writes = run.catch(() => {});
    return run;
  }

  async #run(params: KvRpcParams): Promise<KvRpcReply> {
    const deadline = Date.now() + this.#timeoutMs;
    let pause = this.#retryPauseMs;
    let failuresThisRound = 0;
    let lastError: Error | undefined;
    while (true) {
      if (this.#closed) throw new ConnectionLostError("KvClient is closed");
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new DeadlineExceededError(
          `KV ${params.op} ${params.key} did not complete within ${this.#timeoutMs} ms`,
          lastError,
        );
      }
      const endpoint = this.#endpoints[this.#current];
      try {
        const raw = await this.#connection(endpoint).call(KV_RPC_METHOD, params, {
          timeoutMs: Math.min(this.#callTimeoutMs, remaining),
        });
        const reply = parseReply(raw);
        if (reply.leader !== undefined) this.#prefer(reply.leader);
        return reply;
      } catch (error) {
        if (error instanceof RemoteError) {
          const unavailable = error.message.startsWith(UNAVAILABLE_PREFIX);
          if (!unavailable && !error.message.startsWith(TIMEOUT_PREFIX)) {
            throw new KvRequestError(error.message);
          }
          // The node answered but has no leader (or lost its write): another node may do better,
          // and an election takes a moment, so pause before every retry.
          lastError = error;
          this.#rotate();
          await this.#sleep(Math.min(pause, deadline - Date.now()));
          pause = Math.min(pause * 2, this.#maxRetryPauseMs);
        } else if (error instanceof RpcTimeoutError || error instanceof ConnectionLostError) {
          lastError = error;
          this.#rotate();
          // Dead nodes fail fast: try every endpoint once before pausing.
          if (++failuresThisRound >= this.#endpoints.length) {
            failuresThisRound = 0;
            await this.#sleep(Math.min(pause, deadline - Date.now()));
            pause = Math.min(pause * 2, this.#maxRetryPauseMs);
          }
        } else {
          throw error;
        }
      }
    }
  }

  #connection(endpoint: string): KvConnection {
    let connection = this.#connections.get(endpoint);
    if (connection === undefined) {
      connection = this.#connect(endpoint);
      this.#connections.set(endpoint, connection);
    }
    return connection;
  }

  #rotate(): void {
    this.#current = (this.#current + 1) % this.#endpoints.length;
  }

  #prefer(leader: string): void {
    let i = this.#endpoints.indexOf(leader);
    if (i === -1) {
      try {
        parseEndpoint(leader);
      } catch {
        return; // A malformed hint is ignored, not fatal.
      }
      i = this.#endpoints.push(leader) - 1;
    }
    this.#current = i;
  }

  #sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#sleepers.add(wake);
    });
  }
}
