/**
 * The MapReduce coordinator: the scheduler behind an RPC server for workers, and a Hono HTTP
 * server for people (status JSON, Prometheus metrics, a self-refreshing progress page) that also
 * carries the job's data endpoints (splits out, reduce outputs in). This is the only mr/ file
 * that reads the clock.
 */
import type { Hono } from "hono";
import { type HttpListener, serveHttp } from "../net/http_listener.ts";
import { defaultConnectionCap } from "../net/conn_gate.ts";
import { RpcServer } from "../net/rpc.ts";
import { tokenDigest } from "../net/handshake.ts";
import { registerListenerMetrics } from "../net/listener_metrics.ts";
import { Registry } from "../status/metrics.ts";
import { registerProcessMetrics } from "../status/process_metrics.ts";
import { registerCoordinatorMetrics } from "./coordinator_metrics.ts";
import type { FramedConn } from "../net/framed_conn.ts";
import { fsyncDir } from "../persist/atomic_file.ts";
import { randomHex } from "../util/random_hex.ts";
import { describeTask, Scheduler, type TaskView } from "./scheduler.ts";
import {
  type HeartbeatResult,
  type LocationsResult,
  type MapLocation,
  MAX_ASK_HOLD_MS,
  parseAskParams,
  parseHeartbeatParams,
  parseLocationsParams,
  parseReportParams,
  type ReportResult,
  RPC_ASK,
  RPC_HEARTBEAT,
  RPC_LOCATIONS,
  RPC_REPORT,
  type TaskAssignment,
} from "./protocol.ts";
import { checkInputs, InputError } from "./inputs.ts";
import {
  DEFAULT_SPLIT_SIZE,
  groupSplits,
  MAX_LOCAL_SPLIT_SIZE,
  type Split,
  SplitError,
  splitFile,
} from "./splits.ts";
import { resolve } from "node:path";
import { CoordinatorData } from "./coordinator_data.ts";
import { fileIdentity, type LocalInput } from "./local_input.ts";
import { LocalOutputs } from "./local_output.ts";
import { errorMessage } from "../util/errors.ts";
import { ParkedAsks } from "./parked_asks.ts";
import { planLocalTasks } from "./task_plan.ts";

export { checkInputs, InputError };

/** How a job ended. */
export type JobResult = { ok: true } | { ok: false; error: string };

/** What a coordinator runs and where it listens. */
export interface CoordinatorOptions {
  /** Input files, as map() will be told their names; each is cut into line-aligned splits. */
  files: string[];
  nReduce: number;
  taskTimeoutMs: number;
  /** Split size in bytes (default 64 MiB). */
  splitSize?: number;
  /** The longest split a map may get (default MAX_SPLIT_BYTES); a longer line is refused. */
  maxSplitBytes?: number;
  /** A worker not heard from this long is dead (default 10 s). */
  workerTimeoutMs?: number;
  /** Where mr-out-<r> files are written (default: the current directory). */
  outputDir?: string;
  /** Backup attempts for stragglers near the end of a phase (default true). */
  backupTasks?: boolean;
  /**
   * The workers run on this machine (`mr run`): map assignments also name the split's range in
   * the input file and the file's identity, and reducers are told the directory of each map's
   * partitions, so a worker reads both in place instead of over HTTP when it may and the bytes
   * are the ones announced (mr/local_input.ts). Without it every byte crosses HTTP.
   */
  localWorkers?: boolean;
  /**
   * With localWorkers: map consecutive small files in one task while there would be more than
   * about this many map tasks (mr/splits.ts groupSplits); `mr run` passes 4 x its workers.
   */
  minMapTasks?: number;
  /**
   * With localWorkers: plan the map tasks for this many workers so the map phase ends evenly
   * (mr/task_plan.ts: largest first, halving round by round) instead of cutting splits of
   * splitSize; `mr run` passes its worker count when --split-size is not given. Ignored below 2.
   */
  planWorkers?: number;
  /**
   * The job's id (default: random). `mr run` draws it before it starts its workers: their
   * permissions name the reduce outputs' staging directory, whose name holds it.
   */
  job?: string;
  /** Timeouts of one task that fail the job (default 3). */
  maxTimeouts?: number;
  /** The longest an ask is held while nothing is ready (default MAX_ASK_HOLD_MS). */
  maxAskHoldMs?: number;
  /**
   * RPC address for workers (port 0 picks a free port), or a listener bound already (`mr run`
   * binds it before starting its workers, so they can dial it while the coordinator starts).
   */
  listen: { hostname: string; port: number } | Deno.TcpListener;
  /**
   * HTTP address for status, metrics and the job's data endpoints; omitted means the listen
   * host on any free port.
   */
  http?: { hostname: string; port: number };
  /** App failures of one task that fail the job (default 3). */
  maxFailures?: number;
  /** Where diagnostics go (default stderr). */
  log?: (line: string) => void;
  /**
   * Tokens a worker must present in its handshake (mr/worker_auth.ts); undefined admits any
   * worker. A connection without one is closed before any of its calls is handled.
   */
  tokens?: string[];
}

