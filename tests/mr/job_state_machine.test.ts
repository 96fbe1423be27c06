import assert from "node:assert/strict";
import { encodeCommand } from "../../kv/commands.ts";
import { ServiceDispatcher } from "../../kv/service_dispatcher.ts";
import { KvStateMachine } from "../../kv/state_machine.ts";
import {
  decodeJobCommand,
  encodeJobCommand,
  type JobCommand,
  MAX_JOB_COMMAND_BYTES,
} from "../../mr/job_commands.ts";
import { jobSpec as spec } from "./job_helpers.ts";
import {
  type JobApplyResult,
  JobStateMachine,
  MAX_FINISHED_JOBS,
  MAX_TASK_FAILURES,
} from "../../mr/job_state_machine.ts";

function mapCommit(job: string, index: number, worker: string, nReduce: number): JobCommand {
  return {
    kind: "commit",
    time: 100 + index,
    job,
    task: "map",
    index,
    attempt: 1,
    worker,
    address: `${worker}:9000`,
    sizes: new Array(nReduce).fill(index),
    crcs: new Array(nReduce).fill(7),
  };
}

function reduceCommit(job: string, index: number, worker: string): JobCommand {
  return { kind: "commit", time: 200 + index, job, task: "reduce", index, attempt: 2, worker };
}

/** A seeded stream of commands covering every kind, valid and not. */
function commandStream(seed: number, count: number): JobCommand[] {
  let s = seed;
  const rand = (n: number) => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s % n;
  };
  const commands: JobCommand[] = [];
  const jobs: string[] = [];
  for (let i = 0; i < count; i++) {
    const pick = rand(10);
    const job = jobs.length > 0 ? jobs[rand(jobs.length)] : "none";
    const worker = `w${rand(3)}`;
    if (pick === 0 || jobs.length === 0) {
      const id = `job${i}`;
      jobs.push(id);
      commands.push({ kind: "submit", time: i, id, spec: spec(1 + rand(4), 1 + rand(3)) });
    } else if (pick < 5) commands.push(mapCommit(job, rand(5), worker, 1 + rand(3)));
    else if (pick < 7) commands.push(reduceCommit(job, rand(3), worker));
    else if (pick === 7) {
      commands.push({
        kind: "task_failed",
        time: i,
        job,
        task: rand(2) === 0 ? "map" : "reduce",
        index: rand(3),
        attempt: 1,
        worker,
        error: "Error: boom",
      });
    } else if (pick === 8) commands.push({ kind: "worker_dead", time: i, worker });
    else commands.push({ kind: "finish", time: i, job, state: "cancelled" });
  }
  return commands;
}

Deno.test("job commands: encode and decode round-trip every kind, tagged 0xC7", () => {
  for (const command of commandStream(1, 200)) {
    const data = encodeJobCommand(command);
    assert.equal(data[0], 0xc7);
    assert.deepEqual(decodeJobCommand(data), command);
  }
});

Deno.test("job commands: a spec over the size limit is refused with the limit named", () => {
  const big = { ...spec(1, 1), app: "x".repeat(MAX_JOB_COMMAND_BYTES) };
  assert.throws(
    () => encodeJobCommand({ kind: "submit", time: 1, id: "a", spec: big }),
    /Job command too large: \d+ bytes, limit 1048576/,
  );
});

Deno.test("job table: maps then reduces commit once each; the last reduce makes the job done", () => {
  const table = new JobStateMachine();
  assert.deepEqual(table.apply({ kind: "submit", time: 1, id: "j", spec: spec(2, 2) }), {
    ok: true,
    accepted: true,
  });
  // A reduce cannot commit before every map.
  assert.deepEqual(table.apply(reduceCommit("j", 0, "w1")), { ok: true, accepted: false });
  assert.deepEqual(table.apply(mapCommit("j", 0, "w1", 2)), { ok: true, accepted: true });
  // A second commit of the same map (a backup, a re-issued attempt) loses.
  assert.deepEqual(table.apply(mapCommit("j", 0, "w2", 2)), { ok: true, accepted: false });
  assert.equal(table.job("j")!.maps[0]!.worker, "w1");
  assert.equal(table.apply(mapCommit("j", 1, "w2", 2)).ok, true);
  assert.equal(table.apply(reduceCommit("j", 0, "w1")).ok, true);
  assert.equal(table.job("j")!.state, "running");
  table.apply(reduceCommit("j", 1, "w2"));
  const job = table.job("j")!;
  assert.equal(job.state, "done");
  assert.equal(job.finishedAt, 201);
  assert.equal(job.spec.app, "", "a finished job forgets its app source");
  // Nothing changes a finished job.
  assert.deepEqual(table.apply({ kind: "worker_dead", time: 300, worker: "w1" }), {
    ok: true,
    accepted: false,
    rerun: [],
  });
  assert.equal(table.job("j")!.maps[0]!.worker, "w1");
});

