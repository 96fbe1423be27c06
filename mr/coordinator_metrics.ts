/**
 * The MapReduce coordinator's metrics, declared in one place and pulled from its status report
 * at scrape time. Adding a metric is one registration below.
 */
import { type Registry, type Sample } from "../status/metrics.ts";
import type { JobStatus, TaskStatus } from "./coordinator.ts";

const KINDS = ["map", "reduce"] as const;
const STATES = ["idle", "running", "done"] as const;
const PHASES = ["map", "reduce", "done", "failed"];

/** Registers the coordinator's metrics on `registry`, each read from `status()` when scraped. */
export function registerCoordinatorMetrics(registry: Registry, status: () => JobStatus): void {
  const r = registry;
  const perKind = (f: (t: TaskStatus) => number) => (): Sample[] => {
    const s = status();
    const all = [...s.tasks.idle, ...s.tasks.running, ...s.tasks.done];
    return KINDS.map((kind) => ({
      labels: { kind },
      value: all.filter((t) => t.kind === kind).reduce((acc, t) => acc + f(t), 0),
    }));
  };
  r.gaugeFunc(
    { name: "raftmr_mr_tasks", help: "Tasks by kind and state.", labels: ["kind", "state"] },
    () => {
      const s = status();
      return KINDS.flatMap((kind) =>
        STATES.map((state) => ({ labels: { kind, state }, value: s.counts[kind][state] }))
      );
    },
  );
  r.counterFunc(
    {
      name: "raftmr_mr_task_attempts_total",
      help: "Task hand-outs, re-issues included.",
      labels: ["kind"],
    },
    perKind((t) => t.attempts),
  );
  r.counterFunc(
    {
      name: "raftmr_mr_task_failures_total",
      help: "Attempts that reported an app failure.",
      labels: ["kind"],
    },
    perKind((t) => t.failures),
  );
  r.counterFunc(
    { name: "raftmr_mr_task_reissues_total", help: "Tasks handed out again after a timeout." },
    () => status().reissues,
  );
  r.gaugeFunc(
    { name: "raftmr_mr_phase", help: "1 for the job's current phase.", labels: ["phase"] },
    () => {
      const phase = status().phase;
      return PHASES.map((p) => ({ labels: { phase: p }, value: phase === p ? 1 : 0 }));
    },
  );
  r.gaugeFunc(
    { name: "raftmr_mr_workers_seen", help: "Workers that have contacted the coordinator." },
    () => status().workers.length,
  );
  r.counterFunc(
    { name: "raftmr_mr_bytes_read_total", help: "Bytes workers reported reading." },
    () => status().bytesRead,
  );
  r.counterFunc(
    { name: "raftmr_mr_bytes_written_total", help: "Bytes workers reported writing." },
    () => status().bytesWritten,
  );
  r.gaugeFunc(
    { name: "raftmr_mr_workers_alive", help: "Workers not declared dead." },
    () => status().workers.filter((w) => w.alive).length,
  );
  r.counterFunc(
    { name: "raftmr_mr_shuffle_bytes_total", help: "Partition bytes reducers fetched." },
    () => status().shuffleBytes,
  );
  r.counterFunc(
    { name: "raftmr_mr_split_bytes_total", help: "Split bytes sent to map tasks." },
    () => status().splitBytes,
  );
  r.counterFunc(
    {
      name: "raftmr_mr_map_reruns_total",
      help: "Completed maps run again because their output was lost.",
    },
    () => status().mapReruns,
  );
  r.counterFunc(
    { name: "raftmr_mr_backup_attempts_total", help: "Backup attempts started." },
    () => status().backupAttempts,
  );
  r.counterFunc(
    { name: "raftmr_mr_backup_wins_total", help: "Tasks completed by a backup attempt." },
    () => status().backupWins,
  );
  r.counterFunc(
    { name: "raftmr_mr_task_timeouts_total", help: "Attempts given up after the task timeout." },
    () => status().timeouts,
  );
  r.gaugeFunc(
    { name: "raftmr_mr_elapsed_seconds", help: "Seconds since the coordinator started." },
    () => status().elapsedMs / 1000,
  );
}
