/**
 * The classic MapReduce scenarios with real processes over TCP: correctness (wc, indexer),
 * map and reduce parallelism, job count, early exit, and the status endpoints.
 */
import assert from "node:assert/strict";
import {
  listDir,
  mergedOutput,
  reference,
  startCoordinator,
  startWorker,
  withTempDir,
  writeInputs,
} from "./helpers.ts";
import { sleep } from "../../util/sleep.ts";

Deno.test("wc with 3 workers equals the sequential reference; HTTP status works", async () => {
  await withTempDir(async (dir) => {
    const files = await writeInputs(dir, 5, 600);
    const { proc, rpc, http } = await startCoordinator(dir, files);

    // Before any worker: every map task idle, visible on all three endpoints.
    const status = await (await fetch(`http://${http}/status`)).json();
    assert.equal(status.phase, "map");
    assert.equal(status.nMap, 5);
    assert.equal(status.nReduce, 10);
    assert.equal(status.counts.map.idle, 5);
    assert.deepEqual(status.tasks.idle[0], {
      kind: "map",
      index: 0,
      input: "pg-0.txt",
      attempts: 0,
      failures: 0,
    });
    const metrics = await (await fetch(`http://${http}/metrics`)).text();
    assert.match(metrics, /^# TYPE raftmr_mr_tasks gauge$/m);
    assert.match(metrics, /^raftmr_mr_tasks\{kind="map",state="idle"\} 5$/m);
    assert.match(metrics, /^raftmr_mr_phase\{phase="map"\} 1$/m);
    const page = await fetch(`http://${http}/`);
    assert.match(page.headers.get("content-type") ?? "", /text\/html/);
    const html = await page.text();
    assert.match(html, /http-equiv="refresh"/);
    assert.match(html, /Map <div class="bar">/);

    const workers = [1, 2, 3].map(() => startWorker(dir, rpc, "wc"));
    const coordinator = await proc.done;
    assert.equal(coordinator.code, 0, coordinator.stderr);
    // Compared the moment the coordinator exits: every output must already be final.
    assert.deepEqual(await mergedOutput(dir), await reference("wc", dir, files));
    for (const worker of workers) assert.equal((await worker.done).code, 0);
    assert.deepEqual(await listDir(dir, /^mr-\d+-\d+$/), [], "intermediate files are removed");
  });
});

Deno.test("indexer with 2 workers: outputs are complete when the first worker exits", async () => {
  await withTempDir(async (dir) => {
    const files = await writeInputs(dir, 4, 300);
    const { proc, rpc } = await startCoordinator(dir, files);
    const background = startWorker(dir, rpc, "indexer");
    const foreground = startWorker(dir, rpc, "indexer");
    const first = await Promise.race([background.done, foreground.done]);
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(await mergedOutput(dir), await reference("indexer", dir, files));
    assert.equal((await background.done).code, 0);
    assert.equal((await foreground.done).code, 0);
    assert.equal((await proc.done).code, 0);
  });
});

Deno.test("map parallelism: two workers run map tasks at the same time", async () => {
  await withTempDir(async (dir) => {
    const files = await writeInputs(dir, 8, 10);
    const { proc, rpc } = await startCoordinator(dir, files);
    const workers = [startWorker(dir, rpc, "mtiming"), startWorker(dir, rpc, "mtiming")];
    assert.equal((await proc.done).code, 0);
    for (const worker of workers) assert.equal((await worker.done).code, 0);
    const lines = await mergedOutput(dir);
    const times = lines.filter((line) => line.startsWith("times-"));
    assert.equal(times.length, 2, `two distinct worker processes ran maps: ${lines.join("\n")}`);
    const parallel = lines.filter((line) => line.startsWith("parallel-"));
    assert.ok(
      parallel.some((line) => line.split(" ").slice(1).includes("2")),
      `some map saw 2 mappers at once: ${parallel.join("; ")}`,
    );
  });
});

Deno.test("reduce parallelism: two workers run reduce tasks at the same time", async () => {
  await withTempDir(async (dir) => {
    const files = await writeInputs(dir, 2, 10);
    const { proc, rpc } = await startCoordinator(dir, files);
    const workers = [startWorker(dir, rpc, "rtiming"), startWorker(dir, rpc, "rtiming")];
    assert.equal((await proc.done).code, 0);
    for (const worker of workers) assert.equal((await worker.done).code, 0);
    const lines = await mergedOutput(dir);
    assert.equal(lines.length, 10, lines.join("\n"));
    const concurrent = lines.filter((line) => /^[a-j] 2$/.test(line));
    assert.ok(concurrent.length >= 2, `at least 2 reduces saw 2 reducers: ${lines.join("; ")}`);
  });
});

Deno.test("job count: with healthy workers every map task runs exactly once", async () => {
  await withTempDir(async (dir) => {
    const files = await writeInputs(dir, 8, 5);
    // Healthy workers: a map (2-5 s of sleep) must not outlast the task or worker timeout
    // (10 s by default) just because the machine is loaded, or it rightly runs twice. The
    // coordinator lingers until the test stops it, so the late worker below finds it however
    // long its process takes to start.
    const { proc, rpc } = await startCoordinator(dir, files, [
      "--task-timeout",
      "10m",
      "--worker-timeout",
      "10m",
      "--linger",
      "10m",
    ]);
    try {
      const first = startWorker(dir, rpc, "jobcount");
      const second = startWorker(dir, rpc, "jobcount");
      await sleep(2000);
      const third = startWorker(dir, rpc, "jobcount"); // joins mid-job
      const secondDone = await second.done;
      assert.equal(secondDone.code, 0, secondDone.stderr);
      // Started after the job finished: must exit on its own, without running a map.
      const late = startWorker(dir, rpc, "jobcount");
      const lateDone = await late.done;
      assert.equal(lateDone.code, 0, lateDone.stderr);
      for (const worker of [first, third]) assert.equal((await worker.done).code, 0);
      assert.ok(!proc.exited(), "the coordinator left before its linger was over");
      proc.child.kill("SIGTERM"); // Ends the linger; the job itself succeeded.
      assert.equal((await proc.done).code, 0);
      assert.deepEqual(await mergedOutput(dir), ["a 8"]);
      assert.equal((await listDir(dir, /^mr-worker-jobcount/)).length, 8);
    } finally {
      // A failed assertion must not leave the coordinator lingering for ten minutes.
      try {
        proc.child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await proc.done;
    }
  });
});

Deno.test("early exit: every output is final when the first process exits", async () => {
  await withTempDir(async (dir) => {
    const names = ["pg-sherlock.txt", "pg-tom.txt", "pg-grimm.txt", "pg-dorian.txt"];
    const files = await writeInputs(dir, 4, 5, names);
    const { proc, rpc } = await startCoordinator(dir, files);
    const workers = [1, 2, 3].map(() => startWorker(dir, rpc, "early_exit"));
    await Promise.race([proc.done, ...workers.map((w) => w.done)]);
    const atFirstExit = await mergedOutput(dir);
    assert.equal((await proc.done).code, 0);
    for (const worker of workers) assert.equal((await worker.done).code, 0);
    const final = await mergedOutput(dir);
    assert.deepEqual(atFirstExit, final);
    assert.deepEqual(final, await reference("early_exit", dir, files));
  });
});
