/**
 * Pure MapReduce task state: which task goes to which worker, re-issue after a timeout, retries
 * after app failures, and the map -> reduce -> done phases. No clock, no I/O: every method that
 * depends on time takes `now` (milliseconds), so the coordinator, the tests and a future
 * Raft-replicated coordinator drive it identically.
 */

/** Where the job is: maps run first; reduces start only once every map is done. */
export type Phase = "map" | "reduce" | "done" | "failed";

/** The two kinds of task. */
export type TaskKind = "map" | "reduce";

/** A task is idle (waiting for a worker), running (handed out) or done (output is final). */
export type TaskState = "idle" | "running" | "done";

/** A read-only view of one task, for status pages and tests. */
export interface TaskView {
  kind: TaskKind;
  index: number;
  /** The input file of a map task. */
  input?: string;
  state: TaskState;
  /** How many times the task was handed out. */
  attempts: number;
  /** How many attempts reported an app failure. */
  failures: number;
  /** The worker running the latest attempt, or the one that completed it. */
  worker?: string;
  /** When the latest attempt was handed out. */
  startedAt?: number;
  finishedAt?: number;
  lastError?: string;
}

/** A read-only view of one worker the scheduler has heard from. */
export interface WorkerView {
  id: string;
  firstSeen: number;
  lastContact: number;
  tasksDone: number;
}

/** What a worker asking for work is told to do. */
export type Assignment =
  | { type: "map"; task: number; attempt: number; file: string; nReduce: number }
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
}

/** How the job is shaped. */
export interface SchedulerOptions {
  /** One map task per input file, in this order. */
  files: string[];
  nReduce: number;
  /** A task handed out this long ago without a report is handed out again. */
  taskTimeoutMs: number;
  /** App failures of one task that fail the whole job (default 3). */
  maxFailures?: number;
}

/** A task's internal record: the same fields as the view handed out (which gets copies). */
type Task = TaskView;

/** The default number of app failures of one task after which the job fails. */
export const DEFAULT_MAX_FAILURES = 3;

