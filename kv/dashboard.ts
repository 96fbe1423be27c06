/**
 * The node's dashboard (GET / of a peer): a pure function of its GET /status report, rendered in
 * the shared layout. A person should see within a second who leads, whether every member is up
 * (a down one in red), how far this node's state machine trails its log, and where the other
 * members' dashboards are.
 */
import { html } from "hono/html";
import { formatBytes, formatCount, formatDuration } from "../status/format.ts";
import { healthLine, type Html, page, type Stat, statsTable, type Tone } from "../status/layout.ts";
import type { MemberReport, NodeReport } from "./node_status.ts";
import { jobsTable } from "../mr/job_page.ts";

/** Seconds between live updates of the node page. */
export const NODE_PAGE_REFRESH_SECONDS = 1;

/** The whole node page for one /status report. */
export function nodePage(report: NodeReport): Html {
  const members = membersOf(report);
  return page({
    title: `raftmr node ${report.id}: ${report.role}`,
    role: "node",
    heading: `Node ${report.id} · ${report.role}`,
    refreshSeconds: NODE_PAGE_REFRESH_SECONDS,
    body: html`${healthLine(health(report, members))}
<h2>Members</h2>
${membersTable(report, members)}
${
      report.voters
        ? html`<h2>Configuration</h2>
${statsTable(configStats(report))}`
        : ""
    }
${
      report.jobs && report.jobs.length > 0
        ? html`<h2>MapReduce jobs</h2>
${jobsTable(report.jobs)}`
        : ""
    }
<h2>Log and storage</h2>
${statsTable(storageStats(report))}
<h2>Activity since start</h2>
${statsTable(activityStats(report))}`,
  });
}

function health(report: NodeReport, members: MemberReport[]): {
  label: string;
  value: string | Html;
  tone?: Tone;
}[] {
  const leader = members.find((m) => m.id === report.leader);
  const up = members.filter((m) => m.state === "up" || m.state === "self").length;
  const quorum = Math.floor(members.length / 2) + 1;
  const known = members.every((m) => m.state !== "unknown");
  const lag = report.commit - report.applied;
  return [
    {
      label: "Leader",
      value: report.leader === 0
        ? "none (election in progress or cut off)"
        : html`${memberLink(leader, `node ${report.leader}`)}${
          report.leader === report.id ? " (this node)" : ""
        }`,
      tone: report.leader === 0 ? "bad" : "ok",
    },
    { label: "Term", value: formatCount(report.term) },
    {
      label: "Members up",
      value: known ? `${up} of ${members.length}` : "?",
      tone: up === members.length ? "ok" : up >= quorum ? "warn" : "bad",
    },
    {
      label: "Commit / applied",
      value: `${formatCount(report.commit)} / ${formatCount(report.applied)}${
        lag > 0 ? ` (${formatCount(lag)} behind)` : ""
      }`,
      tone: lag > 1000 ? "warn" : "ok",
    },
  ];
}

/**
 * The members to show: the report's own list when the node probes its peers, otherwise what
 * --peers and (on the leader) replication progress say.
 */
function membersOf(report: NodeReport): MemberReport[] {
  if (report.members) return report.members;
  return Object.entries(report.peers).map(([id, peer]): MemberReport => {
    const n = Number(id);
    if (n === report.id) {
      return {
        id: n,
        peer,
        http: report.http,
        state: "self",
        role: report.role,
        term: report.term,
      };
    }
    const progress = report.progress?.[id];
    const state = progress === undefined ? "unknown" : progress.recentActive ? "up" : "down";
    return { id: n, peer, state };
  });
}

function memberLink(member: MemberReport | undefined, text: string): Html | string {
  if (!member?.http) return text;
  const href = member.state === "self" ? "/" : `http://${member.http}/`;
  return html`<a href="${href}">${text}</a>`;
}

