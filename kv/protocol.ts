/**
 * The native KV protocol: RPC method "kv" on each peer's TCP port, spoken by KvClient
 * (kv/client.ts) and by a follower forwarding a request to its leader (kv/server.ts). Every field
 * on the wire is declared here, untrusted input is validated here once per hop, and every outcome
 * is a reply: a read, a write (with the state machine's ApplyResult), or an error with its
 * KvErrorCode. An RPC-level error (a RemoteError on the caller's side) therefore only means the
 * handler failed in a way nobody planned for.
 */
import { type KvWriteOp, WRITE_OP_FIELDS } from "./commands.ts";
import {
  DEFAULT_KV_LIMITS,
  InvalidRequestError,
  KvError,
  type KvErrorCode,
  type KvLimits,
  type KvService,
  type KvWrite,
  UnavailableError,
  validateKey,
  validateSession,
  validateValue,
} from "./service.ts";
import { type ApplyResult, validateApplyResult } from "./state_machine.ts";

/** The RPC method name the server registers for KV requests. */
export const KV_RPC_METHOD = "kv";

/** Operations of the native protocol: one read and the log's write ops. */
export type KvRpcOp = "get" | KvWriteOp;

/** Params of a "kv" read. */
export interface KvGetParams {
  op: "get";
  key: string;
  /** Serve the local state without ReadIndex (never forwarded). */
  stale?: boolean;
  /** Set by a follower forwarding to its leader: the receiver must lead, and never forwards on. */
  forwarded?: true;
}

/** Params of a "kv" write: the service's write command as it travels. */
export type KvWriteParams = KvWrite & {
  /** Set by a follower forwarding to its leader: the receiver must lead, and never forwards on. */
  forwarded?: true;
};

/** Params of one "kv" RPC call. */
export type KvRpcParams = KvGetParams | KvWriteParams;

/** Reply to a get. */
export interface KvReadReply {
  kind: "read";
  /** The read index the value was served at. */
  index: number;
  /** The value, null when absent. */
  value: Uint8Array | null;
  /** host:port of the leader's peer address, when known: clients go there next. */
  leader?: string;
}

/** Reply to a write that reached the state machine (mismatch and stale are results too). */
export interface KvWriteReply {
  kind: "write";
  /** Raft index of the write. */
  index: number;
  result: ApplyResult;
  /** host:port of the leader's peer address, when known: clients go there next. */
  leader?: string;
}

/** Reply to a request that failed; `code` says whether anything may have happened. */
export interface KvErrorReply {
  kind: "error";
  code: KvErrorCode;
  message: string;
}

/** Reply of one "kv" RPC call. */
export type KvRpcReply = KvReadReply | KvWriteReply | KvErrorReply;

/** The two calls a "kv" request can end in; KvService has them, and so has the leader side. */
export type KvOps = Pick<KvService, "read" | "write">;

/** Options of handleKvRpc. */
export interface KvRpcHandlerOptions {
  limits?: KvLimits;
  /** The leader's peer address, added to every successful reply. */
  leaderHint?: () => string | undefined;
  /**
   * Serves requests a follower forwarded: the leader-only path, which never forwards again.
   * Without it a forwarded request is answered "unavailable".
   */
  forwarded?: KvOps;
}

// Every code once, so the compiler reminds whoever adds one to teach the parser.
const ERROR_CODES: Record<KvErrorCode, true> = {
  unavailable: true,
  timeout: true,
  invalid: true,
  too_large: true,
  stale: true,
};

