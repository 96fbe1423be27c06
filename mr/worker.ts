/**
 * The MapReduce worker. It shares no filesystem with anyone (MapReduce §3.1): it asks the
 * coordinator for a task; a map fetches its split from the coordinator, runs the engine, keeps
 * the partition files in its own data directory and serves them; a reduce fetches partition r of
 * every map from the worker that holds it, runs the engine and uploads the output to the
 * coordinator, which commits it. On the coordinator's machine (mr run) a reduce reads the
 * partitions in place instead, checking them as it reads, and writes its output into the
 * coordinator's staging directory, where the commit renames it (mr/local_output.ts). Heartbeats tell the coordinator it is alive meanwhile. Repeats
 * until the coordinator says the job is over or cannot be reached for a few seconds.
 */
import { formatHostPort } from "../net/host_port.ts";
import { join, resolve } from "node:path";
import { AppLoadError } from "./app.ts";
import { sleep } from "../util/sleep.ts";
import { TaskExitedError, TaskFailedError, TaskRunner } from "./task_runner.ts";
import { ConnectionLostError, RpcClient, RpcTimeoutError } from "../net/rpc.ts";
import { clientHello, HandshakeError } from "../net/handshake.ts";
import {
  type HeartbeatResult,
  LENGTH_HEADER,
  type MapLocation,
  outputPath,
  parseAssignment,
  parseHeartbeatResult,
  parseLocationsResult,
  partitionPath,
  type ReportParams,
  RPC_ASK,
  RPC_HEARTBEAT,
  RPC_LOCATIONS,
  RPC_REPORT,
  splitPath,
  type TaskAssignment,
} from "./protocol.ts";
import {
  jobDir,
  mapAttemptDir,
  partitionFileName,
  type ServedJob,
  startShuffleServer,
} from "./shuffle_server.ts";
import type { EngineIo, MapInput } from "./task_protocol.ts";
import { type LocalInput, type MapPiece, readableInPlace, readableLocally } from "./local_input.ts";
import { writableLocally } from "./local_output.ts";
import { CorruptInputError } from "./checked_source.ts";
import {
  CRC_HEADER,
  crcHex,
  fetchToFile,
  fileChecksum,
  IntegrityError,
  TransferError,
} from "./transfer.ts";

/** How a worker finds its coordinator and app, and where it keeps and serves its data. */
export interface WorkerOptions {
  coordinator: { hostname: string; port: number };
  /** Path (relative to the current directory) or URL of the app module. */
  appPath: string;
  /** Intermediate data lives here (default: a fresh temporary directory, removed at exit). */
  dataDir?: string;
  /** Where map output is served to reducers (default 127.0.0.1, any free port). */
  listen?: { hostname: string; port: number };
  /** host:port other machines reach the data server at (default: the bound listen address). */
  advertise?: string;
  /** Give up (exit 0) after the coordinator has been unreachable this long (default 3 s). */
  giveUpMs?: number;
  /**
   * How long the coordinator may hold an ask while every task of the phase is running
   * (default ASK_HOLD_MS; 0 polls instead): it answers as soon as a task is ready or the job is
   * over, so a waiting worker starts a reduce the moment the last map is done.
   */
  askHoldMs?: number;
  /**
   * The longest pause between asks answered "wait" at once (default 100 ms): with askHoldMs 0,
   * or a coordinator that does not hold asks. The first pause is 10 ms, doubling up to this, so
   * a worker waiting for the last map of the phase starts a reduce soon after it is done
   * without polling fast for long.
   */
  pollMs?: number;
  /** Where diagnostics go (default stderr). */
  log?: (line: string, fields?: Record<string, unknown>) => void;
  /** Kept up to date as the worker runs, for its optional status endpoint. */
  status?: WorkerStatus;
  /** The token the coordinator's --token-file lists (sent in the handshake). */
  token?: string;
  /**
   * A task runner already starting for `appPath` (TaskRunner.start), which runWorker then owns;
   * by default runWorker starts one.
   */
  runner?: Promise<TaskRunner>;
  /**
   * Ends the worker when aborted: its task thread is closed and it returns at once without a
   * word, whatever it was doing (mr run stopping the workers it runs in its own process).
   */
  signal?: AbortSignal;
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
  /** The address reducers fetch this worker's map output from. */
  address?: string;
  /** When the coordinator last answered a heartbeat (ms since the epoch). */
  lastHeartbeat?: number;
  /** Partition bytes this worker fetched from mappers, and served to reducers. */
  shuffleBytesFetched: number;
  shuffleBytesServed: number;
  /** Transfers that failed their length or CRC-32C check and were retried. */
  corruptTransfers: number;
}

