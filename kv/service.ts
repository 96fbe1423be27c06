/**
 * The contract between the KV front ends (HTTP in kv/http.ts, the native RPC method "kv") and the
 * daemon that implements it (kv/server.ts): the KvService interface, the errors it throws, the
 * request limits, and the native protocol's param/reply types with their validation.
 */
import type { KvCommand } from "./commands.ts";
import type { NodeReport } from "./node_status.ts";
import type { ApplyResult } from "./state_machine.ts";

/** A client write as the front ends hand it over; the server stamps `time` when proposing. */
export type KvWrite = Omit<KvCommand, "time">;

/** What the daemon offers its front ends; implemented by kv/server.ts. */
export interface KvService {
  /** Replicates a write and resolves once it is applied on this node. */
  write(command: KvWrite): Promise<{ index: number; result: ApplyResult }>;
  /** Linearizable read via ReadIndex, or the local state when `stale` is true. */
  read(
    key: string,
    options: { stale: boolean },
  ): Promise<{ value: Uint8Array | null; index: number }>;
  /** JSON for GET /status. */
  status(): NodeReport;
  /** Prometheus text exposition for GET /metrics. */
  metricsText(): string;
  /** Whether this node currently knows a leader (GET /healthz). */
  leaderKnown(): boolean;
}

/** No leader (election in progress, minority side, shutting down): retry after a pause. */
export class UnavailableError extends Error {
  /** Seconds the client should wait before retrying (HTTP Retry-After). */
  readonly retryAfterSeconds: number;
  constructor(message = "No leader is known", retryAfterSeconds = 1) {
    super(message);
    this.name = "UnavailableError";
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** The request was accepted but did not complete in time: a write's outcome is unknown. */
export class TimeoutError extends Error {
  constructor(message = "Request timed out") {
    super(message);
    this.name = "TimeoutError";
  }
}

/** The request is malformed (HTTP 400). */
export class InvalidRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvalidRequestError";
  }
}

/** A key or value exceeds the configured limits (HTTP 413). */
export class TooLargeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TooLargeError";
  }
}

/** Size limits on client input. */
export interface KvLimits {
  /** Maximum key length in UTF-8 bytes. */
  maxKeyBytes: number;
  /** Maximum value (or append suffix, or cas expectation) length in bytes. */
  maxValueBytes: number;
}

/** Default limits: key ≤ 1 KiB, value ≤ 1 MiB. */
export const DEFAULT_KV_LIMITS: Readonly<KvLimits> = Object.freeze({
  maxKeyBytes: 1024,
  maxValueBytes: 1024 * 1024,
});

const textEncoder = new TextEncoder();

/** UTF-8 length of a string without allocating (lone surrogates count as 3, like TextEncoder). */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/** Throws InvalidRequestError for an empty key, TooLargeError above `limits.maxKeyBytes`. */
export function validateKey(key: string, limits: KvLimits = DEFAULT_KV_LIMITS): void {
  if (key.length === 0) throw new InvalidRequestError("Invalid key: must not be empty");
  // Cheap upper bound first: a string of n UTF-16 units has at most 3n UTF-8 bytes.
  if (key.length * 3 > limits.maxKeyBytes) {
    const bytes = utf8Length(key);
    if (bytes > limits.maxKeyBytes) {
      throw new TooLargeError(`Key too large: ${bytes} bytes, limit ${limits.maxKeyBytes}`);
    }
  }
}

