/**
 * The MapReduce job commands that ride the peers' Raft log beside the KV commands (DESIGN.md "One
 * log, several services"), and their wire form. Only what must survive a leader change is a
 * command: a job submitted (its spec, app source included), a task attempt committed (with the
 * worker that holds a map's output and its partition sizes), a task failed, a worker declared
 * dead, a job failed or cancelled. Assignments, deadlines and heartbeats stay on the leader.
 *
 * Wire form: one tag byte, 0xC7, then a msgpack array `[version, kind, body]`. A KV command is a
 * msgpack array of 8 (first byte 0x98) and Raft owns entries that start with 0xC1 (configuration
 * changes, raft/membership.ts), so the dispatcher (kv/service_dispatcher.ts) routes on the first
 * byte alone, without decoding. 0xC7 is msgpack's ext 8 header, which no command of ours starts
 * with as msgpack.
 */
import { Decoder, Encoder } from "@msgpack/msgpack";

/** First byte of every job command (neither a KV command's 0x98 nor Raft's 0xC1). */
export const JOB_COMMAND_TAG = 0xc7;

/** Bound on an encoded job command, the spec with its app source included: 1 MiB. */
export const MAX_JOB_COMMAND_BYTES = 1024 * 1024;

/** One map task's input: bytes [offset, offset + length) of `file` (an absolute path). */
export interface SplitSpec {
  file: string;
  offset: number;
  length: number;
}

/** What a submitted job is, as replicated: everything a worker needs to run any of its tasks. */
export interface JobSpec {
  /** The bundled app module's source (one self-contained ES module). */
  app: string;
  /** The module path the user gave, for display. */
  appName: string;
  /** Absolute input file paths (a shared mount every worker reads). */
  inputs: string[];
  /** One entry per map task. */
  splits: SplitSpec[];
  /** Absolute output directory (a shared mount every worker writes). */
  output: string;
  nReduce: number;
  taskTimeoutMs: number;
  /** The bearer token of the job's data requests (map output served by workers). */
  token: string;
}

/** A task's kind, as in mr/scheduler.ts. */
export type JobTaskKind = "map" | "reduce";

/** A job command, as applied by mr/job_state_machine.ts. `time` is the proposer's ms clock. */
export type JobCommand =
  | { kind: "submit"; time: number; id: string; spec: JobSpec }
  | {
    kind: "commit";
    time: number;
    job: string;
    task: JobTaskKind;
    index: number;
    attempt: number;
    worker: string;
    /** A map's output: where its holder serves it, and each partition's size and CRC-32C. */
    address?: string;
    sizes?: number[];
    crcs?: number[];
    /** Whether the committing attempt was a backup (MapReduce §3.6). */
    backup?: boolean;
    /** A map run again (its output could not be fetched): this commit replaces the earlier. */
    replace?: boolean;
  }
  | {
    kind: "task_failed";
    time: number;
    job: string;
    task: JobTaskKind;
    index: number;
    attempt: number;
    worker: string;
    error: string;
  }
  | { kind: "worker_dead"; time: number; worker: string }
  | { kind: "finish"; time: number; job: string; state: "failed" | "cancelled"; error?: string };

/** A log entry's data is not a valid job command. */
export class JobCommandError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JobCommandError";
  }
}

const VERSION = 1;
const encoder = new Encoder();
const decoder = new Decoder();

/** Whether log entry data is a job command (by its tag byte; not validated). */
export function isJobCommand(data: Uint8Array): boolean {
  return data.length > 0 && data[0] === JOB_COMMAND_TAG;
}

/** Encodes a command for Raft's propose(); throws RangeError above MAX_JOB_COMMAND_BYTES. */
export function encodeJobCommand(command: JobCommand): Uint8Array {
  const { kind, ...body } = command;
  const packed = encoder.encode([VERSION, kind, body]);
  if (packed.length + 1 > MAX_JOB_COMMAND_BYTES) {
    throw new RangeError(
      `Job command too large: ${packed.length + 1} bytes, limit ${MAX_JOB_COMMAND_BYTES}`,
    );
  }
  const data = new Uint8Array(packed.length + 1);
  data[0] = JOB_COMMAND_TAG;
  data.set(packed, 1);
  return data;
}

function text(value: unknown, what: string, max = 4096): string {
  if (typeof value !== "string" || value.length > max) {
    throw new JobCommandError(`Invalid job command: ${what} must be text of at most ${max}`);
  }
  return value;
}