/** The JSON served at GET /status. */
export interface JobStatus {
  phase: string;
  error?: string;
  /** The RPC address workers connect to (host:port); always set by Coordinator.status(). */
  rpc?: string;
  /** Whether workers must present a token; always set by Coordinator.status(). */
  workerAuth?: boolean;
  startedAt: string;
  elapsedMs: number;
  nMap: number;
  nReduce: number;
  taskTimeoutMs: number;
  counts: Record<"map" | "reduce", Record<"idle" | "running" | "done", number>>;
  tasks: Record<"idle" | "running" | "done", TaskStatus[]>;
  workers: WorkerStatusEntry[];
  reissues: number;
  bytesRead: number;
  bytesWritten: number;
  /** Partition bytes reducers fetched from mappers (all attempts). */
  shuffleBytes: number;
  /** Asks held open because nothing is ready: workers idle right now. */
  waiting?: number;
  /** Bytes of splits sent to map tasks. */
  splitBytes: number;
  /**
   * Bytes of reduce outputs uploaded over HTTP (all attempts; none when committed by rename);
   * always set by Coordinator.status().
   */
  uploadBytes?: number;
  /** Completed maps run again because their output was lost (holder dead, fetches failed). */
  mapReruns: number;
  /** Backup attempts started (MapReduce §3.6), and how many finished first. */
  backupAttempts: number;
  backupWins: number;
  /** Attempts given up after the task timeout on a live worker. */
  timeouts: number;
  splitSize: number;
  workerTimeoutMs: number;
  backupTasks: boolean;
}

/** One worker in GET /status. */
export interface WorkerStatusEntry {
  id: string;
  /** Where it serves its map output. */
  address?: string;
  alive: boolean;
  /** Its last heartbeat or other call. */
  lastContact: string;
  lastContactAgoMs: number;
  tasksDone: number;
}

/** One task in GET /status. */
export interface TaskStatus {
  kind: string;
  index: number;
  input?: string;
  attempts: number;
  failures: number;
  worker?: string;
  runningForMs?: number;
  lastError?: string;
  /** A split of a file cut in several: bytes [offset, offset + length). */
  split?: { part: number; parts: number; offset: number; length: number };
  timeouts?: number;
  backups?: number;
  reruns?: number;
  doneByBackup?: boolean;
}

/** The answer to an ask when there is nothing to do yet. */
const WAIT: TaskAssignment = { type: "wait" };

/** The default --worker-timeout: a worker silent this long is dead (MapReduce §3.3). */
export const DEFAULT_WORKER_TIMEOUT_MS = 10_000;

