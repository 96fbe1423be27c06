/**
 * Native KV client over the peers' RPC port (method "kv", see kv/protocol.ts). Any node accepts any
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
import { clientHello } from "../net/handshake.ts";
import { dialTls } from "../net/peer_tls.ts";
import { ConnectionLostError, RemoteError, RpcClient, RpcTimeoutError } from "../net/rpc.ts";
import {
  KV_RPC_METHOD,
  type KvReadReply,
  type KvRpcParams,
  type KvRpcReply,
  type KvWriteParams,
  type KvWriteReply,
  parseKvRpcReply,
} from "./protocol.ts";
import { type KvErrorCode, kvErrorFromCode } from "./service.ts";

/**
 * Whether a request that failed for this reason is retried (on the next node, after a pause):
 * the one place the client decides. `unavailable` did nothing and `timeout` is safe to retry
 * because a write reuses its (client id, seq); the others would fail the same way again.
 */
const RETRY: Readonly<Record<KvErrorCode, boolean>> = Object.freeze({
  unavailable: true,
  timeout: true,
  invalid: false,
  too_large: false,
  stale: false,
});

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
  /** The client token the cluster's --auth-token-file lists (sent in the handshake). */
  token?: string;
  /** The cluster CA (PEM): when given, connections use TLS and the nodes must prove it. */
  ca?: string;
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
  /** The reason the cluster gave; undefined when its handler failed without saying why. */
  readonly code: KvErrorCode | undefined;
  constructor(code: KvErrorCode | undefined, message: string) {
    super(message);
    this.name = "KvRequestError";
    this.code = code;
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
    const ca = options.ca;
    this.#connect = options.connect ??
      ((endpoint) =>
        new RpcClient(parseEndpoint(endpoint), {
          timeoutMs: this.#callTimeoutMs,
          hello: clientHello(options.token),
          dial: ca ? (address) => dialTls(address, { ca }) : undefined,
        }));
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
    const reply = await this.#run({ op: "get", key, stale: options.stale === true }, "read");
    return { value: reply.value, index: reply.index };
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
    return {
      index: reply.index,
      existed: reply.result.status === "ok" && reply.result.existed === true,
    };
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
    const { result } = reply;
    if (result.status === "mismatch") {
      return { ok: false, index: reply.index, current: result.current };
    }
    return { ok: true, index: reply.index, current: bytes };
  }

  /** Closes every connection; pending and later operations fail. */
  close(): void {
    this.#closed = true;
    for (const wake of [...this.#sleepers]) wake();
    for (const connection of this.#connections.values()) connection.close();
    this.#connections.clear();
  }

  /** Runs a write in call order; the reply's result is "ok" or "mismatch" (others throw). */
  #write(params: KvWriteParams): Promise<KvWriteReply> {
    params.clientId = this.#clientId;
    params.seq = ++this.#seq;
    const run = this.#writes.then(async () => {
      const reply = await this.#run(params, "write");
      const { result } = reply;
      // Applied as a no-op: the cluster refused it for good.
      if (result.status === "stale" || result.status === "invalid") {
        throw new KvRequestError(result.status, result.error);
      }
      return reply;
    });
    this.#writes = run.catch(() => {});
    return run;
  }

  #run(params: KvRpcParams, kind: "read"): Promise<KvReadReply>;
  #run(params: KvRpcParams, kind: "write"): Promise<KvWriteReply>;
  async #run(params: KvRpcParams, kind: "read" | "write"): Promise<KvReadReply | KvWriteReply> {
    // The monotonic clock: a wall-clock step must not stretch or cut the deadline.
    const deadline = performance.now() + this.#timeoutMs;
    let pause = this.#retryPauseMs;
    let failuresThisRound = 0;
    let lastError: Error | undefined;
    while (true) {
      if (this.#closed) throw new ConnectionLostError("KvClient is closed");
      const remaining = deadline - performance.now();
      if (remaining <= 0) {
        throw new DeadlineExceededError(
          `KV ${params.op} ${params.key} did not complete within ${this.#timeoutMs} ms`,
          lastError,
        );
      }
      const endpoint = this.#endpoints[this.#current];
      let reply: KvRpcReply;
      try {
        const raw = await this.#connection(endpoint).call(KV_RPC_METHOD, params, {
          timeoutMs: Math.min(this.#callTimeoutMs, remaining),
        });
        reply = parseKvRpcReply(raw, kind);
      } catch (error) {
        // The handler failed in a way it did not plan for: retrying cannot be trusted to help.
        if (error instanceof RemoteError) throw new KvRequestError(undefined, error.message);
        if (!(error instanceof RpcTimeoutError || error instanceof ConnectionLostError)) {
          throw error;
        }
        lastError = error;
        this.#rotate();
        // Dead nodes fail fast: try every endpoint once before pausing.
        if (++failuresThisRound >= this.#endpoints.length) {
          failuresThisRound = 0;
          await this.#sleep(Math.min(pause, deadline - performance.now()));
          pause = Math.min(pause * 2, this.#maxRetryPauseMs);
        }
        continue;
      }
      if (reply.kind !== "error") {
        if (reply.leader !== undefined) this.#prefer(reply.leader);
        return reply;
      }
      if (!RETRY[reply.code]) throw new KvRequestError(reply.code, reply.message);
      // The node answered but has no leader (or lost its write): another node may do better,
      // and an election takes a moment, so pause before every retry.
      lastError = kvErrorFromCode(reply.code, reply.message);
      this.#rotate();
      await this.#sleep(Math.min(pause, deadline - performance.now()));
      pause = Math.min(pause * 2, this.#maxRetryPauseMs);
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
