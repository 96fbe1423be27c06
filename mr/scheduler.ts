/**
 * Pure MapReduce task state: which task goes to which worker, re-issue after a timeout, retries
 * after app failures, the map -> reduce -> done phases, where each completed map's output lives,
 * workers that died (their maps run again), and backup attempts for stragglers. No clock, no I/O:
 * every method that depends on time takes `now` (milliseconds), so the coordinator, the tests and
 * a future Raft-replicated coordinator drive it identically.
 */

import type { LocalInput, MapPiece } from "./local_input.ts";

/** Where the job is: maps run first; reduces start only once every map is done. */
export type Phase = "map" | "reduce" | "done" | "failed";

/** The two kinds of task. */
export type TaskKind = "map" | "reduce";

/** A task is idle (waiting for a worker), running (handed out) or done (output is final). */
export type TaskState = "idle" | "running" | "done";

/**
 * Where a completed map attempt left its output: the worker's data address, and per partition
 * its size and CRC-32C, so a reducer can fetch it from there and check what it got.
 */
export interface MapOutput {
  /** host:port of the worker's data server. */
  address: string;
  /** Byte size of partition r, for every r in 0..nReduce-1. */
  sizes: number[];
  /** CRC-32C of partition r. */
  crcs: number[];
  /**
   * The directory holding the partitions on the mapper's machine (part-<r> files), for a reducer
   * that can read it there (mr run: every worker on one machine).
   */
  dir?: string;
}

/** A read-only view of one task, for status pages and tests. */
export interface TaskView {
  kind: TaskKind;
  index: number;
  /** The input file of a map task. */
  input?: string;
  state: TaskState;
  /** How many times the task was handed out (backups and re-runs included). */
  attempts: number;
  /** How many attempts reported an app failure. */
  failures: number;
  /** How many attempts ran longer than the task timeout on a live worker. */
  timeouts: number;
  /** How many backup attempts (MapReduce §3.6) the task was given. */
  backups: number;
  /** How many times this completed map was run again because its output was lost. */
  reruns: number;
  /** The worker running the latest attempt, or the one that completed it. */
  worker?: string;
  /** When the latest attempt was handed out. */
  startedAt?: number;
  finishedAt?: number;
  lastError?: string;
  /** The attempt that completed the task. */
  doneAttempt?: number;
  /** Whether the completing attempt was a backup. */
  doneByBackup?: boolean;
  /** Where a completed map's output lives. */
  output?: MapOutput;
}

/** A read-only view of one worker the scheduler has heard from. */
export interface WorkerView {
  id: string;
  firstSeen: number;
  lastContact: number;
  tasksDone: number;
  /** The data address the worker advertised, once it did. */
  address?: string;
  /** False once the worker was declared dead (until it is heard from again). */
  alive: boolean;
}

/** What a worker asking for work is told to do. */
export type Assignment =
  | {
    type: "map";
    task: number;
    attempt: number;
    file: string;
    nReduce: number;
    /** The split in the input file itself, for a worker on the coordinator's machine. */
    input?: LocalInput;
    /** A task over several small files (mr run): each one, mapped in this order. */
    pieces?: MapPiece[];
  }
  | { type: "reduce"; task: number; attempt: number; nMap: number }
  | { type: "wait" }
  | { type: "done" }
  | { type: "failed"; error: string };

/** A worker's account of one attempt. */
export interface AttemptReport {
  kind: TaskKind;
  task: number;
  attempt: number;
  workerId: string;
  /** For a map: where its output lives (required for the reduces to find it). */
  output?: MapOutput;
}

/** How the job is shaped. */
export interface SchedulerOptions {
  /** One map task per entry (an input file's split), in this order; entries may repeat. */
  files: string[];
  nReduce: number;
  /** A task handed out this long ago without a report is handed out again. */
  taskTimeoutMs: number;
  /** App failures of one task that fail the whole job (default 3). */
  maxFailures?: number;
  /** Timeouts of one task that fail the whole job (default 3): an app that never returns. */
  maxTimeouts?: number;
  /** A worker not heard from this long is dead (default: no heartbeat expiry). */
  workerTimeoutMs?: number;
  /** Give stragglers a backup attempt near the end of a phase (default true). */
  backupTasks?: boolean;
  /** A backup never starts for a task running less than this (default 1000 ms). */
  backupMinRunningMs?: number;
  /** Failed fetches of one map output after which that map runs again (default 3). */
  maxFetchFailures?: number;
}

