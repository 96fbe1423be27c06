/**
 * The MapReduce coordinator: the scheduler behind an RPC server for workers and a Hono HTTP
 * server for people (status JSON, Prometheus metrics, a self-refreshing progress page). This is
 * the only mr/ file that reads the clock.
 */
import { Hono } from "hono";
import { routeByPathOnly } from "../net/http_host.ts";
import { RpcServer } from "../net/rpc.ts";
import { httpMetrics } from "../status/http_metrics.ts";
import { metricsResponse, Registry } from "../status/metrics.ts";
import { registerProcessMetrics } from "../status/process_metrics.ts";
import { registerCoordinatorMetrics } from "./coordinator_metrics.ts";
import { coordinatorPage } from "./coordinator_page.ts";
import { describeTask, Scheduler, type TaskView } from "./scheduler.ts";
import { intermediateName } from "./partition.ts";
import { type Assignment } from "./scheduler.ts";
import {
  parseAskParams,
  parseReportParams,
  type ReportResult,
  RPC_ASK,
  RPC_REPORT,
} from "./protocol.ts";
import { errorMessage } from "../util/errors.ts";

/** A missing or unreadable input file: the coordinator refuses to start. */
export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InputError";
  }
}

/** How a job ended. */
export type JobResult = { ok: true } | { ok: false; error: string };

/** What a coordinator runs and where it listens. */
export interface CoordinatorOptions {
  files: string[];
  nReduce: number;
  taskTimeoutMs: number;
  /** RPC address for workers; port 0 picks a free port. */
  listen: { hostname: string; port: number };
  /** HTTP address for status and metrics; omitted means no HTTP server. */
  http?: { hostname: string; port: number };
  /** App failures of one task that fail the job (default 3). */
  maxFailures?: number;
  /** Where diagnostics go (default stderr). */
  log?: (line: string) => void;
}

/** The JSON served at GET /status. */
export interface JobStatus {
  phase: string;
  error?: string;
  startedAt: string;
  elapsedMs: number;
  nMap: number;
  nReduce: number;
  taskTimeoutMs: number;
  counts: Record<"map" | "reduce", Record<"idle" | "running" | "done", number>>;
  tasks: Record<"idle" | "running" | "done", TaskStatus[]>;
  workers: { id: string; lastContact: string; lastContactAgoMs: number; tasksDone: number }[];
  reissues: number;
  bytesRead: number;
  bytesWritten: number;
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
}

/**
 * Checks that every input file exists, is a regular file and can be opened for reading; throws
 * InputError naming each bad file.
 */
export async function checkInputs(files: string[]): Promise<void> {
  if (files.length === 0) throw new InputError("No input files: give at least one FILE");
  const problems: string[] = [];
  for (const file of files) {
    try {
      const handle = await Deno.open(file, { read: true });
      try {
        if (!(await handle.stat()).isFile) problems.push(`${file}: not a regular file`);
      } finally {
        handle.close();
      }
    } catch (err) {
      const reason = err instanceof Deno.errors.NotFound
        ? "no such file"
        : err instanceof Deno.errors.PermissionDenied
        ? "permission denied"
        : errorMessage(err);
      problems.push(`${file}: ${reason}`);
    }
  }
  if (problems.length > 0) {
    throw new InputError(
      `Cannot read input file${problems.length > 1 ? "s" : ""}: ${problems.join("; ")}`,
    );
  }
}

/** A running coordinator: RPC and HTTP servers around one job's scheduler. */
export class Coordinator {
  readonly #scheduler: Scheduler;
  readonly #options: CoordinatorOptions;
  readonly #rpc: RpcServer;
  readonly #startedAt = Date.now();
  readonly #log: (line: string) => void;
  #http?: Deno.HttpServer<Deno.NetAddr>;
  #rpcAddress = { hostname: "", port: 0 };
  #httpAddress?: { hostname: string; port: number };
  #timer?: ReturnType<typeof setInterval>;
  #bytesRead = 0;
  #bytesWritten = 0;
  #reissues = 0;
  #resolveFinished!: (result: JobResult) => void;
  #settled = false;
  #closed = false;
  readonly #metrics = new Registry();

  /** Settles once every output file is final ({ ok: true }) or the job has failed. */
  readonly finished: Promise<JobResult>;

