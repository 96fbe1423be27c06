import assert from "node:assert/strict";
import { Scheduler } from "../../mr/scheduler.ts";

const files = ["a.txt", "b.txt", "c.txt"];

function scheduler(maxFailures = 3): Scheduler {
  return new Scheduler({ files, nReduce: 2, taskTimeoutMs: 10_000, maxFailures });
}

Deno.test("scheduler hands out each map once, then waits, then reduces after all maps", () => {
  const s = scheduler();
  assert.deepEqual(s.assign("w1", 0), {
    type: "map",
    task: 0,
    attempt: 1,
    file: "a.txt",
    nReduce: 2,
  });
  assert.deepEqual(s.assign("w2", 0), {
    type: "map",
    task: 1,
    attempt: 1,
    file: "b.txt",
    nReduce: 2,
  });
  assert.deepEqual(s.assign("w3", 1), {
    type: "map",
    task: 2,
    attempt: 1,
    file: "c.txt",
    nReduce: 2,
  });
  assert.deepEqual(s.assign("w4", 2), { type: "wait" });
  assert.equal(s.complete({ kind: "map", task: 0, attempt: 1, workerId: "w1" }, 3), true);
  assert.equal(s.complete({ kind: "map", task: 1, attempt: 1, workerId: "w2" }, 3), true);
  // One map still running: no reduce may start.
  assert.equal(s.phase, "map");
  assert.deepEqual(s.assign("w2", 4), { type: "wait" });
  assert.equal(s.complete({ kind: "map", task: 2, attempt: 1, workerId: "w3" }, 5), true);
  assert.equal(s.phase, "reduce");
  assert.deepEqual(s.assign("w2", 6), { type: "reduce", task: 0, attempt: 1, nMap: 3 });
  assert.deepEqual(s.assign("w1", 6), { type: "reduce", task: 1, attempt: 1, nMap: 3 });
  assert.deepEqual(s.assign("w4", 6), { type: "wait" });
  assert.equal(s.complete({ kind: "reduce", task: 1, attempt: 1, workerId: "w1" }, 7), true);
  assert.equal(s.done(), false);
  assert.equal(s.complete({ kind: "reduce", task: 0, attempt: 1, workerId: "w2" }, 8), true);
  assert.equal(s.done(), true);
  assert.equal(s.phase, "done");
  assert.deepEqual(s.assign("w5", 9), { type: "done" });
  assert.deepEqual(s.tasks().map((t) => t.attempts), [1, 1, 1, 1, 1]);
  assert.deepEqual(
    s.workers().map((w) => [w.id, w.tasksDone, w.lastContact]),
    [["w1", 2, 7], ["w2", 2, 8], ["w3", 1, 5], ["w4", 0, 6], ["w5", 0, 9]],
  );
});

Deno.test("a worker that asks again while holding a task gets the same task back", () => {
  // A worker runs one task at a time, so a second ask means the first reply never reached it
  // (a dropped connection, a timed-out call): handing out another task would strand the first
  // until its timeout.
  const s = scheduler();
  const first = s.assign("w1", 1000);
  assert.deepEqual(s.assign("w1", 2000), first);
  assert.deepEqual(s.assign("w2", 2000), {
    type: "map",
    task: 1,
    attempt: 1,
    file: "b.txt",
    nReduce: 2,
  });
  // The timeout counts from the repeated hand-out, when the worker can start.
  assert.deepEqual(s.expire(11_999), []);
  assert.deepEqual(s.expire(12_000).map((t) => [t.index, t.worker]), [[0, "w1"], [1, "w2"]]);
  assert.equal(s.tasks()[0].attempts, 1);
});

Deno.test("scheduler re-issues a task exactly when taskTimeout has passed", () => {
  const s = scheduler();
  s.assign("w1", 1000); // map 0
  s.assign("w2", 4000); // map 1
  s.assign("w3", 4000); // map 2
  assert.deepEqual(s.expire(10_999), []); // 9999 ms: not yet
  const expired = s.expire(11_000); // exactly 10 s after map 0 went out
  assert.deepEqual(expired.map((t) => [t.kind, t.index, t.worker]), [["map", 0, "w1"]]);
  assert.deepEqual(s.expire(11_000), [], "an idle task does not expire again");
  // The next ask gets the re-issued task, as attempt 2.
  assert.deepEqual(s.assign("w4", 11_001), {
    type: "map",
    task: 0,
    attempt: 2,
    file: "a.txt",
    nReduce: 2,
  });
  assert.deepEqual(s.expire(13_999).map((t) => t.index), []);
  assert.deepEqual(s.expire(14_000).map((t) => t.index), [1, 2]);
});

