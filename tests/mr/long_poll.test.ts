/**
 * Asks for work. Long polls (AskParams.waitMs): a worker with nothing to do is answered the
 * moment a task is ready for it (released by a failed attempt, a timed-out one, a dead worker's,
 * or the reduce phase opening) or the job ends, and otherwise when the hold bound is up. And a
 * report with the next ask right behind it: the ask sees what the report did. A raw RPC client
 * plays the workers; every step waits for a condition, never for a time.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Coordinator, CoordinatorOptions } from "../../mr/coordinator.ts";
import { RpcClient } from "../../net/rpc.ts";
import { clientHello } from "../../net/handshake.ts";
import { startOneFileJob, uploadOutput, waitFor, withTempDir } from "./helpers.ts";

type Answer = { type: string; task?: number; attempt?: number; error?: string };

/** A coordinator over one small input (one map task) with one reduce task. */
async function start(dir: string, options: Partial<CoordinatorOptions> = {}) {
  const { coordinator } = await startOneFileJob(dir, {
    taskTimeoutMs: 600_000,
    // The hold is bounded by the test's own hang guard only: an answer can come from an event.
    maxAskHoldMs: 600_000,
    ...options,
  });
  const client = () =>
    new RpcClient(coordinator.rpcAddress, { hello: clientHello(), timeoutMs: 700_000 });
  return { coordinator, client };
}

/** Waits until the coordinator holds `n` asks. */
function parked(coordinator: Coordinator, n: number): Promise<unknown> {
  return waitFor(
    `${n} parked asks`,
    () => Promise.resolve(coordinator.status().waiting === n || undefined),
  );
}

/** Generous bound on a held ask's answer: a guard against hangs, not a timing goal. */
const HANG_GUARD_MS = 240_000;

/** `call`'s answer, or an error if none comes within the hang guard (it would come never). */
async function answered<T>(call: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<never>((_, reject) =>
    timer = setTimeout(() => reject(new Error("A held ask was never answered")), HANG_GUARD_MS)
  );
  try {
    return await Promise.race([call, guard]);
  } finally {
    clearTimeout(timer);
  }
}

const mapReport = {
  kind: "map",
  task: 0,
  ok: true,
  bytesRead: 12,
  bytesWritten: 12,
  output: { address: "127.0.0.1:1", sizes: [12], crcs: [1] },
};

Deno.test("a held ask gets a failed attempt's task, then a reduce, then hears done at once", async () => {
  await withTempDir(async (dir) => {
    const { coordinator, client } = await start(dir);
    const rpc = client();
    try {
      const first = await rpc.call<Answer>("mr.ask", { workerId: "w1", waitMs: 600_000 });
      assert.equal(first.type, "map", "work is there: no hold");
      // w2 finds nothing to do: held.
      const w2 = rpc.call<Answer>("mr.ask", { workerId: "w2", waitMs: 600_000 });
      await parked(coordinator, 1);
      await rpc.call("mr.report", {
        workerId: "w1",
        kind: "map",
        task: 0,
        attempt: 1,
        ok: false,
        error: "Error: flaky",
        bytesRead: 0,
        bytesWritten: 0,
      });
      // Answered while the report was handled, not by a later poll or timer.
      assert.equal(coordinator.status().waiting, 0, "answered by the report");
      assert.deepEqual(
        { ...await answered(w2), file: undefined },
        { type: "map", task: 0, attempt: 2, file: undefined, nReduce: 1 },
      );
      // w1 now waits for the reduce phase, which opens when w2's map is done.
      const w1 = rpc.call<Answer>("mr.ask", { workerId: "w1", waitMs: 600_000 });
      await parked(coordinator, 1);
      await rpc.call("mr.report", { ...mapReport, workerId: "w2", attempt: 2 });
      assert.equal(coordinator.status().waiting, 0, "answered by the report");
      assert.deepEqual(await answered(w1), {
        type: "reduce",
        task: 0,
        attempt: 1,
        nMap: 1,
        // Where its input is: map 0's second attempt (w2's).
        maps: [{ map: 0, attempt: 2, address: "127.0.0.1:1", size: 12, crc: 1 }],
      });
      // w2 waits; the job's last report ends its wait with "done".
      const end = rpc.call<Answer>("mr.ask", { workerId: "w2", waitMs: 600_000 });
      await parked(coordinator, 1);
      await uploadOutput(coordinator, 0, 1, "hello 1\nworld 1\n");
      await rpc.call("mr.report", {
        workerId: "w1",
        kind: "reduce",
        task: 0,
        attempt: 1,
        ok: true,
        bytesRead: 12,
        bytesWritten: 16,
      });
      assert.equal(coordinator.status().waiting, 0, "answered by the report");
      assert.deepEqual(await answered(end), { type: "done" });
      assert.deepEqual(await coordinator.finished, { ok: true });
      assert.equal(coordinator.status().waiting, 0);
    } finally {
      rpc.close();
      await coordinator.close();
    }
  });
});

Deno.test("a held ask gets the task of an attempt that timed out", async () => {
  await withTempDir(async (dir) => {
    // A short task timeout: the coordinator's expiry timer runs every 50 ms.
    const { coordinator, client } = await start(dir, { taskTimeoutMs: 200, maxTimeouts: 1000 });
    const rpc = client();
    try {
      assert.equal((await rpc.call<Answer>("mr.ask", { workerId: "stalled" })).type, "map");
      // Held (nothing idle) or answered at once (already expired under load): either way the
      // map's next attempt goes to the waiting worker, with no second ask.
      const answer = await rpc.call<Answer>("mr.ask", { workerId: "w", waitMs: 600_000 });
      assert.equal(answer.type, "map");
      assert.equal(answer.task, 0);
      assert.ok(answer.attempt! >= 2);
      assert.ok(coordinator.status().timeouts >= 1);
    } finally {
      rpc.close();
      await coordinator.close();
    }
  });
});