/** A running coordinator: RPC and HTTP servers around one job's scheduler. */
export class Coordinator {
  readonly #scheduler: Scheduler;
  readonly #options: CoordinatorOptions;
  readonly #rpc: RpcServer;
  readonly #startedAt = Date.now();
  readonly #log: (line: string) => void;
  readonly #splits: Split[];
  /** Per split, where a worker on this machine reads it (with options.localWorkers). */
  readonly #localInputs: (LocalInput | undefined)[];
  /** Per map task, the splits it maps, when some task maps several (else task m = split m). */
  readonly #groups?: number[][];
  readonly #data: CoordinatorData;
  /** With localWorkers: where reduces stage their outputs for a commit by rename. */
  #localOutputs?: LocalOutputs;
  /** Commits whose directory fsync is under way: the job is not finished before they are. */
  #syncing = 0;
  readonly #job: string;
  // 32 random bytes, URL-safe: the bearer token of every data request of this job.
  readonly #token = randomHex(32);
  readonly #outputDir: string;
  readonly #workerTimeoutMs: number;
  /** Which workers called over which connection: a closed connection means a dead worker. */
  readonly #connectionWorkers = new Map<FramedConn, Set<string>>();
  readonly #workerConnections = new Map<string, Set<FramedConn>>();
  /** Asks that found nothing to do, held until something is (AskParams.waitMs). */
  readonly #parked = new ParkedAsks<TaskAssignment>();
  #http!: HttpListener;
  #statusRoutes?: Promise<Hono>;
  #rpcAddress = { hostname: "", port: 0 };
  #httpAddress = { hostname: "", port: 0 };
  #timer?: ReturnType<typeof setInterval>;
  #bytesRead = 0;
  #bytesWritten = 0;
  #shuffleBytes = 0;
  #reissues = 0;
  #resolveFinished!: (result: JobResult) => void;
  #settled = false;
  #closed = false;
  readonly #metrics = new Registry();

  /** Settles once every output file is final ({ ok: true }) or the job has failed. */
  readonly finished: Promise<JobResult>;