/** Records on `status` that the worker started `assignment` now. */
export function markWorking(
  status: WorkerStatus,
  assignment: { type: string; task: number; attempt: number },
): void {
  status.state = "working";
  status.current = {
    kind: assignment.type,
    task: assignment.task,
    attempt: assignment.attempt,
    since: Date.now(),
  };
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
    shuffleBytesFetched: 0,
    shuffleBytesServed: 0,
    corruptTransfers: 0,
  };
}

/** Bytes an attempt read and wrote, for the coordinator's status page. */
export type TaskIo = EngineIo & { bytesFetched?: number };

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
  // mr run runs several workers in one process: the second and later get a number of their own.
  const nth = ++workersStarted;
  return nth === 1 ? `${host}:${Deno.pid}` : `${host}:${Deno.pid}-${nth}`;
}

/** Workers this process has started (workerId). */
let workersStarted = 0;

/** Partitions a reduce fetches at once (Hadoop's mapreduce.reduce.shuffle.parallelcopies). */
const PARALLEL_FETCHES = 5;

/** The first pause of a worker told to wait (see WorkerOptions.pollMs). */
const FIRST_POLL_MS = 10;

/**
 * How long a worker asks the coordinator to hold an ask when nothing is ready (a long poll, see
 * AskParams.waitMs): a second, so a time-driven answer (a backup task) comes within about that.
 */
export const ASK_HOLD_MS = 1000;

/** Tries of one transfer before giving up on it. */
const TRANSFER_TRIES = 3;

/** A reduce assignment as the coordinator sends it. */
type ReduceAssignment = Extract<TaskAssignment, { type: "reduce" }>;

/** A reduce could not get one map's output: the coordinator decides whether the map re-runs. */
class FetchFailure extends Error {
  constructor(
    readonly map: number,
    readonly attempt: number,
    readonly refused: boolean,
    message: string,
  ) {
    super(message);
    this.name = "FetchFailure";
  }
}

/** Whether the coordinator answered the handshake with a refusal (no token, a wrong one). */
function isRefusal(err: unknown): err is HandshakeError {
  return err instanceof HandshakeError && err.refused;
}

/** A reduce was handed out while some map output was being recomputed: give it back. */
class NotReady extends Error {}

/**
 * Runs a worker until the job is over; returns the process exit code: 0 when the job is done or
 * the coordinator is gone, 1 when the app cannot be loaded or the coordinator reports the job
 * failed. Removes the job's intermediate data (and a temporary data directory) on the way out.
 */
