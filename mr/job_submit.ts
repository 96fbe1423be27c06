/**
 * Turns a client's job request (POST /v1/mr/jobs) into a validated submit command, or refuses it
 * with a JobSubmitError that names the problem; nothing is proposed for a refused request. The
 * peer that receives the request checks what only the filesystem can tell (inputs, output
 * directory) on the shared mount every worker uses, cuts the inputs into line-aligned splits,
 * and loads the app on a task thread (mr/task_runner.ts) to see that it exports map and reduce.
 */
import { isAbsolute, join } from "node:path";
import { AppLoadError } from "./app.ts";
import { checkInputs, expandInputs, InputError } from "./inputs.ts";
import {
  encodeJobCommand,
  type JobCommand,
  type JobSpec,
  MAX_JOB_COMMAND_BYTES,
  type SplitSpec,
} from "./job_commands.ts";
import { DEFAULT_SPLIT_SIZE, splitFile } from "./splits.ts";
import { TaskRunner } from "./task_runner.ts";
import { errorMessage } from "../util/errors.ts";
import { randomHex } from "../util/random_hex.ts";

/** A refused submission: `status` is the HTTP status (400, or 413 over the size limit). */
export class JobSubmitError extends Error {
  readonly status: 400 | 413;
  constructor(message: string, status: 400 | 413 = 400) {
    super(message);
    this.name = "JobSubmitError";
    this.status = status;
  }
}

/** The JSON body of POST /v1/mr/jobs. */
export interface JobRequest {
  /** The app module's source: one self-contained ES module (`mr submit` bundles it). */
  app: string;
  /** A name for the app, for display (default "app"). */
  appName?: string;
  /** Absolute paths of input files, directories or globs on the shared mount. */
  inputs: string[];
  /** Absolute path of the output directory on the shared mount (created when missing). */
  output: string;
  /** Number of reduce tasks (default 10). */
  nReduce?: number;
  /** Split size in bytes (default 64 MiB). */
  splitSize?: number;
  /** Task timeout in ms (default 10 s). */
  taskTimeoutMs?: number;
  /** The splits, when the submitter cut them (`mr submit` does); else the peer cuts them. */
  splits?: SplitSpec[];
}

/** The --reduce maximum, as for the standalone coordinator. */
const MAX_REDUCE = 100_000;

function positiveInt(value: unknown, what: string, fallback: number, max: number): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new JobSubmitError(`Invalid ${what}: expected an integer from 1 to ${max}`);
  }
  return value;
}

/** Checks that `dir` exists or can be created, and that a file can be written in it. */
export async function checkOutputDir(dir: string): Promise<void> {
  const probe = join(dir, `.raftmr-probe-${randomHex(6)}`);
  try {
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(probe, "");
    await Deno.remove(probe);
  } catch (err) {
    throw new JobSubmitError(`Cannot write the output directory ${dir}: ${errorMessage(err)}`);
  }
}

/**
 * Expands and checks input paths (files, directories, globs) and cuts them into line-aligned
 * splits; throws JobSubmitError naming a missing or unreadable input.
 */
export async function inputSplits(
  inputs: string[],
  splitSize: number,
): Promise<{ files: string[]; splits: SplitSpec[] }> {
  const files = await expandInputs(inputs).catch(asSubmitError);
  await checkInputs(files).catch(asSubmitError);
  const splits: SplitSpec[] = [];
  for (const file of files) {
    for (const split of await splitFile(file, file, splitSize)) {
      splits.push({ file, offset: split.offset, length: split.length });
    }
  }
  return { files, splits };
}

/** An input problem is a refused submission. */
function asSubmitError(err: unknown): never {
  if (err instanceof InputError) throw new JobSubmitError(err.message);
  throw err;
}

/** Whether this process may read (or write) `path`: a peer started by `raftmr cluster` may not. */
function allowed(name: "read" | "write", path: string): boolean {
  return Deno.permissions.querySync({ name, path }).state === "granted";
}

function splitsOf(raw: unknown, inputs: string[]): SplitSpec[] {
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new JobSubmitError("Invalid splits: expected a non-empty list");
  }
  return raw.map((split, i) => {
    const s = (split ?? {}) as Record<string, unknown>;
    const ok = typeof s.file === "string" && inputs.includes(s.file) &&
      Number.isSafeInteger(s.offset) && (s.offset as number) >= 0 &&
      Number.isSafeInteger(s.length) && (s.length as number) >= 0;
    if (!ok) {
      throw new JobSubmitError(`Invalid splits[${i}]: expected an input file, offset, length`);
    }
    return { file: s.file as string, offset: s.offset as number, length: s.length as number };
  });
}