  /** Use Coordinator.start(). */
  private constructor(
    options: CoordinatorOptions,
    splits: Split[],
    localInputs: (LocalInput | undefined)[],
    groups?: number[][],
  ) {
    this.#options = options;
    this.#splits = splits;
    this.#localInputs = localInputs;
    this.#groups = groups;
    this.#log = options.log ?? ((line: string) => console.error(line));
    this.#outputDir = options.outputDir ?? ".";
    this.#job = options.job ?? randomHex(8);
    this.#workerTimeoutMs = options.workerTimeoutMs ?? DEFAULT_WORKER_TIMEOUT_MS;
    this.#scheduler = new Scheduler({
      files: groups
        ? groups.map((g) => `${splits[g[0]].file}${g.length > 1 ? ` (+${g.length - 1})` : ""}`)
        : splits.map((split) => split.file),
      nReduce: options.nReduce,
      taskTimeoutMs: options.taskTimeoutMs,
      maxFailures: options.maxFailures,
      maxTimeouts: options.maxTimeouts,
      workerTimeoutMs: this.#workerTimeoutMs,
      backupTasks: options.backupTasks,
    });
    this.#data = new CoordinatorData({
      job: this.#job,
      token: this.#token,
      splits,
      nReduce: options.nReduce,
      outputDir: this.#outputDir,
      isDone: (reduce) => this.#scheduler.isDone("reduce", reduce),
    });
    this.finished = new Promise((resolve) => (this.#resolveFinished = resolve));
    this.#rpc = new RpcServer({
      name: "mr-rpc",
      log: (line) => this.#log(`coordinator: ${line}`),
      onDisconnect: (connection) => this.#disconnected(connection),
      // Every connection says who it is first: a worker's Hello, with its token when the job
      // has one (net/handshake.ts); a frame before that, or a wrong token, closes it unread.
      handshake: {
        selfId: 0,
        requirePeerCertificate: false,
        // No Raft peers here: a Hello claiming role "peer" must not skip the token check.
        checkPeer: () => "A MapReduce coordinator admits workers only",
        tokenDigests: options.tokens?.map(tokenDigest),
      },
    });
    registerCoordinatorMetrics(this.#metrics, () => this.status());
    registerListenerMetrics(this.#metrics, {
      gates: () => [this.#rpc.gate, this.#http.gate],
      httpUnauthorized: () => this.#data.unauthorized,
      httpTimeouts: () => this.#http.timedOut,
    });
    registerProcessMetrics(this.#metrics);
  }

  /** Checks the inputs (InputError), cuts them into splits, then starts the servers. */
  static async start(options: CoordinatorOptions): Promise<Coordinator> {
    await checkInputs(options.files);
    const splitSize = options.splitSize ?? DEFAULT_SPLIT_SIZE;
    const planWorkers = options.localWorkers ? options.planWorkers ?? 0 : 0;
    let splits: Split[] = [];
    let groups: number[][] | undefined;
    try {
      if (planWorkers > 1) {
        const files = options.files.map((file) => ({ file, path: file }));
        ({ splits, groups } = await planLocalTasks(
          files,
          planWorkers,
          MAX_LOCAL_SPLIT_SIZE,
          options.maxSplitBytes,
        ));
      } else {
        for (const file of options.files) {
          splits.push(...await splitFile(file, file, splitSize, options.maxSplitBytes));
        }
      }
    } catch (err) {
      // Refused at start, like any other input a job cannot use.
      if (err instanceof SplitError) throw new InputError(err.message);
      throw err;
    }
    const localInputs = options.localWorkers ? await localInputsOf(splits) : [];
    if (groups === undefined && options.localWorkers && options.minMapTasks) {
      groups = groupSplits(splits, options.minMapTasks, Math.max(splitSize, MAX_LOCAL_SPLIT_SIZE));
    }
    // A planned task may map a piece of a file: every task then names its pieces.
    const grouped = groups !== undefined && (planWorkers > 1 || groups.length < splits.length);
    const coordinator = new Coordinator(options, splits, localInputs, grouped ? groups : undefined);
    if (options.localWorkers) {
      coordinator.#localOutputs = await LocalOutputs.create(
        coordinator.#outputDir,
        coordinator.#job,
      );
    }
    try {
      coordinator.#listen();
    } catch (err) {
      // Not started (an address in use): nothing stays open, and no staging directory is left
      // in the output directory; quietly (no worker is declared gone from a job never started).
      coordinator.#closed = true;
      await coordinator.#http?.shutdown();
      await coordinator.#rpc.close();
      await coordinator.#localOutputs?.close();
      throw err;
    }
    return coordinator;
  }

  /** The bound RPC address (useful with port 0). */
  get rpcAddress(): { hostname: string; port: number } {
    return this.#rpcAddress;
  }

  /** The bound HTTP address (status, metrics and data). */
  get httpAddress(): { hostname: string; port: number } {
    return this.#httpAddress;
  }

  /**
   * With localWorkers, the directory reduces write their outputs into before the commit renames
   * them (workers need write access to it); otherwise undefined.
   */
  get localStageDir(): string | undefined {
    return this.#localOutputs?.dir;
  }

  /** The job's id and data token (for tests that play a worker). */
  get credentials(): { job: string; token: string } {
    return { job: this.#job, token: this.#token };
  }

  /** Progress counters for a progress bar. */
  progress(): {
    phase: string;
    mapsDone: number;
    nMap: number;
    reducesDone: number;
    nReduce: number;
  } {
    return {
      phase: this.#scheduler.phase,
      ...this.#scheduler.progress(),
      nMap: this.#scheduler.nMap,
      nReduce: this.#scheduler.nReduce,
    };
  }

  #listen(): void {
    this.#rpc.handle(RPC_HEARTBEAT, (params, context) => this.#heartbeat(params, context));
    this.#rpc.handle(RPC_ASK, (params, context) => this.#ask(params, context));
    this.#rpc.handle(RPC_LOCATIONS, (params) => this.#locations(params));
    this.#rpc.handle(RPC_REPORT, (params) => this.#report(params));
    const listen = this.#options.listen;
    const rpcHost = "accept" in listen ? (listen.addr as Deno.NetAddr).hostname : listen.hostname;
    const http = this.#options.http ?? { hostname: rpcHost, port: 0 };
    // The HTTP port first: a coordinator that cannot bind it fails before its RPC port serves
    // anyone (mr run's workers dial that port at once, and would otherwise get tasks of a job
    // that never starts). The listener with a connection cap, header and idle timeouts and an
    // accept loop that survives EMFILE (net/http_listener.ts): splits and outputs cross it too.
    this.#http = serveHttp({
      hostname: http.hostname,
      port: http.port,
      maxConnections: defaultConnectionCap(),
      log: (line) => this.#log(`coordinator: ${line}`),
      handler: (request) =>
        this.#data.handles(new URL(request.url).pathname)
          ? this.#data.handle(request)
          : this.#routes().then((app) => app.fetch(request)),
    });
    this.#httpAddress = { hostname: this.#http.addr.hostname, port: this.#http.addr.port };
    this.#rpcAddress = "accept" in listen
      ? this.#rpc.serve(listen)
      : this.#rpc.listen(listen.hostname, listen.port);
    // Expiry also runs on every ask, but a timer keeps the status page honest when no worker
    // is asking (all busy or all dead), and notices workers that went silent.
    const shortest = Math.min(this.#options.taskTimeoutMs, this.#workerTimeoutMs);
    const tick = Math.max(50, Math.min(1000, Math.floor(shortest / 4)));
    this.#timer = setInterval(() => this.#expire(), tick);
  }

  #heartbeatMs(): number {
    // Several heartbeats per worker timeout, so one late one is not a death sentence.
    return Math.max(20, Math.min(1000, Math.floor(this.#workerTimeoutMs / 5)));
  }

  #expire(): void {
    const now = Date.now();
    for (const task of this.#scheduler.expire(now)) {
      this.#reissues++;
      this.#log(
        `coordinator: ${describeTask(task)} timed out on worker ${task.worker} after ` +
          `${this.#options.taskTimeoutMs} ms: handing it out again`,
      );
    }
    const { workers, rerun } = this.#scheduler.expireWorkers(now);
    if (workers.length > 0) {
      this.#logLost(workers, `no heartbeat for ${this.#workerTimeoutMs} ms`, rerun);
      // Not handed work while declared dead: it asks again (and so comes back) if it is not.
      for (const workerId of workers) this.#parked.drop(workerId, WAIT);
    }
    this.#settleIfOver();
    // Time alone can make work: a timed-out attempt's task, a backup that fell due.
    this.#serveParked();
  }

  #logLost(workers: string[], why: string, rerun: TaskView[]): void {
    const maps = rerun.length === 0
      ? ""
      : `: its completed map tasks ${rerun.map((t) => t.index).join(", ")} will run again`;
    this.#log(`coordinator: worker ${workers.join(", ")} is gone (${why})${maps}`);
  }

  #bind(workerId: string, connection: FramedConn): void {
    let workers = this.#connectionWorkers.get(connection);
    if (!workers) this.#connectionWorkers.set(connection, workers = new Set());
    workers.add(workerId);
    let connections = this.#workerConnections.get(workerId);
    if (!connections) this.#workerConnections.set(workerId, connections = new Set());
    connections.add(connection);
  }

  /**
   * A worker's connection closed. A live worker keeps its connection for the whole job, so a
   * close means its process is gone: declare it dead now rather than after --worker-timeout
   * (heartbeats still catch a worker that went silent without closing, e.g. a partition).
   */
  #disconnected(connection: FramedConn): void {
    const workers = this.#connectionWorkers.get(connection);
    this.#connectionWorkers.delete(connection);
    if (!workers || this.#closed) return;
    const now = Date.now();
    for (const workerId of workers) {
      const connections = this.#workerConnections.get(workerId);
      connections?.delete(connection);
      if (connections && connections.size > 0) continue;
      this.#workerConnections.delete(workerId);
      // Its parked ask can no longer be answered: handing it a task would strand that task.
      this.#parked.drop(workerId, WAIT);
      const alive = this.#scheduler.workers().find((w) => w.id === workerId)?.alive;
      const rerun = this.#scheduler.workerLost(workerId, now);
      if (alive && this.#scheduler.phase !== "done" && this.#scheduler.phase !== "failed") {
        this.#logLost([workerId], "its connection closed", rerun);
      }
    }
    // The dead worker's running tasks are idle again: a waiting worker takes them now.
    this.#serveParked();
  }

  #heartbeat(params: unknown, context: { connection: FramedConn }): HeartbeatResult {
    const { workerId, address, progress } = parseHeartbeatParams(params);
    this.#bind(workerId, context.connection);
    this.#scheduler.touch(workerId, Date.now(), address);
    if (progress) {
      this.#scheduler.madeProgress(
        workerId,
        progress.kind,
        progress.task,
        progress.attempt,
        Date.now(),
      );
    }
    const host = this.#httpAddress.hostname;
    return {
      job: this.#job,
      token: this.#token,
      // A wildcard bind is reachable at whatever host the worker dialed for RPC.
      dataHost: host === "0.0.0.0" || host === "::" ? "" : host,
      dataPort: this.#httpAddress.port,
      heartbeatMs: this.#heartbeatMs(),
      over: this.#scheduler.phase === "done" || this.#scheduler.phase === "failed",
    };
  }

  #ask(
    params: unknown,
    context: { connection: FramedConn },
  ): TaskAssignment | Promise<TaskAssignment> {
    const { workerId, waitMs } = parseAskParams(params);
    this.#bind(workerId, context.connection);
    this.#expire();
    const assignment = this.#assign(workerId, Date.now());
    if (assignment.type !== "wait" || !waitMs) return assignment;
    // A long poll: #serveParked() answers it the moment there is work for it or the job ends;
    // when the hold is up it is answered with whatever there is then ("wait", or a backup).
    return this.#parked.park(
      workerId,
      Math.min(waitMs, this.#options.maxAskHoldMs ?? MAX_ASK_HOLD_MS),
      () => this.#assign(workerId, Date.now()),
      WAIT,
    );
  }

  /** Offers work to the parked asks, oldest first; called whenever work may have appeared. */
  #serveParked(): void {
    if (this.#parked.size === 0 || this.#closed) return;
    const now = Date.now();
    this.#parked.serve((workerId) => {
      const assignment = this.#assign(workerId, now);
      return assignment.type === "wait" ? undefined : assignment;
    });
  }

  /**
   * The scheduler's assignment for `workerId`, with where a local worker reads its input; a
   * reduce also with where its inputs are (no locations round trip) and, with local workers,
   * where it stages its output.
   */
  #assign(workerId: string, now: number): TaskAssignment {
    const assignment = this.#scheduler.assign(workerId, now);
    if (assignment.type === "reduce") {
      const stage = this.#localOutputs?.stage(assignment.task, assignment.attempt);
      return {
        ...assignment,
        maps: this.#mapLocations(assignment.task),
        ...(stage ? { stage } : {}),
      };
    }
    if (assignment.type !== "map") return assignment;
    const group = this.#groups?.[assignment.task];
    if (group) {
      // Task m is not split m here: every task names its splits, even a one-split task.
      const pieces = group.map((split) => {
        const input = this.#localInputs[split];
        return { file: this.#splits[split].file, split, ...(input ? { input } : {}) };
      });
      return { ...assignment, pieces };
    }
    const input = this.#localInputs[assignment.task];
    return input ? { ...assignment, input } : assignment;
  }

  #locations(params: unknown): LocationsResult {
    const { workerId, task } = parseLocationsParams(params);
    if (task >= this.#scheduler.nReduce) {
      throw new RangeError(`No reduce task ${task}: the job has ${this.#scheduler.nReduce}`);
    }
    this.#scheduler.touch(workerId, Date.now());
    return { maps: this.#mapLocations(task) };
  }

  /** Where each map's partition for reduce task `task` is; null while a map's is not available. */
  #mapLocations(task: number): (MapLocation | null)[] {
    return this.#scheduler.mapOutputs().map((where, map) =>
      where === undefined ? null : {
        map,
        attempt: where.attempt,
        address: where.output.address,
        size: where.output.sizes[task],
        crc: where.output.crcs[task],
        ...(this.#options.localWorkers && where.output.dir !== undefined
          ? { dir: where.output.dir }
          : {}),
      }
    );
  }

  async #report(params: unknown): Promise<ReportResult> {
    const report = parseReportParams(params);
    const now = Date.now();
    let accepted = false;
    let committed = false;
    /** The commit was a rename of an output its worker staged and fsynced (mr run). */
    let renamed = false;
    if (report.ok && report.kind === "map") {
      if (report.output?.sizes.length !== this.#scheduler.nReduce) {
        throw new TypeError(
          `Invalid output: a map report lists ${this.#scheduler.nReduce} partitions`,
        );
      }
      accepted = this.#scheduler.complete(report, now);
    } else if (report.ok) {
      const local = report.staged === true ? this.#localOutputs : undefined;
      if (this.#scheduler.isDone("reduce", report.task)) {
        await local?.discard(report.task, report.attempt);
        await this.#data.discard(report.task);
      } else if (
        local
          ? !local.staged(report.task, report.attempt, report.bytesWritten)
          : !this.#data.staged(report.task, report.attempt)
      ) {
        this.#log(
          `coordinator: reduce task ${report.task} attempt ${report.attempt} reported done ` +
            `without ${local ? "a staged" : "an uploaded"} output: handing it out again`,
        );
        // Released before any await: the worker's next ask, sent right behind this report,
        // must not find it still holding the attempt.
        this.#scheduler.release(report, now);
        await local?.discard(report.task, report.attempt);
      } else {
        // complete() and the rename run without an await in between: no other report can
        // commit the same task meanwhile.
        accepted = this.#scheduler.complete(report, now);
        if (accepted) {
          try {
            if (local) local.commit(report.task, report.attempt);
            renamed = local !== undefined;
            committed = renamed || this.#data.commit(report.task, report.attempt);
          } catch (err) {
            const reason = errorMessage(err);
            this.#scheduler.abort(
              `Cannot commit the output of reduce task ${report.task}: ${reason}`,
            );
          }
        } else await local?.discard(report.task, report.attempt);
        await this.#data.discard(report.task);
      }
    } else if (report.release) {
      if (report.fetchFailed) {
        const { map, attempt, refused } = report.fetchFailed;
        const rerun = this.#scheduler.fetchFailed(map, attempt, refused, now);
        this.#log(
          `coordinator: reduce task ${report.task} could not fetch the output of map task ` +
            `${map}: ${report.error}${rerun ? ": running that map again" : ""}`,
        );
      } else {
        // Not counted as a failure (a crash of the app's thread, input not ready), but an
        // operator still wants to see why a task went round again.
        this.#log(
          `coordinator: ${report.kind} task ${report.task} attempt ${report.attempt} handed ` +
            `back by worker ${report.workerId}: ${report.error ?? "no reason given"}`,
        );
      }
      this.#scheduler.release(report, now);
    } else {
      const task = this.#scheduler.tasks().find((t) =>
        t.kind === report.kind && t.index === report.task
      );
      this.#log(
        `coordinator: ${
          task ? describeTask(task) : `${report.kind} task ${report.task}`
        } attempt ` +
          `${report.attempt} failed on worker ${report.workerId}: ${report.error}`,
      );
      this.#scheduler.fail({ ...report, error: report.error ?? "Unknown error" }, now);
    }
    // Every valid report counts, duplicates and failures included: the status page shows the
    // I/O the workers really did, re-executions and all.
    this.#bytesRead += report.bytesRead;
    this.#bytesWritten += report.bytesWritten;
    this.#shuffleBytes += report.bytesFetched ?? 0;
    // The contract: once the job is done, every mr-out-<r> is durable. An upload is fsynced as
    // it is received and a staged output by its worker, so what remains is the directory
    // entries: after each upload's commit (as the data path always did), and for outputs
    // committed by rename once, when the last commit makes the job done; a crash before that
    // leaves each output whole or absent (rename), and the job unfinished.
    if (committed && (!renamed || this.#scheduler.done())) {
      this.#syncing++;
      try {
        await fsyncDir(this.#outputDir);
      } finally {
        this.#syncing--;
      }
    }
    this.#settleIfOver();
    // A completion may open the reduce phase or end the job; a failure or a release makes its
    // task idle again: whoever is waiting hears it now.
    this.#serveParked();
    return { accepted };
  }

  #settleIfOver(): void {
    if (this.#settled) return;
    if (this.#scheduler.done()) {
      // Finished means durable: wait for the last commit's directory fsync.
      if (this.#syncing > 0) return;
      this.#settled = true;
      this.#resolveFinished({ ok: true });
    } else if (this.#scheduler.phase === "failed") {
      this.#settled = true;
      this.#resolveFinished({ ok: false, error: this.#scheduler.error ?? "Job failed" });
    }
  }

  /** A snapshot of the job for GET /status. */
  status(): JobStatus {
    const now = Date.now();
    const counts: JobStatus["counts"] = {
      map: { idle: 0, running: 0, done: 0 },
      reduce: { idle: 0, running: 0, done: 0 },
    };
    const tasks: JobStatus["tasks"] = { idle: [], running: [], done: [] };
    for (const task of this.#scheduler.tasks()) {
      counts[task.kind][task.state]++;
      tasks[task.state].push(
        taskStatus(
          task,
          now,
          task.kind === "map"
            ? this.#splits[this.#groups?.[task.index][0] ?? task.index]
            : undefined,
        ),
      );
    }
    const counters = this.#scheduler.counters();
    return {
      phase: this.#scheduler.phase,
      error: this.#scheduler.error,
      rpc: `${this.#rpcAddress.hostname}:${this.#rpcAddress.port}`,
      workerAuth: this.#options.tokens !== undefined,
      startedAt: new Date(this.#startedAt).toISOString(),
      elapsedMs: now - this.#startedAt,
      nMap: this.#scheduler.nMap,
      nReduce: this.#scheduler.nReduce,
      taskTimeoutMs: this.#options.taskTimeoutMs,
      counts,
      tasks,
      workers: this.#scheduler.workers().map((w) => ({
        id: w.id,
        ...(w.address !== undefined ? { address: w.address } : {}),
        alive: w.alive,
        lastContact: new Date(w.lastContact).toISOString(),
        lastContactAgoMs: now - w.lastContact,
        tasksDone: w.tasksDone,
      })),
      reissues: this.#reissues,
      bytesRead: this.#bytesRead,
      bytesWritten: this.#bytesWritten,
      shuffleBytes: this.#shuffleBytes,
      waiting: this.#parked.size,
      splitBytes: this.#data.splitBytesServed,
      uploadBytes: this.#data.outputBytesReceived,
      mapReruns: counters.mapReruns,
      backupAttempts: counters.backupAttempts,
      backupWins: counters.backupWins,
      timeouts: counters.timeouts,
      splitSize: this.#options.splitSize ?? DEFAULT_SPLIT_SIZE,
      workerTimeoutMs: this.#workerTimeoutMs,
      backupTasks: this.#options.backupTasks ?? true,
    };
  }

  /** The job's metrics in the Prometheus text exposition format, for GET /metrics. */
  metrics(): string {
    return this.#metrics.render();
  }

  /** The status routes, loaded with the first request for them (mr/coordinator_routes.ts). */
  #routes(): Promise<Hono> {
    return this.#statusRoutes ??= import("./coordinator_routes.ts").then(
      (m) => m.coordinatorRoutes(this.#metrics, () => this.status(), () => this.metrics()),
      (err) => {
        // Not kept: a load that failed once (a file briefly unreadable) is tried again by the
        // next request, instead of every page answering 500 until a restart.
        this.#statusRoutes = undefined;
        throw err;
      },
    );
  }

  /** Stops serving and removes staged uploads that were never committed. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    // Answered before the connections close, so no hold timer outlives the coordinator.
    this.#parked.dropAll(() => {
      const phase = this.#scheduler.phase;
      if (phase === "done") return { type: "done" };
      if (phase === "failed") return { type: "failed", error: this.#scheduler.error ?? "" };
      return WAIT;
    });
    await this.#rpc.close();
    await this.#http.shutdown();
    await this.#data.discard();
    await this.#localOutputs?.close();
  }
}

function taskStatus(task: TaskView, now: number, split?: Split): TaskStatus {
  // Fields that are zero or absent stay out, so an ordinary task reads as before.
  return {
    kind: task.kind,
    index: task.index,
    input: task.input,
    attempts: task.attempts,
    failures: task.failures,
    worker: task.worker,
    runningForMs: task.state === "running" ? now - task.startedAt! : undefined,
    lastError: task.lastError,
    split: split && split.parts > 1
      ? { part: split.part, parts: split.parts, offset: split.offset, length: split.length }
      : undefined,
    timeouts: task.timeouts || undefined,
    backups: task.backups || undefined,
    reruns: task.reruns || undefined,
    doneByBackup: task.doneByBackup || undefined,
  };
}

/** Each split's range in its file with the file's identity (undefined where stat cannot tell). */
async function localInputsOf(splits: Split[]): Promise<(LocalInput | undefined)[]> {
  const identities = new Map<string, Awaited<ReturnType<typeof fileIdentity>>>();
  const inputs: (LocalInput | undefined)[] = [];
  for (const split of splits) {
    const path = resolve(split.path);
    if (!identities.has(path)) identities.set(path, await fileIdentity(path));
    const identity = identities.get(path);
    inputs.push(identity && { path, offset: split.offset, length: split.length, ...identity });
  }
  return inputs;
}
