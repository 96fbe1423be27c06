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

Deno.test("scheduler times an attempt from its last progress, not from its start", () => {
  const s = scheduler();
  s.assign("w1", 0); // map 0, attempt 1
  s.assign("w2", 0); // map 1, attempt 1
  // w1 keeps reporting progress; w2 reports none, and reports about attempts or tasks that are
  // not its own running attempt count for nothing.
  s.madeProgress("w1", "map", 0, 1, 6_000);
  s.madeProgress("w2", "map", 0, 1, 6_000); // not w2's task
  s.madeProgress("w2", "map", 1, 2, 6_000); // no such attempt
  s.madeProgress("w2", "reduce", 1, 1, 6_000); // not running
  assert.deepEqual(s.expire(10_000).map((t) => [t.index, t.worker]), [[1, "w2"]]);
  s.madeProgress("w1", "map", 0, 1, 14_000);
  assert.deepEqual(s.expire(23_999), [], "10 s after the last progress: not yet");
  assert.deepEqual(s.expire(24_000).map((t) => [t.index, t.worker]), [[0, "w1"]]);
  // Progress of an attempt that was given up does not bring it back.
  s.madeProgress("w1", "map", 0, 1, 24_500);
  assert.equal(s.tasks()[0].state, "idle");
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

const OUT = { address: "127.0.0.1:9", sizes: [1, 2], crcs: [3, 4] };

/** Runs every map of `s` to completion on the named workers (round robin) at time `now`. */
function finishMaps(s: Scheduler, workers: string[], now: number): void {
  for (let i = 0; s.phase === "map"; i++) {
    const worker = workers[i % workers.length];
    const a = s.assign(worker, now);
    assert.equal(a.type, "map");
    if (a.type !== "map") return;
    s.complete(
      { kind: "map", task: a.task, attempt: a.attempt, workerId: worker, output: OUT },
      now,
    );
  }
}

Deno.test("a lost worker's completed maps run again, and reduces wait for them", () => {
  const s = new Scheduler({ files, nReduce: 2, taskTimeoutMs: 10_000 });
  finishMaps(s, ["w1", "w2"], 0); // w1: maps 0 and 2, w2: map 1
  assert.equal(s.phase, "reduce");
  const reduce = s.assign("w2", 1);
  assert.deepEqual(reduce, { type: "reduce", task: 0, attempt: 1, nMap: 3 });
  assert.deepEqual(s.mapOutputs().map((o) => o?.worker), ["w1", "w2", "w1"]);

  const rerun = s.workerLost("w1", 2);
  assert.deepEqual(rerun.map((t) => t.index), [0, 2]);
  assert.deepEqual(s.mapOutputs().map((o) => o?.worker), [undefined, "w2", undefined]);
  assert.equal(s.counters().mapReruns, 2);
  assert.equal(s.workers().find((w) => w.id === "w1")?.alive, false);
  // Maps come first; no new reduce is handed out while a map output is missing.
  assert.deepEqual(s.assign("w3", 3), {
    type: "map",
    task: 0,
    attempt: 2,
    file: "a.txt",
    nReduce: 2,
  });
  assert.deepEqual(s.assign("w4", 3), {
    type: "map",
    task: 2,
    attempt: 2,
    file: "c.txt",
    nReduce: 2,
  });
  assert.deepEqual(s.assign("w5", 3), { type: "wait" });
  s.complete({ kind: "map", task: 0, attempt: 2, workerId: "w3", output: OUT }, 4);
  s.complete({ kind: "map", task: 2, attempt: 2, workerId: "w4", output: OUT }, 4);
  assert.equal(s.tasks()[0].reruns, 1);
  assert.deepEqual(s.mapOutputs().map((o) => o?.attempt), [2, 1, 2]);
  assert.deepEqual(s.assign("w5", 5), { type: "reduce", task: 1, attempt: 1, nMap: 3 });
  // The running reduce on w2 was never interrupted and may still complete.
  assert.equal(s.complete({ kind: "reduce", task: 0, attempt: 1, workerId: "w2" }, 6), true);
  // w1 comes back: it is alive again, a new worker whose old output was written off.
  s.touch("w1", 7, "127.0.0.1:10");
  assert.equal(s.workers().find((w) => w.id === "w1")?.alive, true);
  assert.equal(s.workers().find((w) => w.id === "w1")?.address, "127.0.0.1:10");
});

Deno.test("a lost worker's running attempt is handed out again without counting a failure", () => {
  const s = new Scheduler({ files, nReduce: 1, taskTimeoutMs: 10_000, workerTimeoutMs: 3000 });
  s.touch("w1", 0);
  s.assign("w1", 0); // map 0
  s.touch("w2", 2500);
  // Silent for the worker timeout: dead. w2 heard from 2500 ms ago is not.
  assert.deepEqual(s.expireWorkers(2999), { workers: [], rerun: [] });
  assert.deepEqual(s.expireWorkers(3000).workers, ["w1"]);
  const task = s.tasks()[0];
  assert.equal(task.state, "idle");
  assert.equal(task.failures, 0);
  assert.equal(task.timeouts, 0);
  assert.equal((s.assign("w2", 3001) as { task: number; attempt: number }).attempt, 2);
  assert.deepEqual(s.expireWorkers(3002).workers, [], "a dead worker is declared dead once");
});

Deno.test("fetch failures: a refused holder re-runs the map at once, others after 3 reports", () => {
  const s = new Scheduler({ files, nReduce: 2, taskTimeoutMs: 10_000 });
  finishMaps(s, ["w1"], 0);
  assert.equal(s.fetchFailed(0, 1, true, 1), true);
  assert.equal(s.tasks()[0].state, "idle");
  // A report about an output that was already replaced is stale: ignored.
  assert.equal(s.fetchFailed(0, 1, true, 2), false);
  assert.equal(s.fetchFailed(1, 1, false, 3), false);
  assert.equal(s.fetchFailed(1, 1, false, 4), false);
  assert.equal(s.tasks()[1].state, "done");
  assert.equal(s.fetchFailed(1, 1, false, 5), true);
  assert.equal(s.tasks()[1].state, "idle");
  assert.equal(s.counters().mapReruns, 2);
  assert.throws(() => s.fetchFailed(9, 1, true, 6), RangeError);
});

Deno.test("release gives a task back without counting a failure or a timeout", () => {
  const s = new Scheduler({ files: ["a"], nReduce: 1, taskTimeoutMs: 10_000, maxFailures: 1 });
  s.assign("w1", 0);
  s.release({ kind: "map", task: 0, attempt: 1, workerId: "w1" }, 1);
  const task = s.tasks()[0];
  assert.equal(task.state, "idle");
  assert.equal(task.failures, 0);
  assert.notEqual(s.phase, "failed");
});

Deno.test("a task that times out 3 times fails the job, naming the task and the limit", () => {
  const s = new Scheduler({ files: ["slow.txt"], nReduce: 1, taskTimeoutMs: 1000 });
  s.assign("w1", 0);
  assert.equal(s.expire(1000).length, 1);
  s.assign("w2", 1000);
  s.expire(2000);
  assert.equal(s.phase, "map");
  s.assign("w3", 2000);
  s.expire(3000);
  assert.equal(s.phase, "failed");
  assert.equal(
    s.error,
    "map task 0 (slow.txt) timed out 3 times (the limit is 3): no attempt finished within " +
      "the task timeout of 1000 ms, last on worker w3",
  );
  assert.deepEqual(s.assign("w4", 3001), { type: "failed", error: s.error });
});

Deno.test("timeouts count since the task last completed: a re-run map starts afresh", () => {
  const s = new Scheduler({ files: ["a"], nReduce: 1, taskTimeoutMs: 1000, maxTimeouts: 2 });
  s.assign("w1", 0);
  s.expire(1000); // one timeout
  s.assign("w2", 1000);
  s.complete({ kind: "map", task: 0, attempt: 2, workerId: "w2", output: OUT }, 1500);
  s.workerLost("w2", 1600); // its output is lost: the map runs again
  s.assign("w3", 1600);
  s.expire(2600); // a second timeout in all, the first since it completed
  assert.notEqual(s.phase, "failed");
  assert.equal(s.tasks()[0].timeouts, 2);
});

Deno.test("backup tasks: only for a straggler far slower than its finished peers", () => {
  const names = Array.from({ length: 10 }, (_, i) => `f${i}.txt`);
  const s = new Scheduler({ files: names, nReduce: 1, taskTimeoutMs: 600_000 });
  // Ten maps on ten workers; nine finish after 2-5 s (ordinary variance), map 9 stalls.
  for (let i = 0; i < 10; i++) s.assign(`w${i}`, 0);
  for (let i = 0; i < 9; i++) {
    s.complete(
      { kind: "map", task: i, attempt: 1, workerId: `w${i}`, output: OUT },
      2000 + 300 * i,
    );
  }
  // Median 3.2 s: 3x is 9.6 s. Running 9 s is ordinary variance: no backup.
  assert.deepEqual(s.assign("w0", 9000), { type: "wait" });
  // Past 3x the median: an idle worker gets a backup attempt.
  assert.deepEqual(s.assign("w1", 9700), {
    type: "map",
    task: 9,
    attempt: 2,
    file: "f9.txt",
    nReduce: 1,
  });
  // One backup per task.
  assert.deepEqual(s.assign("w2", 9800), { type: "wait" });
  assert.equal(s.counters().backupAttempts, 1);
  // The backup finishes first and wins; the straggler's late report is discarded.
  assert.equal(
    s.complete({ kind: "map", task: 9, attempt: 2, workerId: "w1", output: OUT }, 10_000),
    true,
  );
  assert.equal(
    s.complete({ kind: "map", task: 9, attempt: 1, workerId: "w9", output: OUT }, 11_000),
    false,
  );
  const task = s.tasks()[9];
  assert.equal(task.doneByBackup, true);
  assert.equal(task.backups, 1);
  assert.equal(task.worker, "w1");
  assert.equal(s.counters().backupWins, 1);
  assert.equal(s.phase, "reduce");
});

Deno.test("backup tasks: never before 90% of the phase is done, and never when turned off", () => {
  const names = ["a", "b", "c", "d"];
  const early = new Scheduler({ files: names, nReduce: 1, taskTimeoutMs: 600_000 });
  for (const w of ["w0", "w1", "w2", "w3"]) early.assign(w, 0);
  early.complete({ kind: "map", task: 0, attempt: 1, workerId: "w0", output: OUT }, 10);
  early.complete({ kind: "map", task: 1, attempt: 1, workerId: "w1", output: OUT }, 10);
  early.complete({ kind: "map", task: 2, attempt: 1, workerId: "w2", output: OUT }, 10);
  // 3 of 4 done (75%): even a task running 1000x the median gets no backup.
  assert.deepEqual(early.assign("w0", 10_000), { type: "wait" });

  const off = new Scheduler({
    files: ["a"],
    nReduce: 1,
    taskTimeoutMs: 600_000,
    backupTasks: false,
  });
  off.assign("w0", 0);
  off.complete({ kind: "map", task: 0, attempt: 1, workerId: "w0", output: OUT }, 10);
  off.assign("w0", 10); // the only reduce
  assert.deepEqual(off.assign("w1", 500_000), { type: "wait" });
  assert.equal(off.counters().backupAttempts, 0);
});