interface Attempt {
  attempt: number;
  worker: string;
  startedAt: number;
  backup: boolean;
  /** When its worker last said it made progress (emitted pairs, reduced keys). */
  progressAt?: number;
}

/** A task's internal record: the view's fields plus the attempts still running. */
interface Task extends TaskView {
  running: Attempt[];
  fetchFailures: number;
  /** Timeouts since the task last completed: the ones that count toward maxTimeouts. */
  recentTimeouts: number;
  /** When the completing attempt was handed out (-1 until done), for backup medians. */
  doneStartedAt: number;
}

/** The default number of app failures of one task after which the job fails. */
export const DEFAULT_MAX_FAILURES = 3;
/** The default number of timeouts of one task after which the job fails. */
export const DEFAULT_MAX_TIMEOUTS = 3;

/**
 * Backups start once this share of the phase's tasks is done (Spark's speculation quantile is
 * 0.75 by default; the paper says "close to completion"; 0.9 keeps backups to the real tail).
 */
const BACKUP_DONE_FRACTION = 0.9;
/**
 * A backup starts for a task running more than this many times the median duration of its
 * completed peers. Spark's default multiplier is 1.5; 3 keeps ordinary variance (the classic
 * job-count scenario's maps take 2-5 s) from ever starting one.
 */
const BACKUP_MEDIAN_FACTOR = 3;

/** The task table of one MapReduce job; every mutation takes the current time as an argument. */
export class Scheduler {
  readonly #maps: Task[];
  readonly #reduces: Task[];
  readonly #timeoutMs: number;
  readonly #maxFailures: number;
  readonly #maxTimeouts: number;
  readonly #workerTimeoutMs: number;
  readonly #backupTasks: boolean;
  readonly #backupMinRunningMs: number;
  readonly #maxFetchFailures: number;
  readonly #workers = new Map<string, WorkerView>();
  readonly #failedAttempts = new Set<string>();
  /** Set once every map has completed: reduces may run (and complete) from then on. */
  #reducing = false;
  #over: "done" | "failed" | undefined;
  #error: string | undefined;
  #mapsDone = 0;
  #reducesDone = 0;
  #mapReruns = 0;
  #backupAttempts = 0;
  #backupWins = 0;
  #timeouts = 0;

  constructor(options: SchedulerOptions) {
    if (options.files.length === 0) throw new RangeError("A job needs at least one input file");
    if (!Number.isSafeInteger(options.nReduce) || options.nReduce < 1) {
      throw new RangeError(`nReduce must be a positive integer: got ${options.nReduce}`);
    }
    if (!(options.taskTimeoutMs > 0)) {
      throw new RangeError(`taskTimeoutMs must be positive: got ${options.taskTimeoutMs}`);
    }
    this.#timeoutMs = options.taskTimeoutMs;
    this.#maxFailures = options.maxFailures ?? DEFAULT_MAX_FAILURES;
    this.#maxTimeouts = options.maxTimeouts ?? DEFAULT_MAX_TIMEOUTS;
    this.#workerTimeoutMs = options.workerTimeoutMs ?? Infinity;
    this.#backupTasks = options.backupTasks ?? true;
    this.#backupMinRunningMs = options.backupMinRunningMs ?? 1000;
    this.#maxFetchFailures = options.maxFetchFailures ?? 3;
    this.#maps = options.files.map((input, index) => newTask("map", index, input));
    this.#reduces = Array.from({ length: options.nReduce }, (_, i) => newTask("reduce", i));
  }

  /** The current phase ("reduce" also while lost map outputs are being recomputed). */
  get phase(): Phase {
    return this.#over ?? (this.#reducing ? "reduce" : "map");
  }

  /** Why the job failed, once phase is "failed". */
  get error(): string | undefined {
    return this.#error;
  }

