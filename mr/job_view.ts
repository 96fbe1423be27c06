/**
 * The JSON a job is shown as (GET /v1/mr/jobs/{id}, `mr status --json`): the replicated record
 * plus, when the leader knows them, its running attempts. Pure: takes the record and soft view.
 */
import type { JobRecord } from "./job_state_machine.ts";
import type { JobSoftView } from "./job_service.ts";

/** A job's state as users see it. */
export type JobViewState = "queued" | "map" | "reduce" | "done" | "failed" | "cancelled";

/** Task counts of one kind. */
export interface TaskCounts {
  total: number;
  done: number;
  running: number;
}

/** The JSON of one job: the exact fields of the HTTP contract, plus `app` and `inputs`. */
export interface JobView {
  id: string;
  state: JobViewState;
  tasks: { map: TaskCounts; reduce: TaskCounts };
  reruns: number;
  backups: number;
  output: string;
  error: string | null;
  submittedAt: string;
  finishedAt: string | null;
  app: string;
  inputs: number;
}

/**
 * Builds a job's view. A running job is "queued" while nothing of it was committed or handed out,
 * "map" until every map is committed, then "reduce". `soft` is the leader's knowledge of running
 * attempts; without it (a follower that could not reach the leader) running counts are 0.
 */
export function jobView(job: JobRecord, soft?: JobSoftView): JobView {
  const mapsDone = job.maps.filter((m) => m !== null).length;
  const reducesDone = job.reduces.filter((r) => r !== null).length;
  let state: JobViewState;
  if (job.state !== "running") state = job.state;
  else if (mapsDone === job.nMap) state = "reduce";
  else if (mapsDone > 0 || reducesDone > 0 || soft?.started) state = "map";
  else state = "queued";
  const running = job.state === "running" ? soft : undefined;
  return {
    id: job.id,
    state,
    tasks: {
      map: { total: job.nMap, done: mapsDone, running: running?.mapRunning ?? 0 },
      reduce: { total: job.spec.nReduce, done: reducesDone, running: running?.reduceRunning ?? 0 },
    },
    reruns: job.reruns,
    backups: Math.max(job.backups, soft?.backups ?? 0),
    output: job.spec.output,
    error: job.error ?? null,
    submittedAt: new Date(job.submittedAt).toISOString(),
    finishedAt: job.finishedAt === undefined ? null : new Date(job.finishedAt).toISOString(),
    app: job.spec.appName,
    inputs: job.spec.inputs.length,
  };
}
