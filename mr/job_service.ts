/**
 * The leader's job scheduler: soft state over the replicated job table (mr/job_state_machine.ts).
 * One mr/scheduler.ts Scheduler per running job decides every assignment, re-issue, backup and
 * death, as in the standalone coordinator; what must survive a leader change is proposed as a
 * job command and acted on only once it applied. The soft state is tied to a term: a new leader
 * (or this node leading again) starts from the table alone, with every uncommitted task idle,
 * fresh timers for every worker, and committed maps kept unless their holder then misses its
 * heartbeats (MapReduce §3.3: only then is that output lost).
 *
 * Jobs run in submission order: a worker gets a task of the oldest running job that has one,
 * else of the next, so a job waiting on its stragglers lends its idle workers to the next one.
 */
import type { JobCommand } from "./job_commands.ts";
import type { JobApplyResult, JobRecord, JobStateMachine } from "./job_state_machine.ts";
import type { JobAssignment, JobReport, JobsHeartbeatReply } from "./job_rpc.ts";
import { describeTask, Scheduler, type TaskView } from "./scheduler.ts";

/** What the service needs from the peer it runs on. */
export interface JobServiceHost {
  table: JobStateMachine;
  /**
   * The current term when this node leads and its table holds every entry committed before the
   * term began (mr/job_leadership.ts), else undefined: the soft state is rebuilt from the table.
   */
  leaderTerm(): number | undefined;
  /** Proposes a job command here (this node leads) and resolves with its apply result. */
  propose(command: JobCommand): Promise<JobApplyResult>;
  log(line: string): void;
}

/** Tuning of the service. */
export interface JobServiceOptions {
  /** A worker not heard from this long is dead (default 10 s, the coordinator's). */
  workerTimeoutMs?: number;
}

/** Default worker timeout: the standalone coordinator's --worker-timeout default. */
export const DEFAULT_JOB_WORKER_TIMEOUT_MS = 10_000;

/** Running task counts of a job as the leader sees them. */
export interface JobSoftView {
  mapRunning: number;
  reduceRunning: number;
  /** Backup attempts handed out during this leader's term. */
  backups: number;
  /** Whether any task of the job was handed out during this term. */
  started: boolean;
}

/** The leader-side scheduling of every running job. */
export class JobService {
  readonly #host: JobServiceHost;
  readonly #workerTimeoutMs: number;
  #term: number | undefined;
  readonly #schedulers = new Map<string, Scheduler>();
  /** Workers heard from this term: their data address. */
  readonly #workers = new Map<string, string>();
  /** Workers whose death was proposed this term (proposed once). */
  readonly #buried = new Set<string>();
  /** Jobs whose failure was proposed this term. */
  readonly #failing = new Set<string>();
  #timer?: ReturnType<typeof setInterval>;

  constructor(host: JobServiceHost, options: JobServiceOptions = {}) {
    this.#host = host;
    this.#workerTimeoutMs = options.workerTimeoutMs ?? DEFAULT_JOB_WORKER_TIMEOUT_MS;
  }

  /** Starts the expiry timer (it does nothing while this node does not lead). */
  start(): void {
    this.#timer = setInterval(() => this.#tick(), 200);
  }

