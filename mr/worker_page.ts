/**
 * A MapReduce worker's page (GET / of `raftmr worker --http`): a pure function of its status
 * record, in the shared layout, refreshing itself until the worker exits.
 */
import { html } from "hono/html";
import { formatBytes, formatCount, formatDuration } from "../status/format.ts";
import { healthLine, type Html, page, statsTable } from "../status/layout.ts";
import type { WorkerStatus } from "./worker.ts";

/** Seconds between live updates while the worker runs. */
export const WORKER_PAGE_REFRESH_SECONDS = 1;

/** The whole worker page; `now` is the wall clock in ms (to show how long the task runs). */
export function workerPage(s: WorkerStatus, now: number): Html {
  const current = s.current
    ? `${s.current.kind} task ${s.current.task} (attempt ${s.current.attempt}, ${
      formatDuration(now - s.current.since)
    })`
    : "none";
  return page({
    title: `raftmr worker ${s.id}: ${s.state}`,
    role: "worker",
    heading: `Worker ${s.id}`,
    refreshSeconds: s.state === "exited" ? undefined : WORKER_PAGE_REFRESH_SECONDS,
    body: html`${
      healthLine([
        {
          label: "State",
          value: s.state,
          tone: s.state === "exited" ? "idle" : s.state === "working" ? "ok" : "warn",
        },
        { label: "Current task", value: current },
        {
          label: "Failed attempts",
          value: formatCount(s.tasksFailed),
          tone: s.tasksFailed > 0 ? "warn" : "ok",
        },
      ])
    }
<div>Since start: tasks done: ${s.tasksDone}, failed: ${s.tasksFailed}.</div>
<h2>Work since start</h2>
${
      statsTable([
        { label: "Tasks done", value: formatCount(s.tasksDone) },
        { label: "Task attempts that failed", value: formatCount(s.tasksFailed) },
        { label: "Input read", value: formatBytes(s.bytesRead) },
        { label: "Output written", value: formatBytes(s.bytesWritten) },
        { label: "Shuffle fetched from mappers", value: formatBytes(s.shuffleBytesFetched) },
        { label: "Map output served to reducers", value: formatBytes(s.shuffleBytesServed) },
        { label: "Transfers retried (corrupt)", value: formatCount(s.corruptTransfers) },
        {
          label: "Last heartbeat",
          value: s.lastHeartbeat === undefined
            ? "none yet"
            : `${formatDuration(now - s.lastHeartbeat)} ago`,
        },
        { label: "Up for", value: formatDuration(now - s.startedAt) },
      ])
    }
<h2>Configuration</h2>
${
      statsTable([
        { label: "Coordinator", value: s.coordinator },
        { label: "Serves map output at", value: s.address ?? "not yet" },
        { label: "App", value: s.app },
      ])
    }`,
  });
}
