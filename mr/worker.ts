/**
 * The MapReduce worker: asks the coordinator for a task, runs the app's map or reduce on it,
 * writes the result under a temporary name and renames it into place, then reports. Repeats until
 * the coordinator says the job is over or cannot be reached for a few seconds.
 */
import { AppLoadError, loadApp, type MapReduceApp } from "./app.ts";
import { decodePairs, encodePair, intermediateName, outputName, partition } from "./partition.ts";
import { ConnectionLostError, RpcClient, RpcTimeoutError } from "../net/rpc.ts";
import { parseAssignment, type ReportParams, RPC_ASK, RPC_REPORT } from "./protocol.ts";
import { writeFileAtomic } from "../persist/atomic_file.ts";
import { sleep } from "../util/sleep.ts";

/** How a worker finds its coordinator and app. */
export interface WorkerOptions {
  coordinator: { hostname: string; port: number };
  /** Path (relative to the current directory) or URL of the app module. */
  appPath: string;
  /** Give up (exit 0) after the coordinator has been unreachable this long (default 3 s). */
  giveUpMs?: number;
  /** Pause between asks while every task of the phase is running (default 100 ms). */
  pollMs?: number;
  /** Where diagnostics go (default stderr). */
  log?: (line: string) => void;
  /** Kept up to date as the worker runs, for its optional status endpoint. */
  status?: WorkerStatus;
}

/** What a worker is doing, as its /status endpoint reports it. */
export interface WorkerStatus {
  id: string;
  coordinator: string;
  app: string;
  startedAt: number;
  /** "starting", "working", "waiting", or "exited". */
  state: string;
  current?: { kind: string; task: number; attempt: number; since: number };
  tasksDone: number;
  tasksFailed: number;
  bytesRead: number;
  bytesWritten: number;
}

/** A fresh status record for a worker about to start. */
export function newWorkerStatus(coordinator: string, app: string): WorkerStatus {
  return {
    id: "",
    coordinator,
    app,
    startedAt: Date.now(),
    state: "starting",
    tasksDone: 0,
    tasksFailed: 0,
    bytesRead: 0,
    bytesWritten: 0,
  };
}

