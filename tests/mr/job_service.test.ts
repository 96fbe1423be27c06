import assert from "node:assert/strict";
import type { JobCommand } from "../../mr/job_commands.ts";
import type { JobAssignment } from "../../mr/job_rpc.ts";
import { JobService } from "../../mr/job_service.ts";
import { JobStateMachine } from "../../mr/job_state_machine.ts";
import { jobSpec } from "./job_helpers.ts";
import { jobView } from "../../mr/job_view.ts";

/** A job whose tasks never time out during a test. */
const spec60 = (nMap: number, nReduce: number) => jobSpec(nMap, nReduce, 60_000);

/** A leader whose proposals apply at once to one table; `term` and `leading` are settable. */
class FakeHost {
  readonly table = new JobStateMachine();
  readonly proposed: JobCommand[] = [];
  term = 1;
  leading = true;
  readonly lines: string[] = [];
  leaderTerm = () => (this.leading ? this.term : undefined);
  propose = (command: JobCommand) => {
    this.proposed.push(command);
    return Promise.resolve(this.table.apply(command));
  };
  log = (line: string) => this.lines.push(line);
}

function mapOf(a: JobAssignment | undefined): Extract<JobAssignment, { type: "map" }> {
  assert.equal(a?.type, "map", JSON.stringify(a));
  return a as Extract<JobAssignment, { type: "map" }>;
}

async function commitMap(
  service: JobService,
  a: Extract<JobAssignment, { type: "map" }>,
  w: string,
) {
  return await service.report({
    workerId: w,
    job: a.job,
    kind: "map",
    task: a.task,
    attempt: a.attempt,
    ok: true,
    bytesRead: 0,
    bytesWritten: 0,
    output: { address: `${w}:1`, sizes: [1], crcs: [2] },
  });
}

Deno.test("job service: a new term keeps committed maps and hands out only the rest", async () => {
  const host = new FakeHost();
  host.table.apply({ kind: "submit", time: 0, id: "aaaaaaaa", spec: spec60(3, 1) });
  const service = new JobService(host);
  service.heartbeat("w1", "w1:1");
  service.heartbeat("w2", "w2:1");
  const first = mapOf(service.ask("w1"));
  const second = mapOf(service.ask("w2"));
  assert.deepEqual(await commitMap(service, first, "w1"), { accepted: true });
  // A duplicate report of the same map is refused by the table.
  assert.deepEqual(await commitMap(service, first, "w2"), { accepted: false });
  assert.equal(jobView(host.table.job("aaaaaaaa")!).tasks.map.done, 1);

  // Leadership moves away and back (a new term): the running attempt of `second` is forgotten,
  // the committed map is not handed out again.
  host.term = 2;
  const handed = [mapOf(service.ask("w2")).task, mapOf(service.ask("w1")).task].sort();
  assert.deepEqual(handed, [second.task, 3 - first.task - second.task].sort());
  assert.ok(!handed.includes(first.task), "the committed map ran again");
  // Soft view: two maps running, one done; state "map".
  const view = jobView(host.table.job("aaaaaaaa")!, service.softView("aaaaaaaa"));
  assert.equal(view.state, "map");
  assert.deepEqual(view.tasks.map, { total: 3, done: 1, running: 2 });
});

Deno.test("job service: an attempt handed out by an earlier leader still commits", async () => {
  const host = new FakeHost();
  host.table.apply({ kind: "submit", time: 0, id: "bbbbbbbb", spec: spec60(1, 1) });
  const service = new JobService(host);
  service.heartbeat("w1", "w1:1");
  const old = mapOf(service.ask("w1"));
  host.term = 5; // a new leader never handed this attempt out
  assert.deepEqual(await commitMap(service, old, "w1"), { accepted: true });
  const reduce = service.ask("w1");
  assert.equal(reduce?.type, "reduce");
  assert.deepEqual((reduce as Extract<JobAssignment, { type: "reduce" }>).maps, [
    { map: 0, attempt: old.attempt, address: "w1:1", size: 1, crc: 2 },
  ]);
});

