/**
 * The replicated MapReduce job table: every job submitted to the cluster, which of its tasks are
 * committed (and, for a map, which worker holds the output), failures, and how each job ended.
 * Every peer applies the same job commands (mr/job_commands.ts) in the same log order and reaches
 * the same table: nothing here reads a clock or a random source, times come from the commands.
 *
 * Rules applied here, so that a new leader only needs this table to carry every job on:
 * - The first commit of a task wins; a later one (a backup, a re-issued attempt) is refused,
 *   except a map commit marked `replace` (the map ran again because reducers could not fetch
 *   its output from a live holder).
 * - The last reduce commit makes the job "done" (no separate command: it follows from the log).
 * - A worker declared dead loses its committed maps in every running job (their output lived on
 *   its disk, MapReduce §3.3): they count as re-runs and run again.
 * - MAX_TASK_FAILURES failures of one task fail the job (as mr/scheduler.ts does).
 * - At most MAX_FINISHED_JOBS finished jobs are kept, the oldest finished dropped first; a
 *   finished job forgets its app source and splits, so the history stays small in snapshots.
 */
import { Decoder, Encoder } from "@msgpack/msgpack";
import {
  decodeJobCommand,
  type JobCommand,
  JobCommandError,
  type JobSpec,
  type JobTaskKind,
} from "./job_commands.ts";

/** A job's lifecycle in the table; "queued", "map" and "reduce" are views of "running". */
export type JobRecordState = "running" | "done" | "failed" | "cancelled";

/** One committed task attempt. */
export interface TaskCommit {
  attempt: number;
  worker: string;
  /** For a map: where its holder serves the output, and each partition's size and CRC-32C. */
  address?: string;
  sizes?: number[];
  crcs?: number[];
}

/** One job in the table. */
export interface JobRecord {
  id: string;
  /** The spec; a finished job keeps it without `app` and `splits` (set to "" and []). */
  spec: JobSpec;
  nMap: number;
  submittedAt: number;
  state: JobRecordState;
  error?: string;
  finishedAt?: number;
  maps: (TaskCommit | null)[];
  reduces: (TaskCommit | null)[];
  mapFailures: number[];
  reduceFailures: number[];
  /** Committed maps that ran again because their holder died. */
  reruns: number;
  /** Tasks whose committed attempt was a backup. */
  backups: number;
}

/** What applying one job command produced, handed back to its proposer. */
export type JobApplyResult =
  | { ok: true; accepted: boolean; rerun?: { job: string; map: number }[] }
  | { ok: false; error: string };

/** Failures of one task after which the job fails (mr/scheduler.ts's DEFAULT_MAX_FAILURES). */
export const MAX_TASK_FAILURES = 3;
/** Finished jobs kept for `mr list`. */
export const MAX_FINISHED_JOBS = 100;

const SNAPSHOT_VERSION = 1;
const encoder = new Encoder();
const decoder = new Decoder();

/** The job table every peer applies job commands to. */
export class JobStateMachine {
  /** Jobs in submission order (a Map keeps insertion order). */
  #jobs = new Map<string, JobRecord>();
  /** Ids of finished jobs in the order they finished, oldest first. */
  #finished: string[] = [];