/** Bytes an attempt read and wrote, for the coordinator's status page. */
export interface TaskIo {
  bytesRead: number;
  bytesWritten: number;
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();
let tmpCounter = 0;

/**
 * Writes intermediate data under a temporary name and renames it into place. No fsync: a machine
 * crash loses the job's intermediate files anyway, and the re-run rewrites them.
 */
async function writeIntermediate(path: string, data: Uint8Array): Promise<void> {
  const tmp = `.${path}.${Deno.pid}.${++tmpCounter}.tmp`;
  try {
    await Deno.writeFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}

/** Values of one key the map side collects before combining them into one. */
const COMBINE_BATCH = 32;

function combined(
  combine: NonNullable<MapReduceApp["combine"]>,
  key: string,
  values: string[],
): string {
  const value: unknown = combine(key, values);
  if (typeof value !== "string") {
    throw new TypeError(`combine returned ${typeof value} for key ${key}, expected a string`);
  }
  return value;
}

function checkPair(pair: unknown, index: number): asserts pair is { key: string; value: string } {
  const p = pair as { key?: unknown; value?: unknown } | null;
  if (typeof p?.key !== "string" || typeof p.value !== "string") {
    throw new TypeError(
      `map returned an invalid pair at index ${index}: expected { key: string, value: string }`,
    );
  }
}

/**
 * Runs map task `task` on `file` and writes its nReduce intermediate files `mr-<task>-<r>`
 * (every one, even empty, so reducers can tell a missing map output from an empty one).
 * Applies the app's combine per key first when it has one.
 */
export async function runMapTask(
  app: MapReduceApp,
  task: number,
  file: string,
  nReduce: number,
): Promise<TaskIo> {
  const data = await Deno.readFile(file);
  const pairs: unknown = await app.map(file, utf8Decoder.decode(data));
  if (!Array.isArray(pairs)) {
    throw new TypeError(`map returned ${typeof pairs}, expected an array of { key, value }`);
  }
  const buckets: string[][] = Array.from({ length: nReduce }, () => []);
  if (app.combine) {
    // Group first: with a combiner each distinct key becomes one intermediate line, so hashing
    // and encoding run once per distinct key. A key's pending values are combined every
    // COMBINE_BATCH values (combiners may run any number of times on partial lists, as in the
    // MapReduce paper §4.3), which keeps arrays small: long arrays of "1"s dominated the cost.
    const combine = app.combine;
    const groups = new Map<string, string[]>();
    for (let i = 0; i < pairs.length; i++) {
      const pair = pairs[i];
      checkPair(pair, i);
      const values = groups.get(pair.key);
      if (values === undefined) {
        groups.set(pair.key, [pair.value]);
      } else if (values.length < COMBINE_BATCH) {
        values.push(pair.value);
      } else {
        values[0] = combined(combine, pair.key, values);
        values.length = 1;
        values.push(pair.value);
      }
    }
    for (const [key, values] of groups) {
      const value = combined(combine, key, values);
      buckets[partition(key, nReduce)].push(encodePair(key, value));
    }
  } else {
    for (let i = 0; i < pairs.length; i++) {
      const pair = pairs[i];
      checkPair(pair, i);
      buckets[partition(pair.key, nReduce)].push(encodePair(pair.key, pair.value));
    }
  }
  let bytesWritten = 0;
  await Promise.all(buckets.map((lines, r) => {
    const bytes = utf8.encode(lines.join(""));
    bytesWritten += bytes.length;
    return writeIntermediate(intermediateName(task, r), bytes);
  }));
  return { bytesRead: data.length, bytesWritten };
}

/**
 * Runs reduce task `task`: reads `mr-<m>-<task>` for every map m, calls reduce once per key
 * (in sorted key order) and atomically writes `mr-out-<task>`, one `<key> <value>` line per key.
 */
export async function runReduceTask(
  app: MapReduceApp,
  task: number,
  nMap: number,
): Promise<TaskIo> {
  const groups = new Map<string, string[]>();
  let bytesRead = 0;
  for (let m = 0; m < nMap; m++) {
    const data = await Deno.readFile(intermediateName(m, task));
    bytesRead += data.length;
    decodePairs(utf8Decoder.decode(data), (key, value) => {
      const values = groups.get(key);
      if (values) values.push(value);
      else groups.set(key, [value]);
    });
  }
  const keys = [...groups.keys()].sort();
  const lines = new Array<string>(keys.length);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    let result: unknown = app.reduce(key, groups.get(key)!);
    // Await only real promises: an await per key would cost a microtask turn for sync apps.
    if (result instanceof Promise) result = await result;
    if (typeof result !== "string") {
      throw new TypeError(`reduce returned ${typeof result} for key ${key}, expected a string`);
    }
    lines[i] = `${key} ${result}\n`;
  }
  const bytes = utf8.encode(lines.join(""));
  await writeFileAtomic(outputName(task), bytes);
  return { bytesRead, bytesWritten: bytes.length };
}

/** Formats an exception for a failure report: "TypeError: x is not a function". */
export function describeError(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return `Thrown value: ${String(err)}`;
}

function workerId(): string {
  let host = "localhost";
  try {
    host = Deno.hostname();
  } catch {
    // Without --allow-sys the pid alone still tells local workers apart.
  }
  return `${host}:${Deno.pid}`;
}

/**
 * Runs a worker until the job is over; returns the process exit code: 0 when the job is done or
 * the coordinator is gone, 1 when the app cannot be loaded or the coordinator reports the job
 * failed.
 */
export async function runWorker(options: WorkerOptions): Promise<number> {
  const log = options.log ?? ((line: string) => console.error(line));
  const giveUpMs = options.giveUpMs ?? 3000;
  const pollMs = options.pollMs ?? 100;
  let app: MapReduceApp;
  try {
    app = await loadApp(options.appPath);
  } catch (err) {
    if (err instanceof AppLoadError) {
      log(`worker: ${err.message}`);
      return 1;
    }
    throw err;
  }
  const id = workerId();
  const status = options.status ?? newWorkerStatus("", options.appPath);
  status.id = id;
  const client = new RpcClient(options.coordinator, { timeoutMs: 5000, maxBackoffMs: 250 });
  const address = `${options.coordinator.hostname}:${options.coordinator.port}`;

  /** Calls the coordinator, retrying while it is unreachable; undefined means "gone". */
  const call = async (method: string, params: unknown): Promise<unknown> => {
    let firstFailure: number | undefined;
    for (;;) {
      try {
        return await client.call(method, params);
      } catch (err) {
        if (!(err instanceof ConnectionLostError || err instanceof RpcTimeoutError)) throw err;
        firstFailure ??= Date.now();
        if (Date.now() - firstFailure >= giveUpMs) return undefined;
        await sleep(Math.min(200, giveUpMs / 5));
      }
    }
  };

  try {
    for (;;) {
      const reply = await call(RPC_ASK, { workerId: id });
      if (reply === undefined) {
        log(
          `worker: coordinator ${address} unreachable for ${giveUpMs} ms: assuming the job is over`,
        );
        return 0;
      }
      const assignment = parseAssignment(reply);
      if (assignment.type === "done") return 0;
      if (assignment.type === "failed") {
        log(`worker: the job failed: ${assignment.error}`);
        return 1;
      }
      if (assignment.type === "wait") {
        status.state = "waiting";
        await sleep(pollMs);
        continue;
      }
      status.state = "working";
      status.current = {
        kind: assignment.type,
        task: assignment.task,
        attempt: assignment.attempt,
        since: Date.now(),
      };
      const report: ReportParams = {
        workerId: id,
        kind: assignment.type,
        task: assignment.task,
        attempt: assignment.attempt,
        ok: true,
        bytesRead: 0,
        bytesWritten: 0,
      };
      try {
        const io = assignment.type === "map"
          ? await runMapTask(app, assignment.task, assignment.file, assignment.nReduce)
          : await runReduceTask(app, assignment.task, assignment.nMap);
        report.bytesRead = io.bytesRead;
        report.bytesWritten = io.bytesWritten;
        status.tasksDone++;
        status.bytesRead += io.bytesRead;
        status.bytesWritten += io.bytesWritten;
      } catch (err) {
        status.tasksFailed++;
        report.ok = false;
        report.error = describeError(err);
        log(`worker: ${assignment.type} task ${assignment.task} failed: ${report.error}`);
      }
      if (await call(RPC_REPORT, report) === undefined) {
        log(
          `worker: coordinator ${address} unreachable for ${giveUpMs} ms: assuming the job is over`,
        );
        return 0;
      }
    }
  } finally {
    status.state = "exited";
    status.current = undefined;
    client.close();
  }
}
