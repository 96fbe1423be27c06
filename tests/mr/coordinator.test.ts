/**
 * The coordinator in-process: RPC validation of untrusted params, duplicate completions, and the
 * status JSON, driven by a raw RPC client playing a worker.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Coordinator, InputError } from "../../mr/coordinator.ts";
import { RemoteError, RpcClient } from "../../net/rpc.ts";
import { clientHello } from "../../net/handshake.ts";
import { startOneFileJob, uploadOutput, withTempDir } from "./helpers.ts";
import { crc32c } from "../../util/crc32c.ts";

Deno.test("coordinator validates RPC params and tolerates duplicate completions", async () => {
  await withTempDir(async (dir) => {
    const { input, coordinator } = await startOneFileJob(dir);
    const client = new RpcClient(coordinator.rpcAddress, { hello: clientHello() });
    try {
      await assert.rejects(client.call("mr.ask", {}), RemoteError);
      await assert.rejects(client.call("mr.ask", "w"), /Invalid mr.ask params: expected an object/);
      const report = {
        workerId: "w1",
        kind: "map",
        task: 0,
        attempt: 1,
        ok: true,
        bytesRead: 11,
        bytesWritten: 20,
        output: { address: "127.0.0.1:1", sizes: [20], crcs: [7] },
      };
      await assert.rejects(client.call("mr.report", { ...report, kind: "sort" }), /Invalid kind/);
      await assert.rejects(client.call("mr.report", { ...report, task: -1 }), /Invalid task/);
      await assert.rejects(client.call("mr.report", report), /has no attempt 1/);

      const assignment = await client.call("mr.ask", { workerId: "w1" });
      assert.deepEqual(assignment, { type: "map", task: 0, attempt: 1, file: input, nReduce: 1 });
      assert.deepEqual(await client.call("mr.ask", { workerId: "w2" }), { type: "wait" });
      assert.deepEqual(await client.call("mr.report", report), { accepted: true });
      assert.deepEqual(await client.call("mr.report", report), { accepted: false });

      const http = coordinator.httpAddress!;
      const status = await (await fetch(`http://${http.hostname}:${http.port}/status`)).json();
      assert.equal(status.phase, "reduce");
      assert.equal(status.bytesRead, 22);
      assert.equal(status.bytesWritten, 40);
      assert.deepEqual(status.workers.map((w: { id: string }) => w.id).sort(), ["w1", "w2"]);
      assert.equal(status.tasks.done[0].worker, "w1");

      const reduce = await client.call("mr.ask", { workerId: "w2" });
      // Where its inputs are comes with the assignment (no mr.locations round trip).
      assert.deepEqual(reduce, {
        type: "reduce",
        task: 0,
        attempt: 1,
        nMap: 1,
        maps: [{ map: 0, attempt: 1, address: "127.0.0.1:1", size: 20, crc: 7 }],
      });
      await client.call("mr.report", {
        ...report,
        workerId: "w2",
        kind: "reduce",
        ok: false,
        error: "Error: flaky",
      });
      assert.equal(
        (await client.call<{ attempt: number }>("mr.ask", { workerId: "w2" })).attempt,
        2,
      );
      await uploadOutput(coordinator, 0, 2, "hello 1\nworld 1\n");
      await client.call("mr.report", { ...report, workerId: "w2", kind: "reduce", attempt: 2 });
      assert.deepEqual(await coordinator.finished, { ok: true });
      assert.equal(await Deno.readTextFile(join(dir, "mr-out-0")), "hello 1\nworld 1\n");
      assert.deepEqual(await client.call("mr.ask", { workerId: "w3" }), { type: "done" });
      const metrics = await (await fetch(`http://${http.hostname}:${http.port}/metrics`)).text();
      assert.match(metrics, /^raftmr_mr_task_failures_total\{kind="reduce"\} 1$/m);
      assert.match(metrics, /^raftmr_mr_phase\{phase="done"\} 1$/m);
    } finally {
      client.close();
      await coordinator.close();
    }
  });
});

Deno.test("Coordinator.start rejects unreadable inputs with InputError naming each file", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(
      Coordinator.start({
        files: [join(dir, "a.txt"), dir],
        nReduce: 1,
        taskTimeoutMs: 1000,
        listen: { hostname: "127.0.0.1", port: 0 },
      }),
      (err: unknown) => {
        assert.ok(err instanceof InputError);
        assert.match(
          err.message,
          /^Cannot read input files: .*a\.txt: no such file; .*: not a regular file$/,
        );
        return true;
      },
    );
  });
});

Deno.test("coordinator data: splits carry length and CRC-32C; bad uploads are refused, not staged", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "out");
    await Deno.mkdir(out);
    const { coordinator } = await startOneFileJob(dir, { outputDir: out }, "one two\nthree\n");
    const client = new RpcClient(coordinator.rpcAddress, { hello: clientHello() });
    try {
      const { job, token } = coordinator.credentials;
      const base = `http://127.0.0.1:${coordinator.httpAddress.port}/mr/${job}`;
      const auth = { authorization: `Bearer ${token}` };
      const split = await fetch(`${base}/split/0`, { headers: auth });
      const bytes = new Uint8Array(await split.arrayBuffer());
      assert.equal(new TextDecoder().decode(bytes), "one two\nthree\n");
      assert.equal(split.headers.get("content-length"), "14");
      assert.equal(
        split.headers.get("x-raftmr-crc32c"),
        crc32c(bytes).toString(16).padStart(8, "0"),
      );
      assert.equal((await fetch(`${base}/split/0`)).status, 403);

      const body = new TextEncoder().encode("one 1\n");
      const crc = crc32c(body).toString(16).padStart(8, "0");
      const put = async (headers: Record<string, string>, data: Uint8Array<ArrayBuffer> = body) => {
        const res = await fetch(`${base}/output/0/1`, { method: "PUT", headers, body: data });
        await res.body?.cancel();
        return res.status;
      };
      assert.equal(await put({ "x-raftmr-length": "6", "x-raftmr-crc32c": crc }), 403);
      assert.equal(await put({ ...auth }), 400, "no length or CRC");
      assert.equal(
        await put({ ...auth, "x-raftmr-length": "6", "x-raftmr-crc32c": "00000000" }),
        422,
      );
      assert.equal(await put({ ...auth, "x-raftmr-length": "9", "x-raftmr-crc32c": crc }), 422);
      assert.equal(await put({ ...auth, "x-raftmr-length": "3", "x-raftmr-crc32c": crc }), 422);
      // Nothing staged by a refused upload: a report now is handed back, not committed.
      await client.call("mr.ask", { workerId: "w" });
      await client.call("mr.report", {
        workerId: "w",
        kind: "map",
        task: 0,
        attempt: 1,
        ok: true,
        bytesRead: 14,
        bytesWritten: 6,
        output: { address: "127.0.0.1:1", sizes: [6], crcs: [1] },
      });
      assert.deepEqual(await client.call("mr.ask", { workerId: "w" }), {
        type: "reduce",
        task: 0,
        attempt: 1,
        nMap: 1,
        maps: [{ map: 0, attempt: 1, address: "127.0.0.1:1", size: 6, crc: 1 }],
      });
      const report = { workerId: "w", kind: "reduce", task: 0, attempt: 1, ok: true };
      const io = { bytesRead: 6, bytesWritten: 6 };
      assert.deepEqual(await client.call("mr.report", { ...report, ...io }), { accepted: false });
      assert.deepEqual([...Deno.readDirSync(out)], [], "nothing staged");
      // A good upload, then the report: committed as mr-out-0, and nothing else remains.
      await client.call("mr.ask", { workerId: "w" }); // attempt 2
      const good = await fetch(`${base}/output/0/2`, {
        method: "PUT",
        headers: { ...auth, "x-raftmr-length": "6", "x-raftmr-crc32c": crc },
        body,
      });
      assert.equal(good.status, 200, await good.text());
      const done = { ...report, attempt: 2, ...io };
      assert.deepEqual(await client.call("mr.report", done), { accepted: true });
      assert.deepEqual(await coordinator.finished, { ok: true });
      assert.equal(await Deno.readTextFile(join(out, "mr-out-0")), "one 1\n");
      assert.equal(await put({ ...auth, "x-raftmr-length": "6", "x-raftmr-crc32c": crc }), 409);
      const names = [];
      for await (const entry of Deno.readDir(out)) names.push(entry.name);
      assert.deepEqual(names, ["mr-out-0"]);
    } finally {
      client.close();
      await coordinator.close();
    }
  });
});

Deno.test("coordinator: first requests for its pages, all at once, are each answered and counted", async () => {
  await withTempDir(async (dir) => {
    const { coordinator } = await startOneFileJob(dir);
    try {
      // The pages' module loads with the first request for one: these all come before it did.
      const base = `http://127.0.0.1:${coordinator.httpAddress.port}`;
      const paths = ["/status", "/", "/metrics", "/status", "/nowhere"];
      const answers = await Promise.all(paths.map(async (path) => {
        const response = await fetch(base + path);
        return { path, status: response.status, body: await response.text() };
      }));
      for (const { path, status, body } of answers) {
        assert.equal(status, path === "/nowhere" ? 404 : 200, `${path}: ${body}`);
      }
      assert.equal(JSON.parse(answers[0].body).phase, "map");
      const metrics = await (await fetch(`${base}/metrics`)).text();
      assert.match(metrics, /^raftmr_http_requests_total\{method="GET",code="200"\} 4$/m);
      assert.match(metrics, /^raftmr_http_requests_total\{method="GET",code="404"\} 1$/m);
    } finally {
      await coordinator.close();
    }
  });
});
