/**
 * The status pages as pure functions of their status objects: human numbers, escaping of
 * everything a peer, worker or file name carries, and the final state of a job.
 */
import assert from "node:assert/strict";
import { coordinatorPage } from "../../mr/coordinator_page.ts";
import type { JobStatus } from "../../mr/coordinator.ts";
import { workerPage } from "../../mr/worker_page.ts";
import { newWorkerStatus } from "../../mr/worker.ts";
import { nodePage } from "../../kv/dashboard.ts";
import { formatBytes, formatCount, formatDuration } from "../../status/format.ts";
import { FakeService } from "../kv/fake_service.ts";

/**
 * The rendered text with whitespace runs collapsed and none between tags: the templates are
 * laid out by `deno fmt`, and whitespace between tags is not what a person sees.
 */
async function render(page: string | Promise<string>): Promise<string> {
  return String(await page).replace(/\s+/g, " ").replace(/> </g, "><");
}

function job(phase: string, extra: Partial<JobStatus> = {}): JobStatus {
  return {
    phase,
    startedAt: "2026-01-01T00:00:00.000Z",
    elapsedMs: 12_345,
    nMap: 2,
    nReduce: 3,
    taskTimeoutMs: 10_000,
    counts: {
      map: { idle: 0, running: 1, done: 1 },
      reduce: { idle: 3, running: 0, done: 0 },
    },
    tasks: {
      idle: [],
      running: [{
        kind: "map",
        index: 1,
        input: "<b>evil</b>.txt",
        attempts: 1,
        failures: 0,
        worker: 'w"1',
        runningForMs: 1500,
      }],
      done: [],
    },
    workers: [{
      id: "<script>alert(1)</script>",
      address: "<i>host</i>:7200",
      alive: true,
      lastContact: "",
      lastContactAgoMs: 200,
      tasksDone: 1,
    }],
    reissues: 0,
    bytesRead: 3 * 1024 * 1024,
    bytesWritten: 1536,
    shuffleBytes: 1024,
    splitBytes: 3 * 1024 * 1024,
    mapReruns: 0,
    backupAttempts: 0,
    backupWins: 0,
    timeouts: 0,
    splitSize: 64 * 1024 * 1024,
    workerTimeoutMs: 10_000,
    backupTasks: true,
    ...extra,
  };
}

/** Every block-level element that may not sit inside a <p> (HTML's content model). */
function assertNoBlockInParagraph(html: string): void {
  for (const p of html.matchAll(/<p\b[^>]*>([\s\S]*?)<\/p>/g)) {
    assert.doesNotMatch(p[1], /<(div|table|ul|ol|h[1-6]|p)\b/, `block inside <p>: ${p[0]}`);
  }
}

Deno.test("format: bytes in binary units, durations in a readable unit, counts grouped", () => {
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(1536), "1.50 KiB");
  assert.equal(formatBytes(3 * 1024 * 1024), "3.00 MiB");
  assert.equal(formatBytes(150 * 1024 * 1024), "150 MiB");
  assert.equal(formatDuration(28.579314000001773), "28.6 ms");
  assert.equal(formatDuration(0.4567), "0.46 ms");
  assert.equal(formatDuration(1234), "1.23 s");
  assert.equal(formatDuration(95_000), "1 min 35 s");
  assert.equal(formatCount(1234567), "1,234,567");
});