Deno.test("a held ask gets the task of a worker whose connection closed", async () => {
  await withTempDir(async (dir) => {
    const { coordinator, client } = await start(dir);
    const dying = client();
    const waiting = client();
    try {
      assert.equal((await dying.call<Answer>("mr.ask", { workerId: "dying" })).type, "map");
      const answer = waiting.call<Answer>("mr.ask", { workerId: "w", waitMs: 600_000 });
      await parked(coordinator, 1);
      dying.close();
      assert.deepEqual({ ...await answered(answer), file: undefined }, {
        type: "map",
        task: 0,
        attempt: 2,
        file: undefined,
        nReduce: 1,
      });
      // The waiting worker's own connection closing drops its held ask: nothing is handed to it.
      const held = waiting.call<Answer>("mr.ask", { workerId: "w2", waitMs: 600_000 });
      await parked(coordinator, 1);
      waiting.close();
      await assert.rejects(held);
      await parked(coordinator, 0);
    } finally {
      dying.close();
      waiting.close();
      await coordinator.close();
    }
  });
});

Deno.test("a held ask is answered when its bound is up: the worker's, or the coordinator's", async () => {
  await withTempDir(async (dir) => {
    const { coordinator, client } = await start(dir, { maxAskHoldMs: 100 });
    const rpc = client();
    try {
      assert.equal((await rpc.call<Answer>("mr.ask", { workerId: "busy" })).type, "map");
      const asked = performance.now();
      assert.deepEqual(await rpc.call("mr.ask", { workerId: "w", waitMs: 40 }), { type: "wait" });
      // A lower bound (timers never fire early), not a time limit.
      assert.ok(performance.now() - asked >= 39, "held for the asked bound");
      // Asking for ten minutes is held only for the coordinator's bound (else this hangs).
      assert.deepEqual(await rpc.call("mr.ask", { workerId: "w", waitMs: 600_000 }), {
        type: "wait",
      });
      // Without waitMs the answer is at once, as for a worker that polls.
      assert.deepEqual(await rpc.call("mr.ask", { workerId: "w" }), { type: "wait" });
      await assert.rejects(rpc.call("mr.ask", { workerId: "w", waitMs: -1 }), /Invalid waitMs/);
      assert.equal(coordinator.status().waiting, 0);
    } finally {
      rpc.close();
      await coordinator.close();
    }
  });
});

Deno.test("closing the coordinator answers the asks it holds", async () => {
  await withTempDir(async (dir) => {
    const { coordinator, client } = await start(dir);
    const rpc = client();
    try {
      assert.equal((await rpc.call<Answer>("mr.ask", { workerId: "busy" })).type, "map");
      const held = rpc.call<Answer>("mr.ask", { workerId: "w", waitMs: 600_000 }).catch((e) => e);
      await parked(coordinator, 1);
      await coordinator.close();
      // Answered "wait" or cut off with the connection; either way no hold timer is left behind
      // (the test sanitizer fails on a leaked timer).
      const outcome = await held;
      assert.ok(outcome instanceof Error || outcome.type === "wait", String(outcome));
    } finally {
      rpc.close();
      await coordinator.close();
    }
  });
});

Deno.test("a report and the next ask sent back to back: the ask sees what the report did", async () => {
  await withTempDir(async (dir) => {
    // Two inputs, two map tasks; the worker pipelines each report with its next ask.
    await Deno.writeTextFile(join(dir, "b.txt"), "second input\n");
    const { coordinator, client } = await start(dir, {
      files: [join(dir, "in.txt"), join(dir, "b.txt")],
    });
    const rpc = client();
    const io = { bytesRead: 1, bytesWritten: 1 };
    try {
      assert.equal((await rpc.call<Answer>("mr.ask", { workerId: "w" })).task, 0);
      // Done: the next ask gets the other map, not map 0 again as if the reply had been lost.
      const [accepted, next] = await Promise.all([
        rpc.call("mr.report", { ...mapReport, workerId: "w", attempt: 1 }),
        rpc.call<Answer>("mr.ask", { workerId: "w" }),
      ]);
      assert.deepEqual(accepted, { accepted: true });
      assert.deepEqual([next.type, next.task, next.attempt], ["map", 1, 1]);
      // Failed: the next ask gets a new attempt of it, not the failed one back.
      const failed = { ...mapReport, workerId: "w", task: 1, attempt: 1, ok: false, error: "E" };
      const [, retry] = await Promise.all([
        rpc.call("mr.report", failed),
        rpc.call<Answer>("mr.ask", { workerId: "w" }),
      ]);
      assert.deepEqual([retry.type, retry.task, retry.attempt], ["map", 1, 2]);
      await rpc.call("mr.report", { ...mapReport, workerId: "w", task: 1, attempt: 2 });
      // A reduce reported done without its output: given back before the ask is handled, so
      // the ask gets a new attempt rather than the one that produced nothing.
      assert.equal((await rpc.call<Answer>("mr.ask", { workerId: "w" })).type, "reduce");
      const reduce = { workerId: "w", kind: "reduce", task: 0, attempt: 1, ok: true, ...io };
      const [, again] = await Promise.all([
        rpc.call("mr.report", reduce),
        rpc.call<Answer>("mr.ask", { workerId: "w" }),
      ]);
      assert.deepEqual([again.type, again.task, again.attempt], ["reduce", 0, 2]);
    } finally {
      rpc.close();
      await coordinator.close();
    }
  });
});