  /** Number of map tasks (input splits). */
  get nMap(): number {
    return this.#maps.length;
  }

  /** Number of reduce tasks. */
  get nReduce(): number {
    return this.#reduces.length;
  }

  /** True once every reduce task is done: every output file is final. */
  done(): boolean {
    return this.#over === "done";
  }

  /** Whether task `index` of `kind` is done (false for an unknown task). */
  isDone(kind: TaskKind, index: number): boolean {
    return (kind === "map" ? this.#maps : this.#reduces)[index]?.state === "done";
  }

  /**
   * Records that a worker was heard from (any RPC, heartbeats included), with the data address
   * it advertises when given. A worker declared dead comes back to life: it is a new worker
   * whose earlier output was already written off.
   */
  touch(workerId: string, now: number, address?: string): void {
    const worker = this.#workers.get(workerId);
    if (worker) {
      worker.lastContact = Math.max(worker.lastContact, now);
      worker.alive = true;
      if (address !== undefined) worker.address = address;
    } else {
      this.#workers.set(workerId, {
        id: workerId,
        firstSeen: now,
        lastContact: now,
        tasksDone: 0,
        alive: true,
        ...(address !== undefined ? { address } : {}),
      });
    }
  }

  /**
   * Hands `workerId` something to do: an idle map first (including a map whose output was lost),
   * then, once every map is done, an idle reduce; else a backup attempt of a straggler (when
   * enabled and due); else "wait". Does not expire anything: call expire(now) first.
   */
  assign(workerId: string, now: number): Assignment {
    this.touch(workerId, now);
    if (this.#over === "done") return { type: "done" };
    if (this.#over === "failed") return { type: "failed", error: this.#error ?? "Job failed" };
    // A worker runs one task at a time: asking while it holds one means our reply never
    // reached it (a dropped connection, a timed-out call). It gets the same attempt again
    // rather than stranding that task until its timeout.
    for (const task of [...this.#maps, ...this.#reduces]) {
      const held = task.running.find((a) => a.worker === workerId);
      if (held) {
        held.startedAt = now;
        if (task.running.at(-1) === held) task.startedAt = now;
        return this.#assignment(task, held.attempt);
      }
    }
    const map = this.#maps.find((t) => t.state === "idle");
    if (map) return this.#start(map, workerId, now, false);
    if (this.#mapsDone === this.#maps.length) {
      const reduce = this.#reduces.find((t) => t.state === "idle");
      if (reduce) return this.#start(reduce, workerId, now, false);
    }
    const straggler = this.#backupCandidate(workerId, now);
    if (straggler) {
      this.#backupAttempts++;
      straggler.backups++;
      return this.#start(straggler, workerId, now, true);
    }
    return { type: "wait" };
  }

  #start(task: Task, workerId: string, now: number, backup: boolean): Assignment {
    task.state = "running";
    task.attempts++;
    task.worker = workerId;
    task.startedAt = now;
    task.running.push({ attempt: task.attempts, worker: workerId, startedAt: now, backup });
    return this.#assignment(task, task.attempts);
  }

  /**
   * MapReduce §3.6 backup tasks, with Spark's rule for "close to completion": once
   * BACKUP_DONE_FRACTION of the phase is done, a task whose only attempt has run more than
   * BACKUP_MEDIAN_FACTOR times the median duration of the completed tasks (and at least
   * backupMinRunningMs) gets one more attempt, on a worker other than the one running it.
   */
  #backupCandidate(workerId: string, now: number): Task | undefined {
    if (!this.#backupTasks) return undefined;
    const tasks = this.#mapsDone < this.#maps.length ? this.#maps : this.#reduces;
    const durations = tasks
      .filter((t) => t.state === "done" && t.finishedAt !== undefined && t.doneStartedAt >= 0)
      .map((t) => t.finishedAt! - t.doneStartedAt)
      .sort((a, b) => a - b);
    if (durations.length < BACKUP_DONE_FRACTION * tasks.length) return undefined;
    const median = durations[Math.floor(durations.length / 2)] ?? 0;
    const threshold = Math.max(BACKUP_MEDIAN_FACTOR * median, this.#backupMinRunningMs);
    let best: Task | undefined;
    for (const task of tasks) {
      if (task.state !== "running" || task.running.length !== 1 || task.backups > 0) continue;
      const only = task.running[0];
      if (only.worker === workerId || now - only.startedAt <= threshold) continue;
      if (!best || only.startedAt < best.running[0].startedAt) best = task;
    }
    return best;
  }

  #assignment(task: Task, attempt: number): Assignment {
    if (task.kind === "map") {
      return {
        type: "map",
        task: task.index,
        attempt,
        file: task.input!,
        nReduce: this.#reduces.length,
      };
    }
    return { type: "reduce", task: task.index, attempt, nMap: this.#maps.length };
  }

  /**
   * Records a successful attempt. The first completion of a task wins, whichever attempt it
   * comes from (a re-issued or backup task may finish twice; the loser's output is discarded).
   * A map's report says where its output lives (the coordinator requires it). Returns whether
   * this report completed the task.
   */
  complete(report: AttemptReport, now: number): boolean {
    this.touch(report.workerId, now);
    const task = this.#task(report);
    if (task.state === "done" || this.#over !== undefined) return false;
    if (task.kind === "reduce" && !this.#reducing) return false;
    const attempt = task.running.find((a) => a.attempt === report.attempt);
    task.doneStartedAt = attempt?.startedAt ?? task.startedAt ?? now;
    task.state = "done";
    task.worker = report.workerId;
    task.finishedAt = now;
    task.doneAttempt = report.attempt;
    task.doneByBackup = attempt?.backup ?? false;
    if (task.doneByBackup) this.#backupWins++;
    task.running = [];
    task.fetchFailures = 0;
    task.recentTimeouts = 0;
    if (report.output) task.output = report.output;
    this.#workers.get(report.workerId)!.tasksDone++;
    if (task.kind === "map") {
      this.#mapsDone++;
      // MapReduce §3.1: reduce workers read every map's output, so reduces wait for all maps.
      if (this.#mapsDone === this.#maps.length) this.#reducing = true;
    } else {
      this.#reducesDone++;
      if (this.#reducesDone === this.#reduces.length) this.#over = "done";
    }
    return true;
  }

  /**
   * Marks a task done from a record that outlives this scheduler (a commit replicated through
   * Raft, mr/job_service.ts): a leader rebuilding its task table, or a report of an attempt
   * handed out by an earlier leader, which this one never counted. The holder is heard from at
   * `now`, so a fresh timer decides whether it is dead. Returns whether the task became done.
   */
  restoreDone(
    kind: TaskKind,
    index: number,
    attempt: number,
    workerId: string,
    now: number,
    output?: MapOutput,
  ): boolean {
    const task = (kind === "map" ? this.#maps : this.#reduces)[index];
    if (!task) throw new RangeError(`No ${kind} task ${index}`);
    task.attempts = Math.max(task.attempts, attempt);
    return this.complete({ kind, task: index, attempt, workerId, output }, now);
  }

  /**
   * Records an attempt whose app code failed. The task is handed out again, unless it has now
   * failed maxFailures times: then the job fails with an error naming the task and the exception.
   */
  fail(report: AttemptReport & { error: string }, now: number): void {
    this.touch(report.workerId, now);
    const task = this.#task(report);
    if (task.state === "done" || this.#over !== undefined) return;
    // A worker may resend a report after an RPC timeout: each attempt fails at most once.
    const attemptKey = `${report.kind}:${report.task}:${report.attempt}`;
    if (this.#failedAttempts.has(attemptKey)) return;
    this.#failedAttempts.add(attemptKey);
    task.failures++;
    task.lastError = report.error;
    if (task.failures >= this.#maxFailures) {
      this.#failJob(
        `${describeTask(task)} failed ${task.failures} times, last on worker ` +
          `${report.workerId}: ${report.error}`,
      );
      return;
    }
    this.#dropAttempt(task, report.attempt);
  }

  /**
   * Gives back an attempt that could not run for reasons that are not the app's (its reduce
   * inputs are not all available): the task becomes idle again without counting a failure.
   */
  release(report: AttemptReport, now: number): void {
    this.touch(report.workerId, now);
    const task = this.#task(report);
    if (task.state === "done" || this.#over !== undefined) return;
    this.#dropAttempt(task, report.attempt);
  }

  /**
   * A reducer could not fetch map `map`'s output (attempt `attempt`) from its holder. The map
   * runs again when the holder refused the connection (its process is gone: a live worker
   * serves until the job ends) or after maxFetchFailures such reports (Hadoop's rule of a few
   * fetch-failure notifications: it cannot tell a dead holder from a slow network at once).
   * Returns whether the map was made idle to run again.
   */
  fetchFailed(map: number, attempt: number, refused: boolean, now: number): boolean {
    const task = this.#maps[map];
    if (!task) throw new RangeError(`No map task ${map}: the job has ${this.#maps.length}`);
    if (this.#over !== undefined || task.state !== "done" || task.doneAttempt !== attempt) {
      return false;
    }
    task.fetchFailures++;
    if (!refused && task.fetchFailures < this.#maxFetchFailures) return false;
    this.#rerun(task, now);
    return true;
  }

  /**
   * Declares `workerId` dead (its connection closed, or it missed heartbeats): its running
   * attempts are given up and its completed maps run again while some reduce still needs them
   * (MapReduce §3.3: map output lives on the mapper's own disk). Returns the re-run maps.
   */
  workerLost(workerId: string, now: number): TaskView[] {
    const worker = this.#workers.get(workerId);
    // Once the job is over, workers leaving is the normal end, not a death.
    if (!worker || !worker.alive || this.#over !== undefined) return [];
    worker.alive = false;
    for (const task of [...this.#maps, ...this.#reduces]) {
      for (const attempt of task.running.filter((a) => a.worker === workerId)) {
        this.#dropAttempt(task, attempt.attempt);
      }
    }
    const rerun: TaskView[] = [];
    for (const task of this.#maps) {
      if (task.state === "done" && task.worker === workerId) {
        this.#rerun(task, now);
        rerun.push(view(task));
      }
    }
    return rerun;
  }

  #rerun(task: Task, _now: number): void {
    task.state = "idle";
    task.output = undefined;
    task.doneAttempt = undefined;
    task.fetchFailures = 0;
    task.reruns++;
    this.#mapReruns++;
    this.#mapsDone--;
  }

  #dropAttempt(task: Task, attempt: number): void {
    task.running = task.running.filter((a) => a.attempt !== attempt);
    if (task.state === "running" && task.running.length === 0) task.state = "idle";
  }

  /** Fails the job with `error` (an unrecoverable condition outside the task table). */
  abort(error: string): void {
    if (this.#over === undefined) this.#failJob(error);
  }

  #failJob(error: string): void {
    this.#over = "failed";
    this.#error = error;
  }

  /**
   * Records that an attempt running on `workerId` made progress at `now`: its task timeout
   * counts from here. Reports about attempts no longer running (given up, done) are ignored.
   */
  madeProgress(
    workerId: string,
    kind: TaskKind,
    index: number,
    attempt: number,
    now: number,
  ): void {
    const task = (kind === "map" ? this.#maps : this.#reduces)[index];
    const running = task?.running.find((a) => a.attempt === attempt && a.worker === workerId);
    if (running) running.progressAt = Math.max(running.progressAt ?? 0, now);
  }

  /**
   * Gives up every attempt that has gone taskTimeoutMs without progress (since it was handed
   * out, or since its worker last reported progress), so the next assign() gives its task to
   * another worker (MapReduce §3.3). Progress is what Hadoop times too (mapreduce.task.timeout):
   * an attempt that keeps emitting on a slow or loaded host is not presumed dead, so its work
   * is not done twice; one that stalls, sleeps or hangs is re-issued as before. A task that
   * timed out maxTimeouts times fails the job: its app never returns. Returns the tasks whose
   * attempts it gave up.
   */
  expire(now: number): TaskView[] {
    if (this.#over !== undefined) return [];
    const expired: TaskView[] = [];
    for (const task of [...this.#maps, ...this.#reduces]) {
      for (const attempt of task.running) {
        const since = Math.max(attempt.startedAt, attempt.progressAt ?? 0);
        if (now - since < this.#timeoutMs) continue;
        this.#dropAttempt(task, attempt.attempt);
        task.timeouts++;
        task.recentTimeouts++;
        this.#timeouts++;
        expired.push({ ...view(task), worker: attempt.worker });
        // Counted since the task last completed: a map that runs again after its holder died
        // starts afresh.
        if (task.recentTimeouts >= this.#maxTimeouts) {
          this.#failJob(
            `${describeTask(task)} timed out ${task.recentTimeouts} times (the limit is ` +
              `${this.#maxTimeouts}): no attempt finished within the task timeout of ` +
              `${this.#timeoutMs} ms, last on worker ${attempt.worker}`,
          );
          return expired;
        }
      }
    }
    return expired;
  }

  /**
   * Declares dead every live worker not heard from for workerTimeoutMs (see workerLost).
   * Returns the ids of the workers it declared dead and the maps that will run again.
   */
  expireWorkers(now: number): { workers: string[]; rerun: TaskView[] } {
    const workers: string[] = [];
    const rerun: TaskView[] = [];
    for (const worker of this.#workers.values()) {
      if (worker.alive && now - worker.lastContact >= this.#workerTimeoutMs) {
        workers.push(worker.id);
        rerun.push(...this.workerLost(worker.id, now));
      }
    }
    return { workers, rerun };
  }

  /** Where each map's output lives: its output and completing attempt, or undefined if not done. */
  mapOutputs(): ({ attempt: number; worker: string; output: MapOutput } | undefined)[] {
    return this.#maps.map((t) =>
      t.state === "done" && t.output
        ? { attempt: t.doneAttempt!, worker: t.worker!, output: t.output }
        : undefined
    );
  }

  /** Every task, maps first, as copies. */
  tasks(): TaskView[] {
    return [...this.#maps, ...this.#reduces].map(view);
  }

  /** Every worker heard from, as copies. */
  workers(): WorkerView[] {
    return [...this.#workers.values()].map((worker) => ({ ...worker }));
  }

  /** Number of done tasks of each kind. */
  progress(): { mapsDone: number; reducesDone: number } {
    return { mapsDone: this.#mapsDone, reducesDone: this.#reducesDone };
  }

  /** Job-wide counters: maps re-run after their output was lost, backup attempts, timeouts. */
  counters(): { mapReruns: number; backupAttempts: number; backupWins: number; timeouts: number } {
    return {
      mapReruns: this.#mapReruns,
      backupAttempts: this.#backupAttempts,
      backupWins: this.#backupWins,
      timeouts: this.#timeouts,
    };
  }

  #task(report: AttemptReport): Task {
    const tasks = report.kind === "map" ? this.#maps : this.#reduces;
    const task = tasks[report.task];
    if (!task || !Number.isSafeInteger(report.task)) {
      throw new RangeError(`No ${report.kind} task ${report.task}: the job has ${tasks.length}`);
    }
    if (
      !Number.isSafeInteger(report.attempt) || report.attempt < 1 || report.attempt > task.attempts
    ) {
      throw new RangeError(
        `${
          describeTask(task)
        } has no attempt ${report.attempt}: it was handed out ${task.attempts} times`,
      );
    }
    return task;
  }
}

/** Names a task for messages: "map task 3 (pg-grimm.txt)" or "reduce task 7". */
export function describeTask(task: { kind: TaskKind; index: number; input?: string }): string {
  return task.kind === "map"
    ? `map task ${task.index} (${task.input})`
    : `reduce task ${task.index}`;
}

function view(task: Task): TaskView {
  const { running: _r, fetchFailures: _f, doneStartedAt: _d, recentTimeouts: _t, ...rest } = task;
  return { ...rest };
}

function newTask(kind: TaskKind, index: number, input?: string): Task {
  return {
    kind,
    index,
    input,
    state: "idle",
    attempts: 0,
    failures: 0,
    timeouts: 0,
    backups: 0,
    reruns: 0,
    running: [],
    fetchFailures: 0,
    recentTimeouts: 0,
    doneStartedAt: -1,
  };
}