/** The task table of one MapReduce job; every mutation takes the current time as an argument. */
export class Scheduler {
  readonly #maps: Task[];
  readonly #reduces: Task[];
  readonly #timeoutMs: number;
  readonly #maxFailures: number;
  readonly #workers = new Map<string, WorkerView>();
  readonly #failedAttempts = new Set<string>();
  #phase: Phase = "map";
  #error: string | undefined;
  #mapsDone = 0;
  #reducesDone = 0;

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
    this.#maps = options.files.map((input, index) => newTask("map", index, input));
    this.#reduces = Array.from({ length: options.nReduce }, (_, i) => newTask("reduce", i));
  }

  /** The current phase. */
  get phase(): Phase {
    return this.#phase;
  }

  /** Why the job failed, once phase is "failed". */
  get error(): string | undefined {
    return this.#error;
  }

  /** Number of map tasks (input files). */
  get nMap(): number {
    return this.#maps.length;
  }

  /** Number of reduce tasks. */
  get nReduce(): number {
    return this.#reduces.length;
  }

  /** True once every reduce task is done: every output file is final. */
  done(): boolean {
    return this.#phase === "done";
  }

  /** Records that a worker was heard from (any RPC), for the status page. */
  touch(workerId: string, now: number): void {
    const worker = this.#workers.get(workerId);
    if (worker) worker.lastContact = Math.max(worker.lastContact, now);
    else {this.#workers.set(workerId, {
        id: workerId,
        firstSeen: now,
        lastContact: now,
        tasksDone: 0,
      });}
  }

  /**
   * Hands the lowest-numbered idle task of the current phase to `workerId`, or tells it to wait
   * (every task of the phase is running), or that the job is over. Does not expire anything:
   * call expire(now) first.
   */
  assign(workerId: string, now: number): Assignment {
    this.touch(workerId, now);
    if (this.#phase === "done") return { type: "done" };
    if (this.#phase === "failed") return { type: "failed", error: this.#error ?? "Job failed" };
    const tasks = this.#phase === "map" ? this.#maps : this.#reduces;
    // A worker runs one task at a time: asking while it holds one means our reply never
    // reached it (a dropped connection, a timed-out call). It gets the same attempt again
    // rather than stranding that task until its timeout.
    const held = tasks.find((t) => t.state === "running" && t.worker === workerId);
    if (held) {
      held.startedAt = now;
      return this.#assignment(held);
    }
    const task = tasks.find((t) => t.state === "idle");
    if (!task) return { type: "wait" };
    task.state = "running";
    task.attempts++;
    task.worker = workerId;
    task.startedAt = now;
    return this.#assignment(task);
  }

  #assignment(task: Task): Assignment {
    if (task.kind === "map") {
      return {
        type: "map",
        task: task.index,
        attempt: task.attempts,
        file: task.input!,
        nReduce: this.#reduces.length,
      };
    }
    return { type: "reduce", task: task.index, attempt: task.attempts, nMap: this.#maps.length };
  }

  /**
   * Records a successful attempt. The first completion of a task wins, whichever attempt it
   * comes from (a re-issued task may finish twice; both wrote the same files atomically).
   * Returns whether this report completed the task.
   */
  complete(report: AttemptReport, now: number): boolean {
    this.touch(report.workerId, now);
    const task = this.#task(report);
    if (task.state === "done" || this.#phase === "done" || this.#phase === "failed") return false;
    if (task.kind === "reduce" && this.#phase === "map") return false;
    task.state = "done";
    task.worker = report.workerId;
    task.finishedAt = now;
    this.#workers.get(report.workerId)!.tasksDone++;
    if (task.kind === "map") {
      this.#mapsDone++;
      // MapReduce §3.1: reduce workers read every map's output, so reduces wait for all maps.
      if (this.#mapsDone === this.#maps.length) this.#phase = "reduce";
    } else {
      this.#reducesDone++;
      if (this.#reducesDone === this.#reduces.length) this.#phase = "done";
    }
    return true;
  }

  /**
   * Records an attempt whose app code failed. The task is handed out again, unless it has now
   * failed maxFailures times: then the job fails with an error naming the task and the exception.
   */
  fail(report: AttemptReport & { error: string }, now: number): void {
    this.touch(report.workerId, now);
    const task = this.#task(report);
    if (task.state === "done" || this.#phase === "done" || this.#phase === "failed") return;
    // A worker may resend a report after an RPC timeout: each attempt fails at most once.
    const attemptKey = `${report.kind}:${report.task}:${report.attempt}`;
    if (this.#failedAttempts.has(attemptKey)) return;
    this.#failedAttempts.add(attemptKey);
    task.failures++;
    task.lastError = report.error;
    if (task.failures >= this.#maxFailures) {
      this.#phase = "failed";
      this.#error = `${describeTask(task)} failed ${task.failures} times, last on worker ` +
        `${report.workerId}: ${report.error}`;
      return;
    }
    // A stale attempt's failure counts, but must not cancel a newer attempt still running.
    if (task.state === "running" && task.attempts === report.attempt) task.state = "idle";
  }

  /**
   * Makes every running task handed out at least taskTimeoutMs before `now` idle again, so the
   * next assign() gives it to another worker (MapReduce §3.3: the worker is presumed dead).
   * Returns the tasks it re-queued.
   */
  expire(now: number): TaskView[] {
    if (this.#phase !== "map" && this.#phase !== "reduce") return [];
    const expired: TaskView[] = [];
    for (const task of this.#phase === "map" ? this.#maps : this.#reduces) {
      if (task.state === "running" && now - task.startedAt! >= this.#timeoutMs) {
        task.state = "idle";
        expired.push({ ...task });
      }
    }
    return expired;
  }

  /** Every task, maps first, as copies. */
  tasks(): TaskView[] {
    return [...this.#maps, ...this.#reduces].map((task) => ({ ...task }));
  }

  /** Every worker heard from, as copies. */
  workers(): WorkerView[] {
    return [...this.#workers.values()].map((worker) => ({ ...worker }));
  }

  /** Number of done tasks of each kind. */
  progress(): { mapsDone: number; reducesDone: number } {
    return { mapsDone: this.#mapsDone, reducesDone: this.#reducesDone };
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

function newTask(kind: TaskKind, index: number, input?: string): Task {
  return { kind, index, input, state: "idle", attempts: 0, failures: 0 };
}