/** Loads the app source on a task thread; throws JobSubmitError when it does not load. */
async function checkApp(source: string, name: string, scratch?: string): Promise<void> {
  if (scratch !== undefined) await Deno.mkdir(scratch, { recursive: true });
  const dir = await Deno.makeTempDir({ prefix: "raftmr-app-check-", dir: scratch });
  const path = join(dir, "app.js");
  try {
    await Deno.writeTextFile(path, source);
    const runner = await TaskRunner.start(path);
    runner.close();
  } catch (err) {
    if (err instanceof AppLoadError) {
      throw new JobSubmitError(`Invalid app: ${err.message.replace(path, name)}`);
    }
    throw err;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * Validates a job request and builds its submit command (id and token drawn here); throws
 * JobSubmitError for any bad field, input, output directory, app or size. The inputs and the
 * output directory are checked when this process may read and write them; a peer whose
 * permissions stop at its data directory relies on the splits `mr submit` computed. The app is
 * loaded from a file under `scratchDir` (default: the system's temporary directory).
 */
export async function prepareSubmit(
  raw: unknown,
  now: number,
  scratchDir?: string,
): Promise<JobCommand> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new JobSubmitError("Invalid job: expected a JSON object");
  }
  const r = raw as Record<string, unknown>;
  if (typeof r.app !== "string" || r.app.trim() === "") {
    throw new JobSubmitError("Invalid app: expected the module's source text");
  }
  if (r.app.length > MAX_JOB_COMMAND_BYTES) {
    throw new JobSubmitError(
      `Job too large: the app is ${r.app.length} bytes, limit ${MAX_JOB_COMMAND_BYTES}`,
      413,
    );
  }
  const appName = typeof r.appName === "string" && r.appName !== "" ? r.appName : "app";
  if (
    !Array.isArray(r.inputs) || r.inputs.length === 0 ||
    !r.inputs.every((i) => typeof i === "string" && i !== "")
  ) {
    throw new JobSubmitError("Invalid inputs: expected a non-empty list of paths");
  }
  const notAbsolute = (r.inputs as string[]).find((i) => !isAbsolute(i));
  if (notAbsolute !== undefined) {
    throw new JobSubmitError(`Invalid input ${notAbsolute}: expected an absolute path`);
  }
  if (typeof r.output !== "string" || !isAbsolute(r.output)) {
    throw new JobSubmitError("Invalid output: expected an absolute directory path");
  }
  const nReduce = positiveInt(r.nReduce, "nReduce", 10, MAX_REDUCE);
  const splitSize = positiveInt(r.splitSize, "splitSize", DEFAULT_SPLIT_SIZE, 2 ** 50);
  const taskTimeoutMs = positiveInt(r.taskTimeoutMs, "taskTimeoutMs", 10_000, 86_400_000);
  const inputs = r.inputs as string[];
  const readable = inputs.every((input) => allowed("read", input));
  let files: string[];
  let splits: SplitSpec[];
  if (r.splits !== undefined && r.splits !== null) {
    // `mr submit` checked the inputs and cut the splits; check again what this peer may read.
    files = inputs;
    splits = splitsOf(r.splits, files);
    if (readable) await checkInputs(files).catch(asSubmitError);
  } else if (readable) {
    ({ files, splits } = await inputSplits(inputs, splitSize));
  } else {
    throw new JobSubmitError(
      "This peer may not read the inputs (its Deno permissions): submit with raftmr mr submit, " +
        "which checks them and sends the splits",
    );
  }
  if (allowed("write", r.output)) await checkOutputDir(r.output);
  await checkApp(r.app, appName, scratchDir);
  const spec: JobSpec = {
    app: r.app,
    appName,
    inputs: files,
    splits,
    output: r.output,
    nReduce,
    taskTimeoutMs,
    token: randomHex(32),
  };
  const command: JobCommand = { kind: "submit", time: now, id: randomHex(8), spec };
  try {
    encodeJobCommand(command);
  } catch (err) {
    if (err instanceof RangeError) throw new JobSubmitError(err.message, 413);
    throw err;
  }
  return command;
}