  /** Every job, in submission order. The records are live: callers must not mutate them. */
  jobs(): JobRecord[] {
    return [...this.#jobs.values()];
  }

  /** One job, or undefined. The record is live: callers must not mutate it. */
  job(id: string): JobRecord | undefined {
    return this.#jobs.get(id);
  }

  /** Whether the table holds anything (an empty table adds nothing to a snapshot). */
  get empty(): boolean {
    return this.#jobs.size === 0;
  }

  /** Decodes and applies one job command's bytes; a malformed command changes nothing. */
  applyData(data: Uint8Array): JobApplyResult {
    let command: JobCommand;
    try {
      command = decodeJobCommand(data);
    } catch (error) {
      if (error instanceof JobCommandError) return { ok: false, error: error.message };
      throw error;
    }
    return this.apply(command);
  }

  /** Applies one decoded command (deterministic: depends only on the table and the command). */
  apply(command: JobCommand): JobApplyResult {
    switch (command.kind) {
      case "submit":
        return this.#submit(command);
      case "commit":
        return this.#commit(command);
      case "task_failed":
        return this.#taskFailed(command);
      case "worker_dead":
        return this.#workerDead(command.worker, command.time);
      case "finish": {
        const job = this.#jobs.get(command.job);
        if (!job) return { ok: false, error: `No such job: ${command.job}` };
        if (job.state !== "running") return { ok: true, accepted: false };
        this.#end(job, command.state, command.time, command.error);
        return { ok: true, accepted: true };
      }
    }
  }

  #submit(command: Extract<JobCommand, { kind: "submit" }>): JobApplyResult {
    if (this.#jobs.has(command.id)) return { ok: false, error: `Job exists: ${command.id}` };
    const { spec } = command;
    const nMap = spec.splits.length;
    this.#jobs.set(command.id, {
      id: command.id,
      spec,
      nMap,
      submittedAt: command.time,
      state: "running",
      maps: new Array(nMap).fill(null),
      reduces: new Array(spec.nReduce).fill(null),
      mapFailures: new Array(nMap).fill(0),
      reduceFailures: new Array(spec.nReduce).fill(0),
      reruns: 0,
      backups: 0,
    });
    return { ok: true, accepted: true };
  }

  #task(job: JobRecord, kind: JobTaskKind, index: number): string | undefined {
    const n = kind === "map" ? job.nMap : job.spec.nReduce;
    return index < n ? undefined : `No ${kind} task ${index}: job ${job.id} has ${n}`;
  }

  #commit(command: Extract<JobCommand, { kind: "commit" }>): JobApplyResult {
    const job = this.#jobs.get(command.job);
    if (!job) return { ok: false, error: `No such job: ${command.job}` };
    const bad = this.#task(job, command.task, command.index);
    if (bad) return { ok: false, error: bad };
    if (job.state !== "running") return { ok: true, accepted: false };
    const tasks = command.task === "map" ? job.maps : job.reduces;
    const earlier = tasks[command.index];
    if (earlier !== null) {
      // A map whose output could not be fetched ran again: its new output replaces the old.
      const replaces = command.task === "map" && command.replace === true &&
        (earlier.attempt !== command.attempt || earlier.worker !== command.worker);
      if (!replaces) return { ok: true, accepted: false };
      job.reruns++;
    }
    if (command.task === "map") {
      if (
        command.address === undefined || command.sizes?.length !== job.spec.nReduce ||
        command.crcs?.length !== job.spec.nReduce
      ) {
        return { ok: false, error: `A map commit needs ${job.spec.nReduce} partition sizes` };
      }
      tasks[command.index] = {
        attempt: command.attempt,
        worker: command.worker,
        address: command.address,
        sizes: command.sizes,
        crcs: command.crcs,
      };
    } else {
      // MapReduce §3.1: a reduce reads every map's output, so it commits only after all maps.
      if (job.maps.some((m) => m === null)) return { ok: true, accepted: false };
      tasks[command.index] = { attempt: command.attempt, worker: command.worker };
    }
    if (command.backup) job.backups++;
    if (job.reduces.every((r) => r !== null)) this.#end(job, "done", command.time);
    return { ok: true, accepted: true };
  }

  #taskFailed(command: Extract<JobCommand, { kind: "task_failed" }>): JobApplyResult {
    const job = this.#jobs.get(command.job);
    if (!job) return { ok: false, error: `No such job: ${command.job}` };
    const bad = this.#task(job, command.task, command.index);
    if (bad) return { ok: false, error: bad };
    const tasks = command.task === "map" ? job.maps : job.reduces;
    if (job.state !== "running" || tasks[command.index] !== null) {
      return { ok: true, accepted: false };
    }
    const failures = command.task === "map" ? job.mapFailures : job.reduceFailures;
    failures[command.index]++;
    if (failures[command.index] >= MAX_TASK_FAILURES) {
      this.#end(
        job,
        "failed",
        command.time,
        `${command.task} task ${command.index} failed ${failures[command.index]} times, last on ` +
          `worker ${command.worker}: ${command.error}`,
      );
    }
    return { ok: true, accepted: true };
  }

  #workerDead(worker: string, _time: number): JobApplyResult {
    const rerun: { job: string; map: number }[] = [];
    for (const job of this.#jobs.values()) {
      if (job.state !== "running") continue;
      job.maps.forEach((commit, map) => {
        if (commit?.worker !== worker) return;
        job.maps[map] = null;
        job.reruns++;
        rerun.push({ job: job.id, map });
      });
    }
    return { ok: true, accepted: rerun.length > 0, rerun };
  }

  #end(job: JobRecord, state: Exclude<JobRecordState, "running">, time: number, error?: string) {
    job.state = state;
    job.finishedAt = time;
    if (error !== undefined) job.error = error;
    // The history is for people: the app and the split list would only fill snapshots.
    job.spec = { ...job.spec, app: "", splits: [] };
    this.#finished.push(job.id);
    while (this.#finished.length > MAX_FINISHED_JOBS) this.#jobs.delete(this.#finished.shift()!);
  }

  /** Serialises the whole table. */
  snapshot(): Uint8Array {
    return encoder.encode([SNAPSHOT_VERSION, [...this.#jobs.values()], this.#finished]);
  }

  /** Replaces the table with snapshot data; empty data means the empty table. */
  restore(data: Uint8Array): void {
    const jobs = new Map<string, JobRecord>();
    let finished: string[] = [];
    if (data.length > 0) {
      const raw = decoder.decode(data);
      if (
        !Array.isArray(raw) || raw.length !== 3 || raw[0] !== SNAPSHOT_VERSION ||
        !Array.isArray(raw[1]) || !Array.isArray(raw[2])
      ) {
        throw new Error("Cannot restore job snapshot: unknown format");
      }
      for (const record of raw[1] as JobRecord[]) {
        if (typeof record?.id !== "string" || typeof record.state !== "string") {
          throw new Error("Cannot restore job snapshot: bad job record");
        }
        jobs.set(record.id, stripUndefined(record));
      }
      finished = (raw[2] as unknown[]).filter((id): id is string => typeof id === "string");
    }
    this.#jobs = jobs;
    this.#finished = finished;
  }
}

/** msgpack turns undefined fields into nil: put them back to absent, as apply() leaves them. */
function stripUndefined(record: JobRecord): JobRecord {
  for (const key of Object.keys(record) as (keyof JobRecord)[]) {
    if (record[key] === null) delete record[key];
  }
  return record;
}