  /** Use Coordinator.start(). */
  private constructor(options: CoordinatorOptions) {
    this.#options = options;
    this.#log = options.log ?? ((line: string) => console.error(line));
    this.#scheduler = new Scheduler({
      files: options.files,
      nReduce: options.nReduce,
      taskTimeoutMs: options.taskTimeoutMs,
      maxFailures: options.maxFailures,
    });
    this.finished = new Promise((resolve) => (this.#resolveFinished = resolve));
    this.#rpc = new RpcServer({ log: (line) => this.#log(`coordinator: ${line}`) });
    registerCoordinatorMetrics(this.#metrics, () => this.status());
    registerProcessMetrics(this.#metrics);
  }

  /** Checks the inputs (InputError), then starts the RPC and HTTP servers. */
  static async start(options: CoordinatorOptions): Promise<Coordinator> {
    await checkInputs(options.files);
    const coordinator = new Coordinator(options);
    coordinator.#listen();
    return coordinator;
  }

  /** The bound RPC address (useful with port 0). */
  get rpcAddress(): { hostname: string; port: number } {
    return this.#rpcAddress;
  }

  /** The bound HTTP address, if serving HTTP. */
  get httpAddress(): { hostname: string; port: number } | undefined {
    return this.#httpAddress;
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
    this.#rpc.handle(RPC_ASK, (params) => this.#ask(params));
    this.#rpc.handle(RPC_REPORT, (params) => this.#report(params));
    this.#rpcAddress = this.#rpc.listen(this.#options.listen.hostname, this.#options.listen.port);
    if (this.#options.http) {
      const app = this.#routes();
      this.#http = Deno.serve(
        { hostname: this.#options.http.hostname, port: this.#options.http.port, onListen() {} },
        routeByPathOnly(app.fetch),
      );
      this.#httpAddress = { hostname: this.#http.addr.hostname, port: this.#http.addr.port };
    }
    // Expiry also runs on every ask, but a timer keeps the status page honest when no worker
    // is asking (all busy or all dead).
    const tick = Math.max(50, Math.min(1000, Math.floor(this.#options.taskTimeoutMs / 4)));
    this.#timer = setInterval(() => this.#expire(), tick);
  }

  #expire(): void {
    for (const task of this.#scheduler.expire(Date.now())) {
      this.#reissues++;
      this.#log(
        `coordinator: ${describeTask(task)} timed out on worker ${task.worker} after ` +
          `${this.#options.taskTimeoutMs} ms: handing it out again`,
      );
    }
  }

  #ask(params: unknown): Assignment {
    const { workerId } = parseAskParams(params);
    this.#expire();
    return this.#scheduler.assign(workerId, Date.now());
  }

  #report(params: unknown): ReportResult {
    const report = parseReportParams(params);
    const now = Date.now();
    let accepted = false;
    if (report.ok) {
      accepted = this.#scheduler.complete(report, now);
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
    this.#settleIfOver();
    return { accepted };
  }

  #settleIfOver(): void {
    if (this.#settled) return;
    if (this.#scheduler.done()) {
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
      tasks[task.state].push(taskStatus(task, now));
    }
    return {
      phase: this.#scheduler.phase,
      error: this.#scheduler.error,
      startedAt: new Date(this.#startedAt).toISOString(),
      elapsedMs: now - this.#startedAt,
      nMap: this.#scheduler.nMap,
      nReduce: this.#scheduler.nReduce,
      taskTimeoutMs: this.#options.taskTimeoutMs,
      counts,
      tasks,
      workers: this.#scheduler.workers().map((w) => ({
        id: w.id,
        lastContact: new Date(w.lastContact).toISOString(),
        lastContactAgoMs: now - w.lastContact,
        tasksDone: w.tasksDone,
      })),
      reissues: this.#reissues,
      bytesRead: this.#bytesRead,
      bytesWritten: this.#bytesWritten,
    };
  }

  /** The job's metrics in the Prometheus text exposition format, for GET /metrics. */
  metrics(): string {
    return this.#metrics.render();
  }

  #routes(): Hono {
    const app = new Hono();
    app.use(httpMetrics(this.#metrics));
    app.get("/status", (c) => c.json(this.status()));
    app.get("/metrics", () => metricsResponse(this.metrics()));
    app.get("/", (c) => c.html(coordinatorPage(this.status())));
    return app;
  }

  /**
   * Stops serving and removes the intermediate files of a successful job (best effort: files
   * that are not in this directory, or are already gone, are left alone).
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#rpc.close();
    await this.#http?.shutdown();
    if (this.#scheduler.done()) {
      const removals: Promise<void>[] = [];
      for (let m = 0; m < this.#scheduler.nMap; m++) {
        for (let r = 0; r < this.#scheduler.nReduce; r++) {
          removals.push(Deno.remove(intermediateName(m, r)).catch(() => {}));
        }
      }
      await Promise.all(removals);
    }
  }
}

function taskStatus(task: TaskView, now: number): TaskStatus {
  return {
    kind: task.kind,
    index: task.index,
    input: task.input,
    attempts: task.attempts,
    failures: task.failures,
    worker: task.worker,
    runningForMs: task.state === "running" ? now - task.startedAt! : undefined,
    lastError: task.lastError,
  };
}