Deno.test("job table: a dead worker's committed maps of running jobs run again", () => {
  const table = new JobStateMachine();
  table.apply({ kind: "submit", time: 1, id: "j", spec: spec(3, 1) });
  table.apply(mapCommit("j", 0, "w1", 1));
  table.apply(mapCommit("j", 1, "w2", 1));
  table.apply(mapCommit("j", 2, "w1", 1));
  const result = table.apply({ kind: "worker_dead", time: 5, worker: "w1" }) as JobApplyResult;
  assert.deepEqual(result, {
    ok: true,
    accepted: true,
    rerun: [{ job: "j", map: 0 }, { job: "j", map: 2 }],
  });
  const job = table.job("j")!;
  assert.deepEqual(job.maps.map((m) => m?.worker ?? null), [null, "w2", null]);
  assert.equal(job.reruns, 2);
  // A reduce waits for the re-run maps.
  assert.deepEqual(table.apply(reduceCommit("j", 0, "w2")), { ok: true, accepted: false });
});

Deno.test("job table: repeated failures of one task fail the job; cancel ends a running job", () => {
  const table = new JobStateMachine();
  table.apply({ kind: "submit", time: 1, id: "a", spec: spec(1, 1) });
  table.apply({ kind: "submit", time: 2, id: "b", spec: spec(1, 1) });
  for (let i = 1; i <= MAX_TASK_FAILURES; i++) {
    table.apply({
      kind: "task_failed",
      time: 10 + i,
      job: "a",
      task: "map",
      index: 0,
      attempt: i,
      worker: "w1",
      error: "Error: boom",
    });
  }
  assert.equal(table.job("a")!.state, "failed");
  assert.match(table.job("a")!.error!, /map task 0 failed 3 times, last on worker w1: Error: boom/);
  assert.deepEqual(table.apply({ kind: "finish", time: 20, job: "b", state: "cancelled" }), {
    ok: true,
    accepted: true,
  });
  assert.equal(table.job("b")!.state, "cancelled");
  assert.deepEqual(table.apply({ kind: "finish", time: 21, job: "b", state: "failed" }), {
    ok: true,
    accepted: false,
  });
  assert.deepEqual(table.apply({ kind: "finish", time: 21, job: "zz", state: "failed" }), {
    ok: false,
    error: "No such job: zz",
  });
  assert.deepEqual(table.apply({ kind: "submit", time: 3, id: "a", spec: spec(1, 1) }), {
    ok: false,
    error: "Job exists: a",
  });
});

Deno.test("job table: the history keeps the last finished jobs, running ones always", () => {
  const table = new JobStateMachine();
  table.apply({ kind: "submit", time: 0, id: "running", spec: spec(1, 1) });
  for (let i = 0; i < MAX_FINISHED_JOBS + 5; i++) {
    table.apply({ kind: "submit", time: i, id: `j${i}`, spec: spec(1, 1) });
    table.apply({ kind: "finish", time: i, job: `j${i}`, state: "cancelled" });
  }
  const ids = table.jobs().map((j) => j.id);
  assert.equal(ids.length, MAX_FINISHED_JOBS + 1);
  assert.equal(ids[0], "running");
  assert.equal(ids[1], "j5");
  assert.equal(ids.at(-1), `j${MAX_FINISHED_JOBS + 4}`);
});

