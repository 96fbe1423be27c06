/**
 * The coordinator's page (GET /): a pure function of its GET /status report, in the shared
 * layout. While the job runs it refreshes itself; once the job is over it shows the final
 * result and stops polling, so it stays readable after the coordinator exits.
 */
import { html } from "hono/html";
import { formatBytes, formatCount, formatDuration, percent } from "../status/format.ts";
import {
  type HealthItem,
  healthLine,
  type Html,
  page,
  progressRow,
  statsTable,
} from "../status/layout.ts";
import type { JobStatus, TaskStatus } from "./coordinator.ts";

/**
 * Seconds between live updates while the job runs: shorter than the second the coordinator keeps
 * answering after the job ends (mr/cli.ts), so an open page fetches the final state before the
 * process exits, and then keeps it on screen.
 */
export const COORDINATOR_PAGE_REFRESH_SECONDS = 0.5;

/** The whole coordinator page for one /status report. */
export function coordinatorPage(s: JobStatus): Html {
  const over = s.phase === "done" || s.phase === "failed";
  const tasks = [...s.tasks.idle, ...s.tasks.running, ...s.tasks.done];
  return page({
    title: `raftmr job: ${s.phase}`,
    role: "coordinator",
    heading: `MapReduce job: ${s.phase}`,
    refreshSeconds: over ? undefined : COORDINATOR_PAGE_REFRESH_SECONDS,
    body: html`${healthLine(health(s))}
${result(s)}
${progressRow("Map", s.counts.map.done, s.nMap)}
${progressRow("Reduce", s.counts.reduce.done, s.nReduce)}
<h2>Running tasks</h2>
${runningTable(s.tasks.running)}
<h2>Workers</h2>
${workersTable(s)}
${failuresSection(tasks)}
<h2>Totals</h2>
${
      statsTable([
        { label: "Input read by workers", value: formatBytes(s.bytesRead) },
        { label: "Output written by workers", value: formatBytes(s.bytesWritten) },
        { label: "Task attempts", value: formatCount(sum(tasks, (t) => t.attempts)) },
        { label: "Failed attempts", value: formatCount(sum(tasks, (t) => t.failures)) },
        { label: "Re-issued after a timeout", value: formatCount(s.reissues) },
        { label: "Splits sent to map tasks", value: formatBytes(s.splitBytes) },
        { label: "Shuffled (fetched by reducers)", value: formatBytes(s.shuffleBytes) },
        { label: "Maps re-run (output lost)", value: formatCount(s.mapReruns) },
        {
          label: "Backup attempts (won)",
          value: `${formatCount(s.backupAttempts)} (${formatCount(s.backupWins)})`,
        },
        { label: "Split size", value: formatBytes(s.splitSize) },
        { label: "Worker timeout", value: formatDuration(s.workerTimeoutMs) },
        { label: "Task timeout", value: formatDuration(s.taskTimeoutMs) },
        { label: "Started", value: s.startedAt },
      ])
    }`,
  });
}

function health(s: JobStatus): HealthItem[] {
  const done = s.counts.map.done + s.counts.reduce.done;
  const total = s.nMap + s.nReduce;
  return [
    {
      label: "Job",
      value: s.phase === "done" ? "done" : s.phase === "failed" ? "failed" : `${s.phase} phase`,
      tone: s.phase === "failed" ? "bad" : "ok",
    },
    { label: "Progress", value: `${percent(done, total)}% (${done} of ${total} tasks)` },
    { label: "Elapsed", value: formatDuration(s.elapsedMs) },
    { label: "Workers seen", value: formatCount(s.workers.length) },
    { label: "Re-issued", value: formatCount(s.reissues), tone: s.reissues > 0 ? "warn" : "ok" },
    {
      label: "Maps re-run",
      value: formatCount(s.mapReruns),
      tone: s.mapReruns > 0 ? "warn" : "ok",
    },
  ];
}

function result(s: JobStatus): Html | string {
  if (s.phase === "failed") {
    return html`<div class="error">Job failed: ${s.error ?? "unknown error"}</div>`;
  }
  if (s.phase !== "done") return "";
  const last = s.nReduce - 1;
  return html`<div class="state ok">Job done in ${
    formatDuration(s.elapsedMs)
  }: ${s.nReduce} output ${
    s.nReduce === 1 ? "file mr-out-0" : `files mr-out-0 … mr-out-${last}`
  }.</div>`;
}

function runningTable(running: TaskStatus[]): Html {
  if (running.length === 0) return html`<div class="note">None.</div>`;
  return html`
    <table>
      <thead>
        <tr>
          <th>task</th>
          <th>input</th>
          <th>worker</th>
          <th>attempt</th>
          <th>running for</th>
        </tr>
      </thead>
      <tbody>${running.map((t) =>
        html`
          <tr>
            <td>${t.kind} ${t.index}</td>
            <td>${t.input ?? ""}</td>
            <td>${t.worker ?? "?"}</td>
            <td class="num">${t.attempts}</td>
            <td class="num">${formatDuration(t.runningForMs ?? 0)}</td>
          </tr>
        `
      )}</tbody>
    </table>
  `;
}

function workersTable(s: JobStatus): Html {
  if (s.workers.length === 0) {
    return html`<div class="note">No worker has asked for a task yet.</div>`;
  }
  return html`
    <table>
      <thead>
        <tr>
          <th>worker</th>
          <th>state</th>
          <th>tasks done</th>
          <th>last heartbeat</th>
          <th>serves map output at</th>
        </tr>
      </thead>
      <tbody>${s.workers.map((w) => {
        // Declared dead (connection closed or no heartbeat for --worker-timeout), or silent
        // longer than a task may run.
        const quiet = !w.alive || w.lastContactAgoMs > s.taskTimeoutMs;
        return html`
          <tr class="${quiet ? "bad" : "ok"}">
            <td>${w.id}</td>
            <td class="state">${!w.alive ? "dead" : quiet ? "silent" : "active"}</td>
            <td class="num">${formatCount(w.tasksDone)}</td>
            <td class="num">${formatDuration(w.lastContactAgoMs)} ago</td>
            <td>${w.address ?? ""}</td>
          </tr>
        `;
      })}</tbody>
    </table>
  `;
}

function failuresSection(tasks: TaskStatus[]): Html | string {
  const failed = tasks.filter((t) => t.failures > 0);
  if (failed.length === 0) return "";
  return html`
    <h2>Tasks with failed attempts</h2>
    <table>
      <thead>
        <tr>
          <th>task</th>
          <th>failures</th>
          <th>last error</th>
        </tr>
      </thead>
      <tbody>${failed.map((t) =>
        html`
          <tr class="bad">
            <td>${t.kind} ${t.index}</td>
            <td class="num">${t.failures}</td>
            <td>${t.lastError ?? ""}</td>
          </tr>
        `
      )}</tbody>
    </table>
  `;
}

function sum(tasks: TaskStatus[], f: (t: TaskStatus) => number): number {
  return tasks.reduce((acc, t) => acc + f(t), 0);
}
