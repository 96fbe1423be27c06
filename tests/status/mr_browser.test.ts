/**
 * The MapReduce pages in headless Chromium, as a person follows a job: the coordinator's page,
 * left open, moves from "map phase, 0%" to "done" by itself, and keeps the final result on
 * screen after the coordinator has exited; the worker's page shows what it did.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Coordinator } from "../../mr/coordinator.ts";
import { newWorkerStatus, runWorker } from "../../mr/worker.ts";
import { createWorkerHttpApp } from "../../mr/worker_http.ts";
import { dumpDom, LivePage, visibleText } from "../lib/chromium.ts";
import { sleep } from "../../util/sleep.ts";
import { app, withTempDir } from "../mr/helpers.ts";

Deno.test("MapReduce pages in Chromium: progress moves to done and stays after the exit", async () => {
  await withTempDir(async (dir) => {
    const inputs = ["a", "b", "c"].map((n) => join(dir, `${n}.txt`));
    for (const [i, file] of inputs.entries()) await Deno.writeTextFile(file, "word ".repeat(i + 1));
    const previous = Deno.cwd();
    Deno.chdir(dir); // outputs land in the coordinator's directory
    const coordinator = await Coordinator.start({
      files: inputs,
      nReduce: 2,
      taskTimeoutMs: 60_000,
      listen: { hostname: "127.0.0.1", port: 0 },
      http: { hostname: "127.0.0.1", port: 0 },
      log: () => {},
    });
    const { hostname, port } = coordinator.httpAddress!;
    const status = newWorkerStatus(`${coordinator.rpcAddress.port}`, "wc.ts");
    const workerHttp = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      createWorkerHttpApp(status).fetch,
    );
    const workerUrl = `http://127.0.0.1:${workerHttp.addr.port}/`;
    let page: LivePage | undefined;
    let closed = false;
    try {
      page = await LivePage.open(`http://${hostname}:${port}/`);
      const before = await page.waitForText(/MapReduce job: map/);
      assert.match(before, /Progress 0% \(0 of 5 tasks\)/);
      assert.match(before, /No worker has asked for a task yet/);
      assert.match(visibleText(await dumpDom(workerUrl)), /Worker · starting|State starting/);

      const code = await runWorker({
        coordinator: coordinator.rpcAddress,
        appPath: app("wc"),
        status,
        log: () => {},
      });
      assert.equal(code, 0);
      assert.deepEqual(await coordinator.finished, { ok: true });

      // The open page refreshed itself to the final state, without a reload.
      const done = await page.waitForText(/Job done in/);
      assert.match(done, /MapReduce job: done/);
      assert.match(done, /Progress 100% \(5 of 5 tasks\)/);
      assert.match(done, /2 output files mr-out-0 … mr-out-1/);
      assert.match(done, new RegExp(`${status.id} active 5`));

      // The coordinator exits; the page keeps the result instead of an error page.
      await coordinator.close();
      closed = true;
      await assert.rejects(fetch(`http://${hostname}:${port}/`));
      await sleep(2_000); // several refresh periods of the running page
      const after = await page.text();
      assert.match(after, /Job done in/);
      assert.doesNotMatch(after, /Not answering/);

      const worker = visibleText(await dumpDom(workerUrl));
      assert.match(worker, /State exited/);
      assert.match(worker, /tasks done: 5/);
      assert.match(worker, /Input read [0-9.]+ (B|KiB)/);
    } finally {
      await page?.close();
      await workerHttp.shutdown();
      if (!closed) await coordinator.close();
      Deno.chdir(previous);
    }
  });
});