Deno.test("job service: a follower answers nothing; a silent holder's maps run again", async () => {
  const host = new FakeHost();
  host.table.apply({ kind: "submit", time: 0, id: "cccccccc", spec: spec60(2, 1) });
  const service = new JobService(host, { workerTimeoutMs: 50 });
  host.leading = false;
  assert.equal(service.ask("w1"), undefined);
  host.leading = true;
  service.heartbeat("w1", "w1:1");
  assert.deepEqual(await commitMap(service, mapOf(service.ask("w1")), "w1"), { accepted: true });
  // w1 goes silent; w2 keeps beating and asking until w1 is declared dead through the log.
  const deadline = Date.now() + 30_000;
  while (!host.proposed.some((c) => c.kind === "worker_dead") && Date.now() < deadline) {
    service.heartbeat("w2", "w2:1");
    service.ask("w2");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const dead = host.proposed.find((c) => c.kind === "worker_dead");
  assert.deepEqual(dead && { kind: dead.kind, worker: (dead as { worker: string }).worker }, {
    kind: "worker_dead",
    worker: "w1",
  });
  await new Promise((resolve) => setTimeout(resolve, 0));
  const job = host.table.job("cccccccc")!;
  assert.equal(job.reruns, 1);
  assert.ok(job.maps.every((m) => m === null), "the dead holder's map is no longer committed");
});

Deno.test(
  "job service: a map handed out again before the dead leader's commit of it applied: the " +
    "worker's repeat is refused, the scheduler learns the commit and the reduces start",
  async () => {
    const host = new FakeHost();
    host.table.apply({ kind: "submit", time: 0, id: "dddddddd", spec: spec60(2, 1) });
    host.term = 2;
    const service = new JobService(host);
    service.heartbeat("w1", "w1:1");
    service.heartbeat("w2", "w2:1");
    // The old leader committed maps 0 and 1, both by w1's attempt 1; this new leader's table
    // has not applied them yet, so both are handed out again.
    const again = mapOf(service.ask("w1"));
    assert.deepEqual([again.task, again.attempt], [0, 1]);
    const other = mapOf(service.ask("w2"));
    assert.deepEqual([other.task, other.attempt], [1, 1]);
    for (const [task, worker] of [[0, "w1"], [1, "w1"]] as const) {
      host.table.apply({
        kind: "commit",
        time: 1,
        job: "dddddddd",
        task: "map",
        index: task,
        attempt: 1,
        worker,
        address: `${worker}:1`,
        sizes: [1],
        crcs: [2],
      });
    }
    // The same attempt again, and another worker's: neither replaces the commit.
    assert.deepEqual(await commitMap(service, again, "w1"), { accepted: false });
    assert.deepEqual(await commitMap(service, other, "w2"), { accepted: false });
    const job = host.table.job("dddddddd")!;
    assert.equal(job.reruns, 0);
    assert.deepEqual(job.maps.map((m) => m?.worker), ["w1", "w1"]);
    assert.deepEqual(jobView(job, service.softView("dddddddd")).tasks.map, {
      total: 2,
      done: 2,
      running: 0,
    });
    // Neither worker is handed its map again: the one reduce goes out and the job completes.
    const reduce = service.ask("w1");
    assert.equal(reduce?.type, "reduce", JSON.stringify(reduce));
    assert.equal(service.ask("w2")?.type, "wait");
    const r = reduce as Extract<JobAssignment, { type: "reduce" }>;
    assert.deepEqual(
      await service.report({
        workerId: "w1",
        job: r.job,
        kind: "reduce",
        task: r.task,
        attempt: r.attempt,
        ok: true,
        bytesRead: 0,
        bytesWritten: 0,
      }),
      { accepted: true },
    );
    assert.equal(host.table.job("dddddddd")!.state, "done");
  },
);