/**
 * Validates untrusted "kv" RPC params against the limits; throws InvalidRequestError or
 * TooLargeError. The returned object holds only the declared fields, and a write's fields are
 * the ones WRITE_OP_FIELDS gives its op.
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
  if (typeof op !== "string" || (op !== "get" && !Object.hasOwn(WRITE_OP_FIELDS, op))) {
    throw new InvalidRequestError(`Invalid KV request: unknown op: ${String(op)}`);
  }
  if (typeof p.key !== "string") throw new InvalidRequestError("Invalid key: must be a string");
  validateKey(p.key, limits);
  // msgpack turns undefined into nil, so null means "absent" for every optional field.
  if (p.forwarded !== undefined && p.forwarded !== null && typeof p.forwarded !== "boolean") {
    throw new InvalidRequestError("Invalid KV request: forwarded must be a boolean");
  }
  const forwarded = p.forwarded === true;
  if (op === "get") {
    if (p.stale !== undefined && p.stale !== null && typeof p.stale !== "boolean") {
      throw new InvalidRequestError("Invalid KV request: stale must be a boolean");
    }
    const params: KvGetParams = { op, key: p.key, stale: p.stale === true };
    if (forwarded) params.forwarded = true;
    return params;
  }
  const fields = WRITE_OP_FIELDS[op as KvWriteOp];
  const params: KvWriteParams = { op: op as KvWriteOp, key: p.key };
  if (fields.value) {
    if (!(p.value instanceof Uint8Array)) {
      throw new InvalidRequestError(`Invalid KV request: ${op} needs a byte value`);
    }
    validateValue(p.value, limits);
    params.value = p.value;
  }
  if (fields.expect) {
    if (p.expect !== null && !(p.expect instanceof Uint8Array)) {
      throw new InvalidRequestError(`Invalid KV request: ${op} expect must be bytes or null`);
    }
    if (p.expect !== null) validateValue(p.expect, limits);
    params.expect = p.expect;
  }
  const clientId = p.clientId ?? undefined;
  const seq = p.seq ?? undefined;
  validateSession(clientId, seq);
  if (clientId !== undefined) {
    params.clientId = clientId as string;
    params.seq = seq as number;
  }
  if (forwarded) params.forwarded = true;
  return params;
}

/** The service's write command inside validated write params (the wire-only flag dropped). */
export function writeOf(params: KvWriteParams): KvWrite {
  const { forwarded: _, ...write } = params;
  return write;
}

/**
 * Serves one "kv" RPC call: validates the params, runs the request on `service` (or, when a
 * follower forwarded it, on `options.forwarded`) and shapes the reply. Every KvError becomes an
 * error reply with its code; anything else propagates (the caller sees a RemoteError). The
 * server registers this as method "kv".
 */
export async function handleKvRpc(
  service: KvOps,
  raw: unknown,
  options: KvRpcHandlerOptions = {},
): Promise<KvRpcReply> {
  let reply: KvReadReply | KvWriteReply;
  try {
    const params = validateKvRpcParams(raw, options.limits);
    const target = params.forwarded ? options.forwarded : service;
    if (target === undefined) {
      throw new UnavailableError("This node does not serve forwarded requests");
    }
    if (params.op === "get") {
      const { value, index } = await target.read(params.key, { stale: params.stale === true });
      reply = { kind: "read", index, value };
    } else {
      const { index, result } = await target.write(writeOf(params));
      reply = { kind: "write", index, result };
    }
  } catch (error) {
    if (error instanceof KvError) {
      return { kind: "error", code: error.code, message: error.message };
    }
    throw error;
  }
  const leader = options.leaderHint?.();
  if (leader !== undefined) reply.leader = leader;
  return reply;
}

/**
 * Validates a reply from the network for a request of kind `expected` ("read" for a get, "write"
 * otherwise); throws TypeError when it is malformed or answers another kind of request.
 */
export function parseKvRpcReply(raw: unknown, expected: "read" | "write"): KvRpcReply {
  if (typeof raw !== "object" || raw === null) {
    throw new TypeError("Invalid KV reply: not an object");
  }
  const r = raw as Record<string, unknown>;
  if (r.kind === "error") {
    if (typeof r.code !== "string" || !Object.hasOwn(ERROR_CODES, r.code)) {
      throw new TypeError(`Invalid KV reply: unknown error code: ${String(r.code)}`);
    }
    if (typeof r.message !== "string") throw new TypeError("Invalid KV reply: message not text");
    return { kind: "error", code: r.code as KvErrorCode, message: r.message };
  }
  if (r.kind !== expected) {
    throw new TypeError(`Invalid KV reply: expected a ${expected} reply, got ${String(r.kind)}`);
  }
  if (typeof r.index !== "number" || !Number.isSafeInteger(r.index) || r.index < 0) {
    throw new TypeError("Invalid KV reply: index must be an integer ≥ 0");
  }
  let reply: KvReadReply | KvWriteReply;
  if (expected === "read") {
    const value = r.value ?? null;
    if (value !== null && !(value instanceof Uint8Array)) {
      throw new TypeError("Invalid KV reply: value must be bytes or null");
    }
    reply = { kind: "read", index: r.index, value };
  } else {
    reply = { kind: "write", index: r.index, result: validateApplyResult(r.result) };
  }
  if (typeof r.leader === "string") reply.leader = r.leader;
  return reply;
}
