/**
 * MapReduce jobs on the Raft cluster, with real processes: three `serve` peers, two
 * `worker --cluster` processes, jobs submitted with `raftmr mr submit`.
 */
import { authHeaders } from "../lib/credentials.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fetchWithTimeout, freePort, ProcessCluster } from "../lib/cluster.ts";
import { runScript, withTempDir } from "../lib/run.ts";
import { sleep } from "../../util/sleep.ts";

const MAIN = fileURLToPath(new URL("../../main.ts", import.meta.url));
const CONFIG = fileURLToPath(new URL("../../deno.json", import.meta.url));
const MARKER_APP = fileURLToPath(new URL("./fixtures/marker_wc.ts", import.meta.url));
const WC_APP = fileURLToPath(new URL("../../mr/apps/wc.ts", import.meta.url));

interface JobView {
  id: string;
  state: string;
  tasks: Record<"map" | "reduce", { total: number; done: number; running: number }>;
  reruns: number;
  error: string | null;
  output: string;
  finishedAt: string | null;
}

/** A `raftmr worker --cluster` process. */
class WorkerProcess {
  readonly child: Deno.ChildProcess;
  readonly output: Promise<string>;
  /** `security`: the flags that pass the cluster's handshake (ProcessCluster.kvArgs()). */
  constructor(cluster: string, readonly httpPort?: number, security: string[] = []) {
    const http = httpPort === undefined ? [] : ["--http", `127.0.0.1:${httpPort}`];
    this.child = new Deno.Command(Deno.execPath(), {
      args: [
        ...["run", "-A", "--config", CONFIG, MAIN, "worker", "--cluster", cluster],
        ...http,
        ...security,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.output = new Response(this.child.stderr).text();
  }

  /** SIGTERM; resolves with the exit code. */
  async stop(): Promise<number> {
    try {
      this.child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    const { code } = await this.child.status;
    await this.output;
    return code;
  }
}

/** Writes `files` input files of `lines` distinct lines each; returns the expected counts. */
async function writeInputs(
  dir: string,
  files: number,
  lines: number,
): Promise<Map<string, number>> {
  await Deno.mkdir(dir, { recursive: true });
  const words = ["alpha", "beta", "gamma", "delta", "epsilon"];
  const expected = new Map<string, number>();
  for (let f = 0; f < files; f++) {
    const text: string[] = [];
    for (let i = 0; i < lines; i++) {
      // Each line differs (a number spelled in letters), so every split's contents differ.
      const tag = `line${String.fromCharCode(97 + (i % 26))}${String.fromCharCode(97 + f)}` +
        String.fromCharCode(97 + Math.floor(i / 26) % 26);
      const line = [words[i % 5], words[(i + f) % 5], tag];
      for (const w of line) expected.set(w, (expected.get(w) ?? 0) + 1);
      text.push(line.join(" "));
    }
    await Deno.writeTextFile(join(dir, `in-${f}.txt`), text.join("\n") + "\n");
  }
  return expected;
}

async function readOutput(dir: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.name.startsWith("mr-out-")) continue;
    for (const line of (await Deno.readTextFile(join(dir, entry.name))).split("\n")) {
      if (line === "") continue;
      const [key, value] = line.split(" ");
      assert.ok(!counts.has(key), `key ${key} appears twice in the output`);
      counts.set(key, Number(value));
    }
  }
  return counts;
}

async function getJob(cluster: ProcessCluster, id: string, nodes: number[]): Promise<JobView> {
  let last = "";
  for (const node of nodes) {
    try {
      const response = await fetchWithTimeout(`${cluster.url(node)}/v1/mr/jobs/${id}`, {
        headers: authHeaders(),
      }, 20_000);
      if (response.ok) return await response.json();
      last = await response.text();
    } catch (error) {
      last = String(error);
    }
  }
  throw new Error(`No node answered for job ${id}: ${last}`);
}

async function waitForJob(
  cluster: ProcessCluster,
  id: string,
  nodes: number[],
  until: (view: JobView) => boolean,
  what: string,
): Promise<JobView> {
  // Generous: the machine is shared; the condition, not the clock, ends the wait.
  const deadline = Date.now() + 240_000;
  let view: JobView | undefined;
  while (Date.now() < deadline) {
    try {
      view = await getJob(cluster, id, nodes);
      if (until(view)) return view;
    } catch {
      // A node may be electing; try again.
    }
    await sleep(100);
  }
  throw new Error(
    `Job ${id} never reached: ${what}; last ${JSON.stringify(view)}\n${cluster.dump()}`,
  );
}

function clusterArg(cluster: ProcessCluster, nodes = cluster.ids): string {
  return nodes.map((id) => cluster.peerAddress(id)).join(",");
}

/** Runs `raftmr mr VERB` against `nodes` (default: all) with the cluster's credentials. */
async function mr(cluster: ProcessCluster, verb: string, args: string[], nodes = cluster.ids) {
  return await runScript(MAIN, [
    "mr",
    verb,
    "--cluster",
    clusterArg(cluster, nodes),
    ...cluster.kvArgs(),
    ...args,
  ]);
}

/** `raftmr mr submit ARGS` to the whole cluster. */
function submit(cluster: ProcessCluster, args: string[]) {
  return mr(cluster, "submit", args);
}

/**
 * Submits the marker app over `root`/in in 1 KiB splits (a map task per ~1 KiB, each leaving a
 * marker in `root`/markers), output to `root`/out; returns the job id.
 */
async function submitMarkerJob(cluster: ProcessCluster, root: string, nReduce: number) {
  const submitted = await submit(cluster, [
    "--app",
    MARKER_APP,
    "--output",
    join(root, "out"),
    "--reduce",
    String(nReduce),
    "--split-size",
    "1KiB",
    join(root, "in"),
  ]);
  assert.equal(submitted.code, 0, submitted.stderr);
  return submitted.stdout.trim();
}

/** What a cluster-jobs test gets: its scratch directory and a running three-node cluster. */
interface JobTest {
  root: string;
  cluster: ProcessCluster;
  /** Starts a `worker --cluster` process; every one is stopped when the test ends. */
  worker(httpPort?: number): WorkerProcess;
}

/**
 * Declares a test that runs `body` in a scratch directory against a fresh three-node cluster,
 * then stops every worker it started and the cluster, whatever happened.
 */
function clusterJobTest(name: string, body: (t: JobTest) => Promise<void>): void {
  Deno.test({
    name,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      await withTempDir("raftmr-jobs-", async (root) => {
        const cluster = await ProcessCluster.start();
        const workers: WorkerProcess[] = [];
        const worker = (httpPort?: number) => {
          const started = new WorkerProcess(clusterArg(cluster), httpPort, cluster.kvArgs());
          workers.push(started);
          return started;
        };
        try {
          await body({ root, cluster, worker });
        } catch (error) {
          // The peers' logs are in the error (cluster.dump()); the workers' say what they ran.
          await Promise.all(workers.map((w) => w.stop()));
          for (const [i, w] of workers.entries()) {
            const lines = (await w.output).trimEnd().split("\n");
            console.error(`--- worker ${i + 1} (last 80 lines)\n${lines.slice(-80).join("\n")}`);
          }
          throw error;
        } finally {
          await Promise.all(workers.map((w) => w.stop()));
          await cluster.stop();
        }
      });
    },
  });
}

async function markerCounts(dir: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for await (const entry of Deno.readDir(dir)) {
    const split = entry.name.split("-").slice(0, 3).join("-");
    counts.set(split, (counts.get(split) ?? 0) + 1);
  }
  return counts;
}

clusterJobTest(
  "cluster jobs: kill -9 of the leader while maps run: the job completes, committed maps " +
    "do not run again",
  async ({ root, cluster, worker }) => {
    const expected = await writeInputs(join(root, "in"), 4, 120);
    const workers = [worker(), worker()];
    // ~3 splits per file: 12 map tasks of 400 ms each on two workers.
    const id = await submitMarkerJob(cluster, root, 3);
    assert.match(id, /^[0-9a-f]{16}$/);
    const before = await waitForJob(
      cluster,
      id,
      cluster.ids,
      (v) => v.tasks.map.done >= 4,
      "4 maps committed",
    );
    const nMap = before.tasks.map.total;
    assert.ok(nMap >= 8, `expected at least 8 map tasks, got ${nMap}`);
    const leader = await cluster.waitForLeader();
    await cluster.kill(leader);
    const committedBefore = before.tasks.map.done;
    const others = cluster.ids.filter((n) => n !== leader);
    const done = await waitForJob(cluster, id, others, (v) => v.state === "done", "done");
    assert.equal(done.error, null);
    assert.equal(done.tasks.reduce.done, 3);
    assert.deepEqual(await readOutput(join(root, "out")), expected);
    // Each split's map ran once, except the ones running when the leader died (at most one
    // per worker) and ones the new leader had already handed out.
    const markers = await markerCounts(join(root, "markers"));
    assert.equal(markers.size, nMap, "every split's map ran");
    const repeated = [...markers.values()].filter((n) => n > 1).length;
    assert.ok(
      repeated <= nMap - committedBefore,
      `${repeated} maps ran more than once, but ${committedBefore} of ${nMap} were ` +
        "committed before the kill",
    );
    assert.ok(repeated <= workers.length, `${repeated} maps ran twice: more than in flight`);
    for (const w of workers) assert.equal(await w.stop(), 0);
  },
);

clusterJobTest(
  "cluster jobs: two jobs complete, cancel, bad submissions, list after a leader change",
  async ({ root, cluster, worker }) => {
    const expected = await writeInputs(join(root, "in"), 2, 60);
    const workers = [worker(freePort()), worker()];
    // Bad submissions: each refused with one clear line, exit 1, and no job created.
    const bad: [string[], RegExp][] = [
      [["--app", WC_APP, "--output", join(root, "o"), join(root, "nope")], /no such file/],
      [["--app", MARKER_APP, "--output", "/proc/raftmr-no", join(root, "in")], /output/],
      [
        ["--app", join(root, "in", "in-0.txt"), "--output", join(root, "o"), join(root, "in")],
        /app/i,
      ],
    ];
    const noExports = join(root, "noexports.ts");
    await Deno.writeTextFile(noExports, "export const x = 1;\n");
    bad.push([["--app", noExports, "--output", join(root, "o"), join(root, "in")], /map/]);
    for (const [args, message] of bad) {
      const result = await submit(cluster, args);
      assert.equal(result.code, 1, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.equal(result.stdout, "");
    }
    // The same refusals over HTTP, checked by the peer itself (no splits sent).
    // Loads fine: each case below breaks one thing.
    const app = "export function map() { return []; }\nexport function reduce() { return ''; }\n";
    const good = { app, inputs: [join(root, "in")], output: join(root, "o"), nReduce: 1 };
    const badHttp: [Record<string, unknown>, number, RegExp][] = [
      [{ ...good, inputs: [join(root, "nope")] }, 400, /no such file/],
      [{ ...good, nReduce: 0 }, 400, /nReduce/],
      [{ ...good, output: "/proc/raftmr-no" }, 400, /output directory/],
      [{ ...good, app: "export const x = 1;" }, 400, /does not export map and reduce/],
      [{ ...good, app: "syntax error (" }, 400, /Cannot import/],
      [{ ...good, app: "x".repeat(2 * 1024 * 1024) }, 413, /limit/],
    ];
    for (const [body, status, message] of badHttp) {
      const response = await fetchWithTimeout(`${cluster.url(2)}/v1/mr/jobs`, {
        method: "POST",
        body: JSON.stringify(body),
        headers: authHeaders(), // The cluster's API needs the test token.
      }, 60_000);
      const text = await response.text();
      assert.equal(response.status, status, text);
      assert.match(JSON.parse(text).error, message);
    }
    const zero = await submit(cluster, [
      "--app",
      WC_APP,
      "--output",
      root,
      "--reduce",
      "0",
      root,
    ]);
    assert.equal(zero.code, 2, zero.stderr);
    const list0 = await mr(cluster, "list", ["--json"]);
    assert.equal(list0.code, 0, list0.stderr);
    assert.deepEqual(JSON.parse(list0.stdout), [], "no job was created by a bad submission");

    // Two jobs submitted together both complete.
    const [a, b] = await Promise.all(
      ["out-a", "out-b"].map((out) =>
        submit(cluster, [
          "--app",
          WC_APP,
          "--output",
          join(root, out),
          "--reduce",
          "2",
          join(root, "in"),
        ])
      ),
    );
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const wait = await mr(cluster, "wait", [a.stdout.trim()]);
    assert.equal(wait.code, 0, wait.stderr);
    const waitB = await mr(cluster, "wait", [b.stdout.trim()]);
    assert.equal(waitB.code, 0, waitB.stderr);
    assert.deepEqual(await readOutput(join(root, "out-a")), expected);
    assert.deepEqual(await readOutput(join(root, "out-b")), expected);
    // Every node's dashboard lists the jobs with their progress.
    const dashboard = await (await fetchWithTimeout(`${cluster.url(3)}/`, {}, 20_000)).text();
    assert.match(dashboard, /<h2>MapReduce jobs<\/h2>/);
    for (const id of [a.stdout.trim(), b.stdout.trim()]) {
      assert.match(dashboard, new RegExp(`<td>${id}</td>\\s*<td class="state">done</td>`));
    }
    // The worker's --http status page shows the cluster worker: its id, data address,
    // heartbeats answered by the leader, no failed task.
    const page = await fetchWithTimeout(
      `http://127.0.0.1:${workers[0].httpPort}/status`,
      {},
      20_000,
    );
    const shown = await page.json();
    assert.equal(shown.tasksFailed, 0);
    assert.match(shown.id, /\S+/);
    assert.match(shown.address, /^127\.0\.0\.1:\d+$/);
    assert.equal(typeof shown.lastHeartbeat, "number");
    assert.ok(["waiting", "working"].includes(shown.state), shown.state);

    // Cancel a running job: it ends "cancelled" and `mr wait` exits 1.
    const slow = await submit(cluster, [
      "--app",
      MARKER_APP,
      "--output",
      join(root, "out-c"),
      "--split-size",
      "512",
      join(root, "in"),
    ]);
    assert.equal(slow.code, 0, slow.stderr);
    const slowId = slow.stdout.trim();
    await waitForJob(cluster, slowId, cluster.ids, (v) => v.state === "map", "map phase");
    const cancel = await mr(cluster, "cancel", [slowId]);
    assert.equal(cancel.code, 0, cancel.stderr);
    const cancelled = await getJob(cluster, slowId, cluster.ids);
    assert.equal(cancelled.state, "cancelled");
    assert.notEqual(cancelled.finishedAt, null);
    const waitC = await mr(cluster, "wait", [slowId]);
    assert.equal(waitC.code, 1);

    // The history is the same after a leader change.
    const listBefore = await mr(cluster, "list", ["--json"]);
    const leader = await cluster.waitForLeader();
    await cluster.kill(leader);
    const others = cluster.ids.filter((n) => n !== leader);
    await cluster.waitForLeader(others);
    const listAfter = await mr(cluster, "list", ["--json"], others);
    assert.equal(listAfter.code, 0, listAfter.stderr);
    const summary = (text: string) =>
      (JSON.parse(text) as JobView[]).map((v) => [v.id, v.state, v.finishedAt]);
    assert.deepEqual(summary(listAfter.stdout), summary(listBefore.stdout));
    assert.deepEqual(
      summary(listAfter.stdout).map(([, state]) => state),
      ["done", "done", "cancelled"],
    );
    for (const w of workers) assert.equal(await w.stop(), 0);
  },
);

clusterJobTest(
  "cluster jobs: a worker killed after its maps committed: they run again, the job " +
    "completes; kill -9 of every peer mid-job and restart: the job resumes",
  async ({ root, cluster, worker }) => {
    const expected = await writeInputs(join(root, "in"), 3, 100);
    // One worker first, so the maps committed before it dies are certainly its own.
    const first = worker();
    const id = await submitMarkerJob(cluster, root, 2);
    await waitForJob(cluster, id, cluster.ids, (v) => v.tasks.map.done >= 2, "2 maps done");
    const second = worker();
    first.child.kill("SIGKILL");
    await first.stop();
    // Every peer dies mid-job and comes back on its data.
    for (const node of cluster.ids) await cluster.kill(node);
    for (const node of cluster.ids) cluster.startNode(node);
    await cluster.waitForLeader();
    const done = await waitForJob(cluster, id, cluster.ids, (v) => v.state === "done", "done");
    assert.equal(done.error, null);
    assert.ok(done.reruns >= 2, `the dead worker's maps ran again: reruns ${done.reruns}`);
    assert.deepEqual(await readOutput(join(root, "out")), expected);
    assert.equal(await second.stop(), 0);
  },
);
