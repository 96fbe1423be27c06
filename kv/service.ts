/**
 * The contract between the KV front ends (HTTP in kv/http.ts, the native protocol in
 * kv/protocol.ts) and the daemon that implements it (kv/server.ts): the KvService interface, the
 * errors it throws (each with its KvErrorCode), and the request limits with their validation.
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

/**
 * Why a KV request failed, as one word that each boundary maps once: kv/http.ts to an HTTP
 * status, kv/client.ts to a retry decision, kv/kv_cli.ts to an exit code, and the native
 * protocol (kv/protocol.ts) carries it on the wire. The rule is Hono's HTTPException: the error
 * says what it is, the boundary alone decides how that looks to its caller.
 *
 * - `unavailable`: nothing happened (no leader, shutting down); retry after a pause.
 * - `timeout`: accepted but not known to be applied; a write's outcome is unknown.
 * - `invalid`: malformed request; retrying cannot help.
 * - `too_large`: a key or value over the limits; retrying cannot help.
 * - `stale`: the (client id, seq) is older than that client's last applied one; refused for good.
 */
export type KvErrorCode = "unavailable" | "timeout" | "invalid" | "too_large" | "stale";

/** A KV request failed for the reason its `code` names; the message is for people. */
export class KvError extends Error {
  /** The reason, mapped to a status, exit code or retry decision at each boundary. */
  readonly code: KvErrorCode;
  constructor(code: KvErrorCode, message: string) {
    super(message);
    this.name = "KvError";
    this.code = code;
  }
}

/** No leader (election in progress, minority side, shutting down): retry after a pause. */
export class UnavailableError extends KvError {
  /** Seconds the client should wait before retrying (HTTP Retry-After). */
  readonly retryAfterSeconds: number;
  constructor(message = "No leader is known", retryAfterSeconds = 1) {
    super("unavailable", message);
    this.name = "UnavailableError";
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** The request was accepted but did not complete in time: a write's outcome is unknown. */
export class TimeoutError extends KvError {
  constructor(message = "Request timed out") {
    super("timeout", message);
    this.name = "TimeoutError";
  }
}

/** The request is malformed (HTTP 400). */
export class InvalidRequestError extends KvError {
  constructor(message: string) {
    super("invalid", message);
    this.name = "InvalidRequestError";
  }
}

/** A key or value exceeds the configured limits (HTTP 413). */
export class TooLargeError extends KvError {
  constructor(message: string) {
    super("too_large", message);
    this.name = "TooLargeError";
  }
}

/** Rebuilds the error class a code stands for, e.g. from a reply that crossed the network. */
export function kvErrorFromCode(code: KvErrorCode, message: string): KvError {
  switch (code) {
    case "unavailable":
      return new UnavailableError(message);
    case "timeout":
      return new TimeoutError(message);
    case "invalid":
      return new InvalidRequestError(message);
    case "too_large":
      return new TooLargeError(message);
    case "stale":
      return new KvError("stale", message);
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

/** Encodes a string as UTF-8 bytes (shared encoder). */
export function utf8(s: string): Uint8Array {
  return textEncoder.encode(s);
}