export async function runWorker(options: WorkerOptions): Promise<number> {
  const log = options.log ?? ((line: string) => console.error(line));
  // The task thread starts and imports the app while this thread binds its data server and
  // reaches the coordinator: neither waits for the other (WorkerLoop.run joins them).
  const starting = options.runner ?? TaskRunner.start(options.appPath);
  // Awaited by WorkerLoop.run; this keeps a failure seen before then from being "unhandled".
  starting.catch(() => {});
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? await Deno.makeTempDir({ prefix: "raftmr-worker-" });
  await Deno.mkdir(dataDir, { recursive: true });
  let job: ServedJob | undefined;
  const dataToRemove = () => ownDir ? dataDir : job && jobDir(dataDir, job.id);
  const removeData = () => {
    const path = dataToRemove();
    try {
      if (path !== undefined) Deno.removeSync(path, { recursive: true });
    } catch {
      // Already gone.
    }
  };
  // Deno.exit() anywhere in this process (an app run in-process where no task thread can be
  // started, a signal handler) skips our finally blocks; unload still runs.
  globalThis.addEventListener("unload", removeData);
  const status = options.status ?? newWorkerStatus("", options.appPath);
  const server = startShuffleServer(
    options.listen ?? { hostname: "127.0.0.1", port: 0 },
    dataDir,
    () => job,
    (bytes) => (status.shuffleBytesServed += bytes),
  );
  try {
    const bound = server.addr;
    const wildcard = bound.hostname === "0.0.0.0" || bound.hostname === "::";
    const address = options.advertise ??
      formatHostPort({ hostname: wildcard ? Deno.hostname() : bound.hostname, port: bound.port });
    status.address = address;
    return await new WorkerLoop(starting, options, status, dataDir, address, log, (j) => (job = j))
      .run();
  } catch (err) {
    if (!(err instanceof AppLoadError)) throw err;
    log(`worker: ${err.message}`);
    return 1;
  } finally {
    (await starting.catch(() => undefined))?.close();
    // The job's data goes while the data server stops: nobody fetches once the job is over.
    const path = dataToRemove();
    await Promise.all([
      server.shutdown(),
      path === undefined ? undefined : Deno.remove(path, { recursive: true }).catch(() => {}),
    ]);
    globalThis.removeEventListener("unload", removeData);
  }
}

/** One worker's ask -> run -> report loop, with its heartbeat timer. */
class WorkerLoop {
  readonly #starting: Promise<TaskRunner>;
  /** The task runner, once its thread has loaded the app (run() waits for it). */
  #app!: TaskRunner;
  readonly #options: WorkerOptions;
  readonly #status: WorkerStatus;
  readonly #dataDir: string;
  readonly #address: string;
  readonly #log: (line: string, fields?: Record<string, unknown>) => void;
  readonly #setJob: (job: ServedJob) => void;
  readonly #client: RpcClient;
  readonly #id = workerId();
  readonly #giveUpMs: number;
  #job?: HeartbeatResult;
  #heartbeat?: ReturnType<typeof setInterval>;
  /** run() has returned or thrown. */
  #over = false;
  /** options.signal was aborted: end quietly. */
  #aborted = false;
  /** The running task reported progress since the last heartbeat. */
  #progressed = false;