Deno.test("pages: the running job escapes names, shows units and refreshes itself", async () => {
  const html = await render(coordinatorPage(job("map")));
  assert.match(html, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
  assert.doesNotMatch(html, /<script>alert/);
  assert.match(html, /&lt;b&gt;evil&lt;\/b&gt;\.txt/);
  assert.match(html, /w&quot;1/);
  assert.match(html, /&lt;i&gt;host&lt;\/i&gt;:7200/);
  assert.match(html, /3\.00 MiB/);
  assert.match(html, /1\.50 KiB/);
  assert.match(html, /Map <div class="bar"><div style="width:50%">/);
  assert.match(html, /<body data-refresh="0.5">/);
  assertNoBlockInParagraph(html);
});

Deno.test("pages: a finished job shows its result and stops refreshing", async () => {
  const done = await render(coordinatorPage(job("done", {
    counts: { map: { idle: 0, running: 0, done: 2 }, reduce: { idle: 0, running: 0, done: 3 } },
  })));
  assert.match(done, /Job done in 12\.3 s: 3 output files mr-out-0 … mr-out-2/);
  assert.match(done, /<body data-refresh="">/);
  assert.doesNotMatch(done, /http-equiv="refresh"/);
  const failed = await render(
    coordinatorPage(job("failed", { error: "map 1 failed 3 times: <boom>" })),
  );
  assert.match(failed, /Job failed: map 1 failed 3 times: &lt;boom&gt;/);
});

Deno.test("pages: the node page names the leader and shows members and counters with units", async () => {
  const html = await render(nodePage(new FakeService().status()));
  assert.match(html, /<title>raftmr node 1: leader<\/title>/);
  assert.match(html, /node 1<\/a> \(this node\)/);
  assert.match(html, /WAL files<\/td><td class="num">4\.00 MiB/);
  assert.match(html, /Log write time<\/td><td class="num">28\.6 ms/);
  assert.match(html, /Members up<\/span><b class="state">2 of 2/);
  assertNoBlockInParagraph(html);
});

Deno.test("pages: the leader flags a follower whose log went backwards", async () => {
  const report = new FakeService().status();
  report.progress![2].logWentBackwards = true;
  const html = await render(nodePage(report));
  assert.match(html, /replicate <span class="state warn">log went backwards<\/span>/);
});

Deno.test("pages: a member that stopped answering is shown down, in red", async () => {
  const report = new FakeService().status();
  report.members = [
    { id: 1, peer: "127.0.0.1:7001", http: "127.0.0.1:8001", state: "self" },
    { id: 2, peer: "127.0.0.1:7002", http: "127.0.0.1:8002", state: "down", lastSeenAgoMs: 4200 },
  ];
  const html = await render(nodePage(report));
  assert.match(html, /<tr class="bad">\s*<td><a href="http:\/\/127\.0\.0\.1:8002\/">node 2<\/a>/);
  assert.match(html, /<td class="state">down<\/td>/);
  assert.match(html, /last seen 4\.20 s ago/);
  assert.match(html, /<li class="bad"><span>Members up<\/span><b class="state">1 of 2/);
});

Deno.test("pages: the worker page escapes its id and stops refreshing once it exited", async () => {
  const status = newWorkerStatus("127.0.0.1:7100", "apps/<wc>.ts");
  status.id = "w<1>";
  status.state = "working";
  status.current = { kind: "map", task: 3, attempt: 2, since: 1000 };
  status.bytesRead = 2048;
  let html = await render(workerPage(status, 3500));
  assert.match(html, /Worker w&lt;1&gt;/);
  assert.match(html, /apps\/&lt;wc&gt;\.ts/);
  assert.match(html, /map task 3 \(attempt 2, 2\.50 s\)/);
  assert.match(html, /2\.00 KiB/);
  assert.match(html, /data-refresh="1"/);
  status.state = "exited";
  html = await render(workerPage(status, 3500));
  assert.match(html, /data-refresh=""/);
});

Deno.test("pages: the node page shows voters, learners and the last configuration changes", async () => {
  const report = new FakeService().status();
  report.learners = [4];
  report.transferee = 2;
  report.configChanges = [
    { index: 2, change: "formed cluster 0123456789abcdef" },
    { index: 9, change: "added node 4 (127.0.0.1:7004) as a learner" },
  ];
  const html = await render(nodePage(report));
  assert.match(html, /Voters<\/td><td[^>]*>1, 2</);
  assert.match(html, /Learners<\/td><td[^>]*>4</);
  assert.match(html, /added node 4 \(127\.0\.0\.1:7004\) as a learner/);
  assert.match(html, /to node 2/);
  assert.match(html, /0123456789abcdef/);
});