  /** Stops the timer. */
  close(): void {
    clearInterval(this.#timer);
  }

  /** How often workers should beat: several beats per worker timeout. */
  get heartbeatMs(): number {
    return Math.max(20, Math.min(1000, Math.floor(this.#workerTimeoutMs / 5)));
  }

  /**
   * Brings the soft state in line with the table and the term: returns false when this node
   * does not lead (the caller answers "not leader").
   */
  #sync(now: number): boolean {
    const term = this.#host.leaderTerm();
    if (term === undefined) {
      if (this.#term !== undefined) this.#reset(undefined);
      return false;
    }
    const fresh = term !== this.#term;
    if (fresh) this.#reset(term);
    for (const job of this.#host.table.jobs()) {
      if (job.state === "running" && !this.#schedulers.has(job.id)) {
        this.#schedulers.set(job.id, this.#rebuild(job, now));
        // What a new leader starts from, for anyone reading the logs after a leader change.
        if (fresh) {
          const count = (tasks: unknown[]) => tasks.filter((t) => t !== null).length;
          this.#host.log(
            `jobs: term ${term}: job ${job.id} carries on from the table: ` +
              `${count(job.maps)} of ${job.nMap} maps and ${count(job.reduces)} of ` +
              `${job.spec.nReduce} reduces committed`,
          );
        }
      }
    }
    for (const id of this.#schedulers.keys()) {
      if (this.#host.table.job(id)?.state !== "running") this.#schedulers.delete(id);
    }
    return true;
  }

  #reset(term: number | undefined): void {
    this.#term = term;
    this.#schedulers.clear();
    this.#workers.clear();
    this.#buried.clear();
    this.#failing.clear();
  }

  /** A job's task table from its replicated record: committed tasks done, the rest idle. */
  #rebuild(job: JobRecord, now: number): Scheduler {
    const scheduler = new Scheduler({
      files: job.spec.splits.map((split) => split.file),
      nReduce: job.spec.nReduce,
      taskTimeoutMs: job.spec.taskTimeoutMs,
      workerTimeoutMs: this.#workerTimeoutMs,
    });
    job.maps.forEach((commit, index) => {
      if (!commit) return;
      scheduler.restoreDone("map", index, commit.attempt, commit.worker, now, {
        address: commit.address!,
        sizes: commit.sizes!,
        crcs: commit.crcs!,
      });
    });
    job.reduces.forEach((commit, index) => {
      if (commit) scheduler.restoreDone("reduce", index, commit.attempt, commit.worker, now);
    });
    for (const [worker, address] of this.#workers) scheduler.touch(worker, now, address);
    return scheduler;
  }

  /** A worker's heartbeat; undefined when this node does not lead. */
  heartbeat(workerId: string, address: string): JobsHeartbeatReply | undefined {
    const now = Date.now();
    if (!this.#sync(now)) return undefined;
    this.#workers.set(workerId, address);
    this.#buried.delete(workerId);
    for (const scheduler of this.#schedulers.values()) scheduler.touch(workerId, now, address);
    const jobs = this.#host.table.jobs().filter((job) => job.state === "running").map((job) => ({
      id: job.id,
      token: job.spec.token,
    }));
    return { leader: true, heartbeatMs: this.heartbeatMs, jobs };
  }

  /** A worker asking for work; undefined when this node does not lead. */
  ask(workerId: string): JobAssignment | undefined {
    const now = Date.now();
    if (!this.#sync(now)) return undefined;
    this.#tick();
    for (const [id, scheduler] of this.#schedulers) {
      const job = this.#host.table.job(id)!;
      const assignment = scheduler.assign(workerId, now);
      if (assignment.type === "map") {
        return {
          type: "map",
          job: id,
          token: job.spec.token,
          task: assignment.task,
          attempt: assignment.attempt,
          split: job.spec.splits[assignment.task],
          nReduce: assignment.nReduce,
        };
      }
      if (assignment.type === "reduce") {
        return {
          type: "reduce",
          job: id,
          token: job.spec.token,
          task: assignment.task,
          attempt: assignment.attempt,
          maps: job.maps.map((commit, map) =>
            commit === null ? null : {
              map,
              attempt: commit.attempt,
              address: commit.address!,
              size: commit.sizes![assignment.task],
              crc: commit.crcs![assignment.task],
            }
          ),
          output: job.spec.output,
        };
      }
    }
    return { type: "wait" };
  }

  /**
   * A worker's report. A success is committed through the log first; the scheduler learns it
   * only once it applied, so no leader ever acts on a completion a successor would not know.
   * Returns undefined when this node does not lead.
   */
  async report(report: JobReport): Promise<{ accepted: boolean } | undefined> {
    const now = Date.now();
    if (!this.#sync(now)) return undefined;
    const scheduler = this.#schedulers.get(report.job);
    if (!scheduler) return { accepted: false };
    const known = scheduler.tasks().find((t) => t.kind === report.kind && t.index === report.task);
    if (!known) throw new RangeError(`No ${report.kind} task ${report.task} in job ${report.job}`);
    // An attempt this leader never handed out (an earlier leader did) is still valid work.
    const ours = report.attempt >= 1 && report.attempt <= known.attempts;
    if (report.ok) {
      const result = await this.#host.propose({
        kind: "commit",
        time: now,
        job: report.job,
        task: report.kind,
        index: report.task,
        attempt: report.attempt,
        worker: report.workerId,
        ...(report.output ? report.output : {}),
        // This scheduler ran a committed map again (its output could not be fetched, or its
        // holder died): the new output replaces the old. A map the scheduler merely never knew
        // was committed has no re-run and replaces nothing.
        ...(report.kind === "map" && known.state !== "done" && known.reruns > 0 &&
            this.#host.table.job(report.job)?.maps[report.task]
          ? { replace: true }
          : {}),
      });
      if (!result.ok) throw new TypeError(result.error);
      const current = this.#schedulers.get(report.job);
      if (result.accepted) {
        current?.restoreDone(
          report.kind,
          report.task,
          report.attempt,
          report.workerId,
          Date.now(),
          report.output,
        );
      } else if (current) this.#refused(report.job, current, report, known, ours);
      return { accepted: result.accepted };
    }
    if (report.release) {
      if (report.fetchFailed) {
        const { map, attempt, refused } = report.fetchFailed;
        if (scheduler.fetchFailed(map, attempt, refused, now)) {
          this.#host.log(
            `jobs: job ${report.job}: reduce task ${report.task} could not fetch map task ${map}: ` +
              `${report.error}: running that map again`,
          );
        }
      }
      if (ours) scheduler.release(report, now);
      return { accepted: false };
    }
    this.#host.log(
      `jobs: job ${report.job}: ${describeTask(known)} attempt ${report.attempt} failed on ` +
        `worker ${report.workerId}: ${report.error}`,
    );
    if (ours) scheduler.fail({ ...report, error: report.error ?? "Unknown error" }, now);
    await this.#host.propose({
      kind: "task_failed",
      time: now,
      job: report.job,
      task: report.kind,
      index: report.task,
      attempt: report.attempt,
      worker: report.workerId,
      error: report.error ?? "Unknown error",
    });
    return { accepted: false };
  }

  /**
   * A completion the table refused. When the table holds a commit of the task that this
   * scheduler has not written off (a map it runs again has), the scheduler takes it as done:
   * else it would keep the task running on this worker, hand the same attempt back on its next
   * ask and never start the reduces. Otherwise this attempt is given back, so the task is handed
   * out afresh rather than repeated on this worker.
   */
  #refused(
    id: string,
    scheduler: Scheduler,
    report: JobReport,
    known: TaskView,
    ours: boolean,
  ): void {
    const job = this.#host.table.job(id);
    const commit = job && (report.kind === "map" ? job.maps : job.reduces)[report.task];
    const now = Date.now();
    if (commit && known.reruns === 0) {
      scheduler.restoreDone(
        report.kind,
        report.task,
        commit.attempt,
        commit.worker,
        now,
        report.kind === "map"
          ? { address: commit.address!, sizes: commit.sizes!, crcs: commit.crcs! }
          : undefined,
      );
    } else if (ours) scheduler.release(report, now);
  }

  /** Task timeouts and worker deaths; proposes the deaths and failures that follow. */
  #tick(): void {
    const now = Date.now();
    if (!this.#sync(now)) return;
    const dead = new Set<string>();
    for (const [id, scheduler] of this.#schedulers) {
      for (const task of scheduler.expire(now)) {
        this.#host.log(
          `jobs: job ${id}: ${describeTask(task)} timed out on worker ${task.worker}: ` +
            "handing it out again",
        );
      }
      for (const worker of scheduler.expireWorkers(now).workers) dead.add(worker);
      if (scheduler.phase === "failed" && !this.#failing.has(id)) {
        this.#failing.add(id);
        this.#proposeQuietly({
          kind: "finish",
          time: now,
          job: id,
          state: "failed",
          error: scheduler.error ?? "Job failed",
        });
      }
    }
    for (const worker of dead) {
      if (this.#buried.has(worker)) continue;
      this.#buried.add(worker);
      this.#workers.delete(worker);
      for (const scheduler of this.#schedulers.values()) scheduler.workerLost(worker, now);
      this.#host.log(
        `jobs: worker ${worker} is gone (no heartbeat for ${this.#workerTimeoutMs} ms): ` +
          "its committed maps will run again",
      );
      this.#proposeQuietly({ kind: "worker_dead", time: now, worker });
    }
  }

  #proposeQuietly(command: JobCommand): void {
    this.#host.propose(command).catch((error) =>
      this.#host.log(`jobs: could not propose ${command.kind}: ${(error as Error).message}`)
    );
  }

  /** What only the leader knows of a job (running attempts); undefined elsewhere. */
  softView(id: string): JobSoftView | undefined {
    if (!this.#sync(Date.now())) return undefined;
    const scheduler = this.#schedulers.get(id);
    if (!scheduler) return undefined;
    let mapRunning = 0;
    let reduceRunning = 0;
    let started = false;
    for (const task of scheduler.tasks()) {
      if (task.attempts > 0) started = true;
      if (task.state !== "running") continue;
      if (task.kind === "map") mapRunning++;
      else reduceRunning++;
    }
    return { mapRunning, reduceRunning, backups: scheduler.counters().backupAttempts, started };
  }
}
