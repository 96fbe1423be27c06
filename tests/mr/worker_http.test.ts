/**
 * A worker's optional status endpoint: runWorker keeps its WorkerStatus current, and the Hono
 * routes report it. In-process, against a real coordinator over TCP.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Coordinator } from "../../mr/coordinator.ts";
import { newWorkerStatus, runWorker } from "../../mr/worker.ts";
import { createWorkerHttpApp } from "../../mr/worker_http.ts";
import { app, withTempDir } from "./helpers.ts";

Deno.test("worker status: counts finished tasks and bytes, and serves /status, /metrics and /", async () => {
  await withTempDir(async (dir) => {
    const inputs = [join(dir, "a.txt"), join(dir, "b.txt")];
    await Deno.writeTextFile(inputs[0], "one two two");
    await Deno.writeTextFile(inputs[1], "three three three");
    const previous = Deno.cwd();
    Deno.chdir(dir); // outputs land in the coordinator's directory
    try {
      const coordinator = await Coordinator.start({
        files: inputs,
        nReduce: 2,
        taskTimeoutMs: 60_000,
        listen: { hostname: "127.0.0.1", port: 0 },
        http: { hostname: "127.0.0.1", port: 0 },
        log: () => {},
      });
      const status = newWorkerStatus("coordinator", "wc");
      const code = await runWorker({
        coordinator: coordinator.rpcAddress,
        appPath: app("wc"),
        status,
        log: () => {},
      });
      await coordinator.finished;
      await coordinator.close();
      assert.equal(code, 0);
      assert.equal(status.state, "exited");
      assert.equal(status.tasksDone, 4); // 2 maps + 2 reduces, all on this one worker
      assert.ok(status.bytesRead > 0 && status.bytesWritten > 0);

      const http = createWorkerHttpApp(status);
      const json = await (await http.request("/status")).json();
      assert.equal(json.tasksDone, 4);
      assert.equal(json.id, status.id);
      const metrics = await (await http.request("/metrics")).text();
      assert.match(metrics, /^raftmr_mr_worker_tasks_done_total 4$/m);
      assert.match(await (await http.request("/")).text(), /tasks done: 4/);
    } finally {
      Deno.chdir(previous);
    }
  });
});