  constructor(
    starting: Promise<TaskRunner>,
    options: WorkerOptions,
    status: WorkerStatus,
    dataDir: string,
    address: string,
    log: (line: string, fields?: Record<string, unknown>) => void,
    setJob: (job: ServedJob) => void,
  ) {
    this.#starting = starting;
    this.#options = options;
    this.#status = status;
    this.#dataDir = dataDir;
    this.#address = address;
    // A worker stopped by options.signal ends without a word: whatever fails from then on (its
    // calls, its task, reaching the coordinator) is the stop, not something to report.
    this.#log = (line, fields) => {
      if (!this.#aborted) log(line, fields);
    };
    this.#setJob = setJob;
    this.#giveUpMs = options.giveUpMs ?? 3000;
    status.id = this.#id;
    this.#client = new RpcClient(options.coordinator, {
      timeoutMs: 5000,
      maxBackoffMs: 250,
      hello: clientHello(options.token),
    });
    const abort = () => {
      this.#aborted = true;
      // Fails the call in flight (a held ask, a report), and ends the task the thread runs.
      this.#client.close();
      this.#app?.close();
    };
    if (options.signal?.aborted) abort();
    else options.signal?.addEventListener("abort", abort, { once: true });
  }

  /** Calls the coordinator, retrying while it is unreachable; undefined means "gone". */
  async #call(method: string, params: unknown): Promise<unknown> {
    let firstFailure: number | undefined;
    for (;;) {
      try {
        return await this.#client.call(method, params);
      } catch (err) {
        // A refusal stands (run() reports it); a Hello unanswered in time is a slow link.
        if (isRefusal(err)) throw err;
        const transient = err instanceof ConnectionLostError || err instanceof RpcTimeoutError ||
          err instanceof HandshakeError;
        if (!transient) throw err;
        // run() has ended (the app failed to load while a first heartbeat was retrying).
        if (this.#over || this.#aborted) return undefined;
        firstFailure ??= Date.now();
        if (Date.now() - firstFailure >= this.#giveUpMs) return undefined;
        await sleep(Math.min(200, this.#giveUpMs / 5));
      }
    }
  }

  #gone(): number {
    this.#log(
      `worker: coordinator ${this.#client.address} unreachable for ${this.#giveUpMs} ms: ` +
        "assuming the job is over",
    );
    return 0;
  }

  #neverReached(): number {
    this.#log(
      `worker: Cannot reach the coordinator at ${this.#client.address}: no answer for ` +
        `${this.#giveUpMs} ms (is it running, and is --coordinator right?)`,
      { level: "error" },
    );
    return 1;
  }

  /** A refused handshake (no token, a wrong one) will not pass by retrying: say why and stop. */
  #refused(err: HandshakeError): number {
    this.#log(`worker: ${err.message} (give the coordinator's token with --token-file)`, {
      level: "error",
    });
    return 1;
  }

  async #sendHeartbeat(): Promise<boolean> {
    const reply = await this.#call(RPC_HEARTBEAT, { workerId: this.#id, address: this.#address });
    if (reply === undefined) return false;
    const result = parseHeartbeatResult(reply);
    if (this.#job === undefined) {
      this.#job = result;
      this.#setJob({ id: result.job, token: result.token });
      await Deno.mkdir(jobDir(this.#dataDir, result.job), { recursive: true });
    }
    this.#status.lastHeartbeat = Date.now();
    return true;
  }

  async run(): Promise<number> {
    const pollMs = this.#options.pollMs ?? 100;
    const holdMs = this.#options.askHoldMs ?? ASK_HOLD_MS;
    let pauseMs = Math.min(FIRST_POLL_MS, pollMs);
    try {
      const first = this.#sendHeartbeat();
      first.catch(() => {});
      // A broken app ends the worker (runWorker reports it) without waiting for the coordinator.
      try {
        this.#app = await this.#starting;
      } catch (err) {
        // Stopped while its thread was still loading the app (options.signal).
        if (this.#aborted) return 0;
        throw err;
      }
      // Never reached at all: most likely a wrong --coordinator, not a job that ended.
      let reached: boolean;
      try {
        reached = await first;
      } catch (err) {
        if (isRefusal(err)) return this.#refused(err);
        throw err;
      }
      if (!reached) return this.#neverReached();
      // Heartbeats run beside the task: a long map must not look like a dead worker, and one
      // that keeps emitting is not timed out (the heartbeat carries its progress).
      this.#app.onProgress = () => (this.#progressed = true);
      this.#heartbeat = setInterval(() => {
        const current = this.#status.current;
        const progress = this.#progressed && current
          ? { kind: current.kind, task: current.task, attempt: current.attempt }
          : undefined;
        this.#progressed = false;
        this.#client.call(RPC_HEARTBEAT, {
          workerId: this.#id,
          address: this.#address,
          ...(progress ? { progress } : {}),
        })
          .then((reply) => {
            this.#status.lastHeartbeat = Date.now();
            // The job ended while our app is stalled (its attempt long since re-issued): end
            // the task thread, so this worker hears "done" and exits rather than hang.
            if (parseHeartbeatResult(reply).over && this.#status.current) this.#app.close();
          }, () => {
            // The coordinator is gone for good (it exits once the job is over): likewise.
            const silentMs = Date.now() - (this.#status.lastHeartbeat ?? 0);
            if (silentMs >= this.#giveUpMs && this.#status.current) this.#app.close();
          });
      }, this.#job!.heartbeatMs);
      /** The report of the attempt just run, still in flight while the next ask goes out. */
      let reporting: Promise<unknown> | undefined;
      for (;;) {
        const asked = Date.now();
        // Report and ask in one round trip: the report went out first on the same connection,
        // and the coordinator records it before its handler awaits anything, so this ask sees
        // the task done (or given back); the next task does not wait for the report's reply,
        // which for a reduce waits for its output's commit.
        const [reported, reply] = await Promise.all([
          reporting,
          this.#call(RPC_ASK, { workerId: this.#id, ...(holdMs > 0 ? { waitMs: holdMs } : {}) }),
        ]);
        if (reporting !== undefined && reported === undefined) return this.#gone();
        reporting = undefined;
        if (reply === undefined) return this.#gone();
        const assignment = parseAssignment(reply);
        if (assignment.type === "done") return 0;
        if (assignment.type === "failed") {
          this.#log(`worker: the job failed: ${assignment.error}`);
          return 1;
        }
        if (assignment.type === "wait") {
          this.#status.state = "waiting";
          // Held for its whole bound: the coordinator long-polls, so ask again at once. A "wait"
          // that came sooner (a coordinator that does not hold asks) gets the polling pause.
          if (holdMs > 0 && Date.now() - asked >= holdMs) continue;
          await sleep(pauseMs);
          pauseMs = Math.min(pauseMs * 2, pollMs);
          continue;
        }
        pauseMs = Math.min(FIRST_POLL_MS, pollMs);
        markWorking(this.#status, assignment);
        const report: ReportParams = {
          workerId: this.#id,
          kind: assignment.type,
          task: assignment.task,
          attempt: assignment.attempt,
          ok: true,
          bytesRead: 0,
          bytesWritten: 0,
        };
        try {
          const io = assignment.type === "map"
            ? await this.#map(
              assignment.task,
              assignment.attempt,
              assignment.file,
              assignment.nReduce,
              report,
              assignment.input,
              assignment.pieces,
            )
            : await this.#reduce(assignment, report);
          report.bytesRead = io.bytesRead;
          report.bytesWritten = io.bytesWritten;
          if (io.bytesFetched !== undefined) report.bytesFetched = io.bytesFetched;
          this.#status.tasksDone++;
          this.#status.bytesRead += io.bytesRead;
          this.#status.bytesWritten += io.bytesWritten;
        } catch (err) {
          report.ok = false;
          report.error = err instanceof TaskFailedError ? err.message : describeError(err);
          if (err instanceof AppLoadError) throw err;
          if (err instanceof FetchFailure) {
            report.release = true;
            report.fetchFailed = { map: err.map, attempt: err.attempt, refused: err.refused };
          } else if (
            err instanceof NotReady || err instanceof TransferError ||
            err instanceof TaskExitedError
          ) {
            // Not the app's fault, or a crash (an app that calls Deno.exit ends only its task
            // thread): the task goes back without counting as a failure, as when a worker dies.
            report.release = true;
          } else {
            this.#status.tasksFailed++;
          }
          this.#log(`worker: ${assignment.type} task ${assignment.task} failed: ${report.error}`);
        }
        this.#status.current = undefined;
        reporting = this.#call(RPC_REPORT, report);
      }
    } finally {
      this.#over = true;
      clearInterval(this.#heartbeat);
      this.#status.state = "exited";
      this.#status.current = undefined;
      this.#client.close();
    }
  }

  #dataUrl(path: string): string {
    const job = this.#job!;
    const host = job.dataHost !== "" ? job.dataHost : this.#options.coordinator.hostname;
    return `http://${formatHostPort({ hostname: host, port: job.dataPort })}${path}`;
  }

  /** Retries a transfer that came out short or corrupt; other errors pass through at once. */
  async #withRetries<T>(what: string, transfer: () => Promise<T>): Promise<T> {
    for (let attempt = 1;; attempt++) {
      try {
        return await transfer();
      } catch (err) {
        const retry = err instanceof IntegrityError ||
          (err instanceof TransferError && (err.status === undefined || err.status >= 500));
        if (!retry || attempt >= TRANSFER_TRIES) throw err;
        if (err instanceof IntegrityError) this.#status.corruptTransfers++;
        this.#log(`worker: ${what}: ${describeError(err)}: trying again`);
        await sleep(100 * attempt);
      }
    }
  }

  async #map(
    task: number,
    attempt: number,
    file: string,
    nReduce: number,
    report: ReportParams,
    input?: LocalInput,
    pieces?: MapPiece[],
  ): Promise<TaskIo> {
    const job = this.#job!;
    const dir = jobDir(this.#dataDir, job.job);
    // Each input file itself when it is here (mr run), else a copy fetched from the coordinator.
    const inputs: MapInput[] = [];
    const fetched: string[] = [];
    try {
      for (const [k, piece] of (pieces ?? [{ file, split: task, input }]).entries()) {
        const here = piece.input;
        if (here !== undefined && await readableLocally(here)) {
          const range = { offset: here.offset, length: here.length };
          inputs.push({ filename: piece.file, splitPath: here.path, range });
          continue;
        }
        const copy = join(dir, `split-${task}-a${attempt}-${k}`);
        await this.#withRetries(
          `split of map task ${task}`,
          () => fetchToFile(this.#dataUrl(splitPath(job.job, piece.split)), job.token, copy),
        );
        fetched.push(copy);
        inputs.push({ filename: piece.file, splitPath: copy });
      }
      return await this.#runMap(task, attempt, nReduce, report, inputs);
    } finally {
      for (const copy of fetched) await Deno.remove(copy).catch(() => {});
    }
  }

  /** Runs a map over `inputs` and moves its partitions into place for the data server. */
  async #runMap(
    task: number,
    attempt: number,
    nReduce: number,
    report: ReportParams,
    inputs: MapInput[],
  ): Promise<TaskIo> {
    // Partition files appear under their final directory name only once all are written, so
    // the data server never hands out a half-written attempt.
    const final = mapAttemptDir(this.#dataDir, this.#job!.job, task, attempt);
    const tmp = `${final}.tmp`;
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    await Deno.mkdir(tmp, { recursive: true });
    try {
      const io = await this.#app.run({
        type: "map",
        ...inputs[0],
        ...(inputs.length > 1 ? { inputs } : {}),
        nReduce,
        dir: tmp,
      });
      const sizes: number[] = [];
      const crcs: number[] = [];
      for (let r = 0; r < nReduce; r++) {
        // The engine checksums partitions as it writes them; read one back only without that.
        const sum = io.partitions?.[r] ?? await fileChecksum(join(tmp, partitionFileName(r)));
        sizes.push(sum.length);
        crcs.push(sum.crc);
      }
      await Deno.remove(final, { recursive: true }).catch(() => {});
      await Deno.rename(tmp, final);
      report.output = { address: this.#address, sizes, crcs, dir: resolve(final) };
      return io;
    } catch (err) {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
      throw err;
    }
  }

  /** Where each map's partition for a reduce is: in its assignment, else (older) by asking. */
  async #locations(assignment: ReduceAssignment): Promise<MapLocation[]> {
    let maps = assignment.maps;
    if (maps === undefined) {
      const reply = await this.#call(RPC_LOCATIONS, { workerId: this.#id, task: assignment.task });
      if (reply === undefined) throw new NotReady("Coordinator unreachable");
      maps = parseLocationsResult(reply, assignment.nMap).maps;
    }
    const missing = maps.findIndex((location) => location === null);
    if (missing >= 0) throw new NotReady(`The output of map task ${missing} is not available`);
    return maps as MapLocation[];
  }

  async #reduce(assignment: ReduceAssignment, report: ReportParams): Promise<TaskIo> {
    const { task, attempt } = assignment;
    const job = this.#job!;
    const maps = await this.#locations(assignment);
    const dir = join(jobDir(this.#dataDir, job.job), `reduce-${task}-a${attempt}`);
    // On the coordinator's machine (mr run) the output is written where the commit renames it
    // from; elsewhere into our own directory, then uploaded.
    const stage = assignment.stage && await writableLocally(assignment.stage)
      ? assignment.stage
      : undefined;
    let staged = false;
    let made = false;
    try {
      const inputs: string[] = [];
      // Per input read in place, the length and CRC-32C the merge checks it against as it reads.
      const checks: ({ length: number; crc: number } | null)[] = [];
      const fetches: number[] = [];
      // All at once: each check is a stat, and a reduce has one input per map.
      const inPlace = await Promise.all(
        maps.map(({ size, dir: mapDir }) =>
          mapDir !== undefined && readableInPlace(join(mapDir, partitionFileName(task)), size)
        ),
      );
      for (const { map, size, crc, dir: mapDir } of maps) {
        if (inPlace[map]) {
          inputs.push(join(mapDir!, partitionFileName(task)));
          checks.push({ length: size, crc });
        } else {
          inputs.push(join(dir, `in-${map}`));
          checks.push(null);
          fetches.push(map);
        }
      }
      // Our own directory only for fetched copies or an output to upload.
      made = fetches.length > 0 || stage === undefined;
      if (made) await Deno.mkdir(dir, { recursive: true });
      if (fetches.length > 0) {
        await this.#fetchPartitions(task, fetches.map((m) => maps[m]), inputs);
      }
      const bytesFetched = maps.reduce((sum, location) => sum + location.size, 0);
      this.#status.shuffleBytesFetched += bytesFetched;
      const output = stage?.path ?? join(dir, "out");
      let io: EngineIo;
      try {
        io = await this.#app.run({
          type: "reduce",
          inputs,
          output,
          checks,
          sync: stage !== undefined,
        });
      } catch (err) {
        if (err instanceof CorruptInputError) {
          const { map, attempt: mapAttempt } = maps[err.input];
          throw new FetchFailure(map, mapAttempt, false, describeError(err));
        }
        throw err;
      }
      if (stage) {
        staged = report.staged = true;
      } else {
        await this.#withRetries(
          `output of reduce task ${task}`,
          () => this.#upload(output, task, attempt),
        );
      }
      return { ...io, bytesFetched };
    } finally {
      // A failed attempt leaves nothing behind; a staged output is the coordinator's now.
      if (stage && !staged) await Deno.remove(stage.path).catch(() => {});
      if (made) await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }

  /**
   * Fetches partition `task` of each of `maps` over HTTP into `inputs[map]`, a few at once
   * (Hadoop's shuffle.parallelcopies: one slow holder does not hold up the rest). The first
   * failure stops new fetches and is thrown as a FetchFailure.
   */
  async #fetchPartitions(task: number, maps: MapLocation[], inputs: string[]): Promise<void> {
    const job = this.#job!;
    let failure: FetchFailure | undefined;
    let next = 0;
    const fetcher = async () => {
      while (failure === undefined && next < maps.length) {
        const { map, attempt: mapAttempt, address, size, crc } = maps[next++];
        const url = `http://${address}${partitionPath(job.job, map, mapAttempt, task)}`;
        try {
          await this.#withRetries(
            `partition ${task} of map task ${map}`,
            () => fetchToFile(url, job.token, inputs[map], { length: size, crc }),
          );
        } catch (err) {
          // A refused connection or a 404: the holder is gone or lost the file.
          const lost = err instanceof TransferError && (err.refused || err.status === 404);
          failure ??= new FetchFailure(map, mapAttempt, lost, describeError(err));
          return;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_FETCHES, maps.length) }, fetcher));
    if (failure) throw failure;
  }

  /** Uploads a reduce output with its length and CRC-32C; the body streams from the file. */
  async #upload(path: string, task: number, attempt: number): Promise<void> {
    const job = this.#job!;
    const sum = await fileChecksum(path);
    const file = await Deno.open(path, { read: true });
    let response: Response;
    try {
      response = await fetch(this.#dataUrl(outputPath(job.job, task, attempt)), {
        method: "PUT",
        headers: {
          authorization: `Bearer ${job.token}`,
          [LENGTH_HEADER]: String(sum.length),
          [CRC_HEADER]: crcHex(sum.crc),
          "content-type": "application/octet-stream",
        },
        body: file.readable,
      });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw new TransferError(`Cannot upload the output of reduce task ${task}: ${message}`, false);
    }
    const text = await response.text();
    // 409: another attempt's output was committed first; ours is not needed.
    if (response.ok || response.status === 409) return;
    if (response.status === 422) throw new IntegrityError(`Upload was damaged: ${text.trim()}`);
    throw new TransferError(
      `Cannot upload the output of reduce task ${task}: HTTP ${response.status}: ${text.trim()}`,
      false,
      response.status,
    );
  }
}