/** Throws TooLargeError when `value` is longer than `limits.maxValueBytes`. */
export function validateValue(value: Uint8Array, limits: KvLimits = DEFAULT_KV_LIMITS): void {
  if (value.length > limits.maxValueBytes) {
    throw new TooLargeError(
      `Value too large: ${value.length} bytes, limit ${limits.maxValueBytes}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Native protocol: RPC method "kv" on each peer's TCP port.

/** The RPC method name the server registers for KV requests. */
export const KV_RPC_METHOD = "kv";

/** Prefix of a remote error message meaning "no leader now, retry elsewhere after a pause". */
export const UNAVAILABLE_PREFIX = "unavailable:";
/** Prefix of a remote error message meaning "accepted but timed out: outcome unknown". */
export const TIMEOUT_PREFIX = "timeout:";
/**
 * Prefix of a remote error message meaning "refused for good: the (client id, seq) is older than
 * that client's last applied one". A forwarding node turns it back into a "stale" result (409).
 */
export const STALE_PREFIX = "stale:";

/** Operations of the native protocol. */
export type KvRpcOp = "get" | "put" | "append" | "del" | "cas";

/** Params of one "kv" RPC call. */
export interface KvRpcParams {
  op: KvRpcOp;
  key: string;
  /** put/append/cas: the new value or suffix. */
  value?: Uint8Array;
  /** cas: the expected current value, null = must be absent. */
  expect?: Uint8Array | null;
  clientId?: string;
  seq?: number;
  /** get: serve the local state without ReadIndex. */
  stale?: boolean;
}

/** Reply of one "kv" RPC call. */
export interface KvRpcReply {
  /** False only for a cas mismatch. */
  ok: boolean;
  /** Raft index of the write, or the read index a get was served at. */
  index: number;
  /** get: the value, null when absent. */
  value?: Uint8Array | null;
  /** cas mismatch: the current value, null when absent. */
  current?: Uint8Array | null;
  /** del: whether the key existed. */
  existed?: boolean;
  /** host:port of the leader's peer address, when known: clients go there next. */
  leader?: string;
}

const RPC_OPS = new Set<string>(["get", "put", "append", "del", "cas"]);
const MAX_CLIENT_ID_LENGTH = 128;

/** Validates a client id and sequence number pair (both or neither); throws InvalidRequestError. */
export function validateSession(clientId: unknown, seq: unknown): void {
  if (clientId === undefined && seq === undefined) return;
  if (typeof clientId !== "string" || clientId.length === 0) {
    throw new InvalidRequestError("Invalid client id: must be a non-empty string");
  }
  if (clientId.length > MAX_CLIENT_ID_LENGTH) {
    throw new InvalidRequestError(`Invalid client id: longer than ${MAX_CLIENT_ID_LENGTH}`);
  }
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0) {
    throw new InvalidRequestError("Invalid request sequence number: must be an integer ≥ 0");
  }
}

/**
 * Validates untrusted "kv" RPC params against the limits; throws InvalidRequestError or
 * TooLargeError. The returned object holds only the known fields.
 */
export function validateKvRpcParams(
  raw: unknown,
  limits: KvLimits = DEFAULT_KV_LIMITS,
): KvRpcParams {
  if (typeof raw !== "object" || raw === null) {
    throw new InvalidRequestError("Invalid KV request: params must be an object");
  }
  const p = raw as Record<string, unknown>;
  const op = p.op;
  if (typeof op !== "string" || !RPC_OPS.has(op)) {
    throw new InvalidRequestError(`Invalid KV request: unknown op: ${String(op)}`);
  }
  if (typeof p.key !== "string") throw new InvalidRequestError("Invalid key: must be a string");
  validateKey(p.key, limits);
  const params: KvRpcParams = { op: op as KvRpcOp, key: p.key };
  if (op === "put" || op === "append" || op === "cas") {
    if (!(p.value instanceof Uint8Array)) {
      throw new InvalidRequestError(`Invalid KV request: ${op} needs a byte value`);
    }
    validateValue(p.value, limits);
    params.value = p.value;
  }
  if (op === "cas") {
    if (p.expect !== null && !(p.expect instanceof Uint8Array)) {
      throw new InvalidRequestError("Invalid KV request: cas expect must be bytes or null");
    }
    if (p.expect !== null) validateValue(p.expect, limits);
    params.expect = p.expect;
  }
  if (op === "get") {
    if (p.stale !== undefined && p.stale !== null && typeof p.stale !== "boolean") {
      throw new InvalidRequestError("Invalid KV request: stale must be a boolean");
    }
    params.stale = p.stale === true;
  } else {
    // msgpack turns undefined into nil, so accept null as "absent" for the session fields.
    const clientId = p.clientId ?? undefined;
    const seq = p.seq ?? undefined;
    validateSession(clientId, seq);
    if (clientId !== undefined) {
      params.clientId = clientId as string;
      params.seq = seq as number;
    }
  }
  return params;
}

/** Converts validated RPC params of a write into the service's write command. */
export function rpcParamsToWrite(params: KvRpcParams): KvWrite {
  if (params.op === "get") throw new TypeError("A get is not a write");
  const write: KvWrite = { op: params.op, key: params.key };
  if (params.value !== undefined) write.value = params.value;
  if (params.op === "cas") write.expect = params.expect ?? null;
  if (params.clientId !== undefined) {
    write.clientId = params.clientId;
    write.seq = params.seq;
  }
  return write;
}

/**
 * Serves one "kv" RPC call against a service: validates the params, runs the request and shapes
 * the reply. Errors the client should retry elsewhere are rethrown as plain Errors whose message
 * starts with UNAVAILABLE_PREFIX or TIMEOUT_PREFIX; anything else propagates unchanged (its
 * message reaches the client as a RemoteError). The server registers this as method "kv".
 */
export async function handleKvRpc(
  service: KvService,
  raw: unknown,
  options: { limits?: KvLimits; leaderHint?: () => string | undefined } = {},
): Promise<KvRpcReply> {
  const params = validateKvRpcParams(raw, options.limits);
  let reply: KvRpcReply;
  try {
    if (params.op === "get") {
      const { value, index } = await service.read(params.key, { stale: params.stale === true });
      reply = { ok: true, index, value };
    } else {
      const { index, result } = await service.write(rpcParamsToWrite(params));
      switch (result.status) {
        case "ok":
          reply = { ok: true, index };
          if (result.existed !== undefined) reply.existed = result.existed;
          break;
        case "mismatch":
          reply = { ok: false, index, current: result.current };
          break;
        case "stale":
          throw new Error(`${STALE_PREFIX} ${result.error}`);
        default:
          throw new InvalidRequestError(result.error);
      }
    }
  } catch (error) {
    if (error instanceof UnavailableError) {
      throw new Error(`${UNAVAILABLE_PREFIX} ${error.message}`);
    }
    if (error instanceof TimeoutError) throw new Error(`${TIMEOUT_PREFIX} ${error.message}`);
    throw error;
  }
  const leader = options.leaderHint?.();
  if (leader !== undefined) reply.leader = leader;
  return reply;
}

/** Encodes a string as UTF-8 bytes (shared encoder). */
export function utf8(s: string): Uint8Array {
  return textEncoder.encode(s);
}