function membersTable(report: NodeReport, members: MemberReport[]): Html {
  const leading = report.progress !== undefined;
  const rows = members.map((m) => {
    const tone: Tone = m.state === "down" ? "bad" : m.state === "unknown" ? "idle" : "ok";
    const progress = report.progress?.[String(m.id)];
    const behind = progress ? report.lastIndex - progress.match : undefined;
    return html`<tr class="${tone}">
<td>${memberLink(m, `node ${m.id}`)}</td>
<td class="state">${m.state === "self" ? "this node" : m.state}</td>
<td>${m.role ?? ""}</td>
<td class="num">${m.term === undefined ? "" : formatCount(m.term)}</td>
<td class="num">${m.applied === undefined ? "" : formatCount(m.applied)}</td>
${
      leading
        ? html`
          <td>${progress ? progress.state : ""}${progress?.logWentBackwards
            ? html`
              <span class="state warn">log went backwards</span>
            `
            : ""}</td>
          <td class="num">${behind === undefined
            ? ""
            : `${formatCount(behind)} ${behind === 1 ? "entry" : "entries"}`}</td>
        `
        : ""
    }
<td class="num">${m.rttMs === undefined ? "" : formatDuration(m.rttMs)}</td>
<td>${m.peer}</td>
<td>${m.http ? memberLink(m, m.http) : "unknown"}</td>
<td>${m.state === "down" ? downNote(m) : ""}</td>
</tr>`;
  });
  return html`
    <table class="members">
      <thead>
        <tr><th>member</th><th>state</th><th>role</th><th>term</th><th>applied</th>${leading
          ? html`
            <th>replication</th>
            <th>behind</th>
          `
          : ""}<th>round trip</th><th>peer address</th><th>dashboard</th><th></th></tr>
      </thead>
      <tbody>${rows}</tbody>
    </table>
  `;
}

function downNote(m: MemberReport): string {
  const seen = m.lastSeenAgoMs === undefined
    ? "never reached"
    : `last seen ${formatDuration(m.lastSeenAgoMs)} ago`;
  return m.error ? `${seen}: ${m.error}` : seen;
}

/** The configuration in force and the last changes (issue 15: voters, learners, changes). */
function configStats(r: NodeReport): Stat[] {
  const ids = (xs: number[] | undefined) => xs && xs.length > 0 ? xs.join(", ") : "none";
  const changes = r.configChanges ?? [];
  return [
    { label: "Voters", value: ids(r.voters) },
    { label: "Learners", value: ids(r.learners), note: "replicate, never vote or count" },
    { label: "Configuration index", value: formatCount(r.configIndex ?? 0) },
    ...(r.clusterId ? [{ label: "Cluster id", value: r.clusterId }] : []),
    ...(r.transferee
      ? [{ label: "Leadership transfer", value: `to node ${r.transferee}`, note: "in progress" }]
      : []),
    ...changes.slice(-5).reverse().map((c) => ({
      label: `Change at ${formatCount(c.index)}`,
      value: c.change,
    })),
  ];
}

function storageStats(r: NodeReport): Stat[] {
  return [
    { label: "Last log index", value: formatCount(r.lastIndex) },
    { label: "Snapshot index", value: formatCount(r.snapshotIndex) },
    { label: "Keys", value: formatCount(r.keys) },
    { label: "Client sessions", value: formatCount(r.sessions) },
    { label: "WAL records", value: formatBytes(r.walBytes) },
    { label: "WAL files", value: formatBytes(r.walAllocatedBytes), note: "preallocated included" },
    ...(r.version ? [{ label: "Version", value: r.version }] : []),
    ...(r.uptimeMs === undefined ? [] : [{ label: "Up for", value: formatDuration(r.uptimeMs) }]),
  ];
}

function activityStats(r: NodeReport): Stat[] {
  const c = r.counters;
  const meanSave = c.saves > 0 ? c.saveMsTotal / c.saves : 0;
  return [
    { label: "Proposals", value: formatCount(c.proposals) },
    {
      label: "Proposals failed",
      value: formatCount(c.proposalsDropped),
      note: "accepted, then lost to a leader change",
    },
    { label: "Entries applied", value: formatCount(c.applied) },
    { label: "Linearizable reads", value: formatCount(c.readIndexes) },
    { label: "Elections started", value: formatCount(c.electionsStarted) },
    { label: "Leader changes", value: formatCount(c.leaderChanges) },
    {
      label: "Snapshots",
      value: `${formatCount(c.snapshotsTaken)} taken, ${formatCount(c.snapshotsInstalled)} ` +
        `installed, ${formatCount(c.snapshotsSent)} sent`,
    },
    {
      label: "Log writes (fsync'd)",
      value: formatCount(c.saves),
      note: `${formatCount(c.savedEntries)} entries`,
    },
    {
      label: "Log write time",
      value: formatDuration(c.saveMsTotal),
      note: `mean ${formatDuration(meanSave)}, max ${formatDuration(c.saveMsMax)}`,
    },
    { label: "Raft messages sent", value: formatCount(c.messagesSent) },
  ];
}