Deno.test("job table: the same commands in the same order give the same state on every replica", () => {
  for (const seed of [1, 2, 3, 42, 1234]) {
    const commands = commandStream(seed, 400);
    const replicas = [new JobStateMachine(), new JobStateMachine(), new JobStateMachine()];
    const results = replicas.map((table) =>
      commands.map((c) => table.applyData(encodeJobCommand(c)))
    );
    assert.deepEqual(results[1], results[0], `seed ${seed}: results differ`);
    assert.deepEqual(results[2], results[0], `seed ${seed}: results differ`);
    const snapshots = replicas.map((table) => table.snapshot());
    assert.deepEqual(snapshots[1], snapshots[0], `seed ${seed}: states differ`);
    // A replica restored from a snapshot mid-way, then fed the rest, ends in the same state.
    const half = new JobStateMachine();
    commands.slice(0, 200).forEach((c) => half.apply(c));
    const late = new JobStateMachine();
    late.restore(half.snapshot());
    const tail = commands.slice(200).map((c) => late.apply(c));
    assert.deepEqual(tail, results[0].slice(200), `seed ${seed}: results after restore differ`);
    assert.deepEqual(late.snapshot(), snapshots[0], `seed ${seed}: restored state differs`);
    assert.ok(replicas[0].jobs().length > 0);
  }
});

Deno.test("dispatcher: KV and job commands reach their own machine; indexes stay the log's", () => {
  const kv = new KvStateMachine();
  const jobs = new JobStateMachine();
  const seen: number[] = [];
  const dispatcher = new ServiceDispatcher(kv, jobs, (index) => seen.push(index));
  const put = encodeCommand({ op: "put", key: "k", value: new Uint8Array([1]), time: 1 });
  assert.deepEqual(dispatcher.apply({ index: 1, term: 1, data: put }), { status: "ok" });
  const submit = encodeJobCommand({ kind: "submit", time: 2, id: "j", spec: spec(1, 1) });
  assert.deepEqual(dispatcher.apply({ index: 2, term: 1, data: submit }), {
    ok: true,
    accepted: true,
  });
  assert.equal(kv.appliedIndex, 2, "the KV machine counts the job entry as a no-op");
  assert.equal(kv.size, 1);
  assert.deepEqual(seen, [2]);
  // Garbage that is not tagged stays the KV machine's, with its usual "invalid" result.
  const garbage = dispatcher.apply({ index: 3, term: 1, data: new Uint8Array([0x90]) });
  assert.equal((garbage as { status: string }).status, "invalid");
  assert.equal(jobs.jobs().length, 1);
  // A replayed entry below the applied index is skipped.
  assert.equal(dispatcher.apply({ index: 2, term: 1, data: submit }), undefined);
});

Deno.test("dispatcher: snapshots are the KV bytes alone without jobs, sectioned with them", () => {
  const kv = new KvStateMachine();
  const dispatcher = new ServiceDispatcher(kv, new JobStateMachine());
  const put = encodeCommand({ op: "put", key: "k", value: new Uint8Array([1, 2]), time: 1 });
  dispatcher.apply({ index: 1, term: 1, data: put });
  const plain = dispatcher.snapshot();
  assert.deepEqual(plain, kv.snapshot(), "without jobs the snapshot is the KV one, unchanged");
  // An existing KV-only snapshot restores into a dispatcher.
  const fromOld = new ServiceDispatcher(new KvStateMachine(), new JobStateMachine());
  fromOld.restore(plain);
  dispatcher.apply({
    index: 2,
    term: 1,
    data: encodeJobCommand({ kind: "submit", time: 2, id: "j", spec: spec(2, 1) }),
  });
  const sectioned = dispatcher.snapshot();
  assert.equal(sectioned[0], 0xc7);
  const kv2 = new KvStateMachine();
  const jobs2 = new JobStateMachine();
  new ServiceDispatcher(kv2, jobs2).restore(sectioned);
  assert.deepEqual(kv2.get("k"), new Uint8Array([1, 2]));
  assert.equal(kv2.appliedIndex, 2);
  assert.equal(jobs2.job("j")!.nMap, 2);
});