function int(value: unknown, what: string, min = 0): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
    throw new JobCommandError(`Invalid job command: ${what} must be an integer ≥ ${min}`);
  }
  return value;
}

function ints(value: unknown, what: string): number[] {
  if (!Array.isArray(value)) throw new JobCommandError(`Invalid job command: ${what} not a list`);
  return value.map((v, i) => int(v, `${what}[${i}]`));
}

function taskKind(value: unknown): JobTaskKind {
  if (value !== "map" && value !== "reduce") {
    throw new JobCommandError('Invalid job command: task must be "map" or "reduce"');
  }
  return value;
}

/** Validates a job spec (from the log or from a client); throws JobCommandError. */
export function validateJobSpec(raw: unknown): JobSpec {
  if (typeof raw !== "object" || raw === null) {
    throw new JobCommandError("Invalid job spec: expected an object");
  }
  const s = raw as Record<string, unknown>;
  if (!Array.isArray(s.inputs) || !Array.isArray(s.splits)) {
    throw new JobCommandError("Invalid job spec: inputs and splits must be lists");
  }
  const splits = s.splits.map((split, i) => {
    const p = (split ?? {}) as Record<string, unknown>;
    return {
      file: text(p.file, `splits[${i}].file`),
      offset: int(p.offset, `splits[${i}].offset`),
      length: int(p.length, `splits[${i}].length`),
    };
  });
  if (splits.length === 0) throw new JobCommandError("Invalid job spec: no input split");
  return {
    app: text(s.app, "app", MAX_JOB_COMMAND_BYTES),
    appName: text(s.appName, "appName"),
    inputs: s.inputs.map((input, i) => text(input, `inputs[${i}]`)),
    splits,
    output: text(s.output, "output"),
    nReduce: int(s.nReduce, "nReduce", 1),
    taskTimeoutMs: int(s.taskTimeoutMs, "taskTimeoutMs", 1),
    token: text(s.token, "token", 256),
  };
}

/** Decodes and validates a job command from log entry data; throws JobCommandError. */
export function decodeJobCommand(data: Uint8Array): JobCommand {
  if (!isJobCommand(data)) throw new JobCommandError("Not a job command: wrong tag byte");
  let raw: unknown;
  try {
    raw = decoder.decode(data.subarray(1));
  } catch (error) {
    throw new JobCommandError(`Cannot decode job command: ${(error as Error).message}`);
  }
  if (!Array.isArray(raw) || raw.length !== 3 || raw[0] !== VERSION) {
    throw new JobCommandError("Cannot decode job command: unknown format");
  }
  const kind = raw[1];
  const b = raw[2] as Record<string, unknown>;
  if (typeof b !== "object" || b === null) {
    throw new JobCommandError("Cannot decode job command: body must be a map");
  }
  const time = typeof b.time === "number" && Number.isFinite(b.time) ? b.time : NaN;
  if (Number.isNaN(time)) throw new JobCommandError("Invalid job command: time must be a number");
  switch (kind) {
    case "submit":
      return { kind, time, id: text(b.id, "id", 64), spec: validateJobSpec(b.spec) };
    case "commit": {
      const command: JobCommand = {
        kind,
        time,
        job: text(b.job, "job", 64),
        task: taskKind(b.task),
        index: int(b.index, "index"),
        attempt: int(b.attempt, "attempt"),
        worker: text(b.worker, "worker", 256),
      };
      if (b.address !== undefined && b.address !== null) {
        command.address = text(b.address, "address", 300);
        command.sizes = ints(b.sizes, "sizes");
        command.crcs = ints(b.crcs, "crcs");
      }
      if (b.backup === true) command.backup = true;
      if (b.replace === true) command.replace = true;
      return command;
    }
    case "task_failed":
      return {
        kind,
        time,
        job: text(b.job, "job", 64),
        task: taskKind(b.task),
        index: int(b.index, "index"),
        attempt: int(b.attempt, "attempt"),
        worker: text(b.worker, "worker", 256),
        error: text(b.error, "error", 8192),
      };
    case "worker_dead":
      return { kind, time, worker: text(b.worker, "worker", 256) };
    case "finish": {
      if (b.state !== "failed" && b.state !== "cancelled") {
        throw new JobCommandError('Invalid job command: state must be "failed" or "cancelled"');
      }
      const command: JobCommand = { kind, time, job: text(b.job, "job", 64), state: b.state };
      if (typeof b.error === "string") command.error = text(b.error, "error", 8192);
      return command;
    }
    default:
      throw new JobCommandError(`Unknown job command: ${String(kind)}`);
  }
}
