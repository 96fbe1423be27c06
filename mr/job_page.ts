/**
 * The MapReduce jobs section of a peer's dashboard (kv/dashboard.ts): one row per job of the
 * replicated table, newest last, with its state and progress. Pure: a function of the views.
 */
import { html } from "hono/html";
import type { Html, Tone } from "../status/layout.ts";
import type { JobView } from "./job_view.ts";

const TONES: Record<JobView["state"], Tone> = {
  queued: "idle",
  map: "ok",
  reduce: "ok",
  done: "ok",
  failed: "bad",
  cancelled: "warn",
};

/** The jobs table; running counts are known on the leader only (0 elsewhere). */
export function jobsTable(jobs: JobView[]): Html {
  const rows = jobs.map((job) => {
    const { map, reduce } = job.tasks;
    return html`
      <tr class="${TONES[job.state]}">
        <td>${job.id}</td>
        <td class="state">${job.state}</td>
        <td class="num">${map.done}/${map.total}${map.running > 0
          ? ` (${map.running} running)`
          : ""}</td>
        <td class="num">${reduce.done}/${reduce.total}${reduce.running > 0
          ? ` (${reduce.running} running)`
          : ""}</td>
        <td class="num">${job.reruns}</td>
        <td>${job.app}</td>
        <td>${job.output}</td>
        <td>${job.submittedAt}</td>
        <td>${job.error ?? ""}</td>
      </tr>
    `;
  });
  return html`
    <table class="jobs">
      <thead>
        <tr>
          <th>job</th>
          <th>state</th>
          <th>maps</th>
          <th>reduces</th>
          <th>re-runs</th>
          <th>app</th>
          <th>output</th>
          <th>submitted</th>
          <th>error</th>
        </tr>
      </thead>
      <tbody>${rows}</tbody>
    </table>
  `;
}
