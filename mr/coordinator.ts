/**
 * The MapReduce coordinator: the scheduler behind an RPC server for workers and a Hono HTTP
 * server for people (status JSON, Prometheus metrics, a self-refreshing progress page). This is
 * the only mr/ file that reads the clock.
 */
import { Hono } from "hono";
import { RpcServer } from "../net/rpc.ts";
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
        : err instanceof Error
        ? err.message
        : String(err);
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
        app.fetch,
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
    const s = this.status();
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
    };
    const states = ["idle", "running", "done"] as const;
    metric(
      "raftmr_mr_tasks",
      "gauge",
      "Tasks by kind and state.",
      (["map", "reduce"] as const).flatMap((kind) =>
        states.map((state) =>
          [`{kind="${kind}",state="${state}"}`, s.counts[kind][state]] as [string, number]
        )
      ),
    );
    const all = [...s.tasks.idle, ...s.tasks.running, ...s.tasks.done];
    const sum = (kind: string, f: (t: TaskStatus) => number) =>
      all.filter((t) => t.kind === kind).reduce((acc, t) => acc + f(t), 0);
    metric("raftmr_mr_task_attempts_total", "counter", "Task hand-outs, re-issues included.", [
      ['{kind="map"}', sum("map", (t) => t.attempts)],
      ['{kind="reduce"}', sum("reduce", (t) => t.attempts)],
    ]);
    metric("raftmr_mr_task_failures_total", "counter", "Attempts that reported an app failure.", [
      ['{kind="map"}', sum("map", (t) => t.failures)],
      ['{kind="reduce"}', sum("reduce", (t) => t.failures)],
    ]);
    metric("raftmr_mr_task_reissues_total", "counter", "Tasks handed out again after a timeout.", [
      ["", s.reissues],
    ]);
    metric("raftmr_mr_phase", "gauge", "1 for the job's current phase.", [
      ...["map", "reduce", "done", "failed"].map((p) =>
        [`{phase="${p}"}`, s.phase === p ? 1 : 0] as [string, number]
      ),
    ]);
    metric("raftmr_mr_workers_seen", "gauge", "Workers that have contacted the coordinator.", [
      ["", s.workers.length],
    ]);
    metric("raftmr_mr_bytes_read_total", "counter", "Bytes workers reported reading.", [
      ["", s.bytesRead],
    ]);
    metric("raftmr_mr_bytes_written_total", "counter", "Bytes workers reported writing.", [
      ["", s.bytesWritten],
    ]);
    metric("raftmr_mr_elapsed_seconds", "gauge", "Seconds since the coordinator started.", [
      ["", s.elapsedMs / 1000],
    ]);
    return lines.join("\n") + "\n";
  }

  #routes(): Hono {
    const app = new Hono();
    app.get("/status", (c) => c.json(this.status()));
    app.get(
      "/metrics",
      (c) =>
        c.text(this.metrics(), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }),
    );
    app.get("/", (c) => c.html(progressPage(this.status())));
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

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

function bar(done: number, total: number): string {
  const percent = total === 0 ? 100 : Math.round((100 * done) / total);
  return `<div class="bar"><div style="width:${percent}%"></div></div> ${done}/${total}`;
}

function progressPage(s: JobStatus): string {
  const mapsDone = s.counts.map.done;
  const reducesDone = s.counts.reduce.done;
  const workers = s.workers
    .map((w) =>
      `<tr><td>${escapeHtml(w.id)}</td><td>${w.tasksDone}</td><td>${
        (w.lastContactAgoMs / 1000).toFixed(1)
      } s ago</td></tr>`
    )
    .join("");
  const running = s.tasks.running
    .map((t) =>
      `<li>${t.kind} ${t.index}${t.input ? ` (${escapeHtml(t.input)})` : ""} on ${
        escapeHtml(t.worker ?? "?")
      }, attempt ${t.attempts}, ${((t.runningForMs ?? 0) / 1000).toFixed(1)} s</li>`
    )
    .join("");
  // Refresh until the job is over; a finished page stays put.
  const refresh = s.phase === "map" || s.phase === "reduce"
    ? '<meta http-equiv="refresh" content="1">'
    : "";
  return `<!doctype html>
<html><head><meta charset="utf-8">${refresh}<title>raftmr: ${s.phase}</title>
<style>body{font-family:sans-serif;margin:2em}.bar{display:inline-block;width:20em;height:1em;
border:1px solid #888;vertical-align:middle}.bar div{height:100%;background:#4a8}
td,th{padding:0 1em 0 0;text-align:left}</style></head><body>
<h1>MapReduce job: ${escapeHtml(s.phase)}</h1>
${s.error ? `<p><strong>Error:</strong> ${escapeHtml(s.error)}</p>` : ""}
<p>Map ${bar(mapsDone, s.nMap)}</p>
<p>Reduce ${bar(reducesDone, s.nReduce)}</p>
<p>Elapsed ${
    (s.elapsedMs / 1000).toFixed(1)
  } s; read ${s.bytesRead} bytes, wrote ${s.bytesWritten} bytes;
${s.reissues} re-issued tasks.</p>
<h2>Running</h2><ul>${running || "<li>none</li>"}</ul>
<h2>Workers</h2><table><tr><th>worker</th><th>tasks done</th><th>last contact</th></tr>${workers}</table>
</body></html>`;
}
