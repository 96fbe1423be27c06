/**
 * The KV command a client write becomes in the Raft log. Raft treats it as opaque bytes; this
 * module is the only place that knows the wire form. The encoding is a positional msgpack array
 * (no field names) because every replica stores and fsyncs it, so a few bytes per write matter.
 *
 * Layout: `[version, op, key, time, value | nil, expect | nil, clientId | nil, seq | nil]`.
 * `expect` is only meaningful for cas, where nil means "the key must be absent".
 */
import { Decoder, Encoder } from "@msgpack/msgpack";

/** Write operations that go through the Raft log. */
export type KvWriteOp = "put" | "append" | "del" | "cas";

/** A client write as replicated through the log; `time` is the leader's ms clock at proposal. */
export interface KvCommand {
  op: KvWriteOp;
  key: string;
  /** New value for put/cas, suffix for append; absent for del. */
  value?: Uint8Array;
  /** cas only: the value the key must hold, or null when it must be absent. */
  expect?: Uint8Array | null;
  clientId?: string;
  seq?: number;
  /** Leader's wall clock in ms; drives session expiry identically on every replica. */
  time: number;
}

/** A log entry's data could not be decoded into a valid KvCommand. */
export class CommandError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CommandError";
  }
}

/**
 * The fields each write op carries besides its key: the one table that the log encoding here and
 * the native protocol's validation (kv/protocol.ts) read, so a new op is declared once.
 */
export const WRITE_OP_FIELDS: Readonly<Record<KvWriteOp, { value: boolean; expect: boolean }>> =
  Object.freeze({
    put: { value: true, expect: false },
    append: { value: true, expect: false },
    del: { value: false, expect: false },
    cas: { value: true, expect: true },
  });

const FORMAT_VERSION = 1;
const OP_CODES: Record<KvWriteOp, number> = { put: 1, append: 2, del: 3, cas: 4 };
const OPS_BY_CODE: (KvWriteOp | undefined)[] = [undefined, "put", "append", "del", "cas"];

// One shared encoder/decoder: they reuse internal buffers, which matters on the hot path.
const encoder = new Encoder();
const decoder = new Decoder();

/** Encodes a command for Raft's propose(); the caller has already validated sizes. */
export function encodeCommand(command: KvCommand): Uint8Array {
  const carriesExpect = WRITE_OP_FIELDS[command.op].expect;
  // encode() copies out of the encoder's reusable buffer, so the result is ours to keep.
  return encoder.encode([
    FORMAT_VERSION,
    OP_CODES[command.op],
    command.key,
    command.time,
    command.value ?? null,
    carriesExpect ? command.expect ?? null : null,
    command.clientId ?? null,
    command.seq ?? null,
  ]);
}

/** Decodes and validates a command from log entry data; throws CommandError when malformed. */
export function decodeCommand(data: Uint8Array): KvCommand {
  let raw: unknown;
  try {
    raw = decoder.decode(data);
  } catch (error) {
    throw new CommandError(`Cannot decode KV command: ${(error as Error).message}`);
  }
  if (!Array.isArray(raw) || raw.length !== 8) {
    throw new CommandError("Cannot decode KV command: not an 8-element array");
  }
  const [version, code, key, time, value, expect, clientId, seq] = raw;
  if (version !== FORMAT_VERSION) {
    throw new CommandError(`Unsupported KV command version: ${String(version)}`);
  }
  const op = typeof code === "number" ? OPS_BY_CODE[code] : undefined;
  if (op === undefined) throw new CommandError(`Unknown KV command op: ${String(code)}`);
  if (typeof key !== "string" || key.length === 0) {
    throw new CommandError("Invalid KV command: key must be a non-empty string");
  }
  if (typeof time !== "number" || !Number.isFinite(time)) {
    throw new CommandError("Invalid KV command: time must be a finite number");
  }
  const command: KvCommand = { op, key, time };
  const fields = WRITE_OP_FIELDS[op];
  if (!fields.value) {
    if (value !== null) throw new CommandError(`Invalid KV command: ${op} carries no value`);
  } else {
    if (!(value instanceof Uint8Array)) {
      throw new CommandError(`Invalid KV command: ${op} needs a byte value`);
    }
    command.value = value;
  }
  if (fields.expect) {
    if (expect !== null && !(expect instanceof Uint8Array)) {
      throw new CommandError(`Invalid KV command: ${op} expect must be bytes or nil`);
    }
    command.expect = expect;
  } else if (expect !== null) {
    throw new CommandError(`Invalid KV command: ${op} carries no expected value`);
  }
  if (clientId !== null || seq !== null) {
    if (typeof clientId !== "string" || clientId.length === 0) {
      throw new CommandError("Invalid KV command: client id must be a non-empty string");
    }
    if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0) {
      throw new CommandError("Invalid KV command: seq must be a non-negative integer");
    }
    command.clientId = clientId;
    command.seq = seq;
  }
  return command;
}