Deno.test("scheduler accepts the first completion of a re-issued task and ignores the second", () => {
  const s = new Scheduler({ files: ["a.txt"], nReduce: 1, taskTimeoutMs: 100 });
  s.assign("slow", 0);
  s.expire(100);
  s.assign("fast", 100);
  assert.equal(s.complete({ kind: "map", task: 0, attempt: 2, workerId: "fast" }, 150), true);
  assert.equal(s.phase, "reduce");
  // The stalled first attempt finishes later: harmless, not counted twice.
  assert.equal(s.complete({ kind: "map", task: 0, attempt: 1, workerId: "slow" }, 160), false);
  assert.deepEqual(s.progress(), { mapsDone: 1, reducesDone: 0 });
  // A late completion from the timed-out attempt also counts when it comes first.
  s.assign("fast", 200);
  s.expire(300);
  assert.equal(s.complete({ kind: "reduce", task: 0, attempt: 1, workerId: "fast" }, 301), true);
  assert.equal(s.done(), true);
});

Deno.test("scheduler retries a failing task, then fails the job naming task and error", () => {
  const s = scheduler(3);
  s.assign("w1", 0); // map 0
  s.fail({ kind: "map", task: 0, attempt: 1, workerId: "w1", error: "Error: boom" }, 1);
  assert.equal(s.phase, "map");
  // Re-queued at once (no timeout wait), as attempt 2.
  assert.deepEqual(s.assign("w2", 2), {
    type: "map",
    task: 0,
    attempt: 2,
    file: "a.txt",
    nReduce: 2,
  });
  s.fail({ kind: "map", task: 0, attempt: 2, workerId: "w2", error: "Error: boom" }, 3);
  s.assign("w1", 4);
  assert.equal(s.phase, "map");
  s.fail({ kind: "map", task: 0, attempt: 3, workerId: "w1", error: "Error: boom again" }, 5);
  assert.equal(s.phase, "failed");
  assert.match(
    s.error!,
    /^map task 0 \(a\.txt\) failed 3 times, last on worker w1: Error: boom again$/,
  );
  assert.deepEqual(s.assign("w3", 6), { type: "failed", error: s.error });
  assert.equal(s.done(), false);
});

Deno.test("a stale attempt's failure does not cancel the newer running attempt", () => {
  const s = scheduler();
  s.assign("w1", 0); // map 0 attempt 1
  s.expire(10_000);
  s.assign("w2", 10_000); // map 0 attempt 2
  s.fail({ kind: "map", task: 0, attempt: 1, workerId: "w1", error: "Error: late" }, 10_001);
  const task = s.tasks()[0];
  assert.equal(task.state, "running");
  assert.equal(task.worker, "w2");
  assert.equal(task.failures, 1);
  // map 1 and map 2 are next; map 0 is not handed out a third time.
  assert.equal((s.assign("w3", 10_002) as { task: number }).task, 1);
});

Deno.test("scheduler rejects reports for tasks or attempts that were never handed out", () => {
  const s = scheduler();
  assert.throws(
    () => s.complete({ kind: "map", task: 7, attempt: 1, workerId: "w" }, 0),
    RangeError,
  );
  assert.throws(
    () => s.complete({ kind: "map", task: 0, attempt: 1, workerId: "w" }, 0),
    /has no attempt 1/,
  );
  s.assign("w", 0);
  assert.throws(
    () => s.complete({ kind: "map", task: 0, attempt: 2, workerId: "w" }, 0),
    RangeError,
  );
  // A reduce report during the map phase cannot complete anything.
  assert.throws(() => s.complete({ kind: "reduce", task: 0, attempt: 1, workerId: "w" }, 0));
  assert.throws(() => new Scheduler({ files: [], nReduce: 1, taskTimeoutMs: 1 }), RangeError);
  assert.throws(() => new Scheduler({ files, nReduce: 0, taskTimeoutMs: 1 }), RangeError);
});

Deno.test("expire does nothing once the job is over", () => {
  const s = new Scheduler({ files: ["a"], nReduce: 1, taskTimeoutMs: 1 });
  s.assign("w", 0);
  s.complete({ kind: "map", task: 0, attempt: 1, workerId: "w" }, 0);
  s.assign("w", 0);
  s.complete({ kind: "reduce", task: 0, attempt: 1, workerId: "w" }, 0);
  assert.deepEqual(s.expire(1_000_000), []);
  assert.equal(s.done(), true);
});

Deno.test("a failure report resent for the same attempt counts once", () => {
  const s = scheduler(2);
  s.assign("w1", 0);
  const report = { kind: "map" as const, task: 0, attempt: 1, workerId: "w1", error: "Error: x" };
  s.fail(report, 1);
  s.fail(report, 2); // the worker retried after an RPC timeout
  assert.notEqual(s.phase, "failed");
  assert.equal(s.tasks().find((t) => t.kind === "map" && t.index === 0)?.failures, 1);
});
