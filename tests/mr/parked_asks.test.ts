/** ParkedAsks: arrival order, the hold bound, superseded and dropped asks. */
import assert from "node:assert/strict";
import { ParkedAsks } from "../../mr/parked_asks.ts";

Deno.test("parked asks are served oldest first, once each, and only when there is an answer", async () => {
  const parked = new ParkedAsks<string>();
  const a = parked.park("a", 60_000, () => "timeout", "superseded");
  const b = parked.park("b", 60_000, () => "timeout", "superseded");
  const c = parked.park("c", 60_000, () => "timeout", "superseded");
  assert.equal(parked.size, 3);
  // One piece of work: the oldest ask gets it; the others stay parked.
  let work = 1;
  const offer = (key: string) => (work > 0 ? (work--, `task for ${key}`) : undefined);
  assert.equal(parked.serve(offer), 1);
  assert.equal(await a, "task for a");
  assert.equal(parked.size, 2);
  assert.equal(parked.serve(offer), 0, "nothing to give: nobody is answered");
  work = 5;
  assert.equal(parked.serve(offer), 2);
  assert.deepEqual(await Promise.all([b, c]), ["task for b", "task for c"]);
  assert.equal(parked.size, 0);
  assert.equal(work, 3, "each ask answered once");
});

Deno.test("a parked ask is answered when its hold is up, with the answer of that moment", async () => {
  const parked = new ParkedAsks<string>();
  let now = "wait";
  const asked = performance.now();
  const answer = parked.park("a", 30, () => now, "superseded");
  now = "backup task";
  assert.equal(await answer, "backup task");
  // Timers never fire early: the ask was held for its bound (a lower bound, not a time limit).
  assert.ok(performance.now() - asked >= 29, "held for the bound");
  assert.equal(parked.size, 0);
});

Deno.test("a second ask of one key supersedes the first; drop and dropAll answer at once", async () => {
  const parked = new ParkedAsks<string>();
  const first = parked.park("a", 60_000, () => "timeout", "superseded");
  const second = parked.park("a", 60_000, () => "timeout", "superseded");
  assert.equal(await first, "superseded");
  assert.equal(parked.size, 1);
  const other = parked.park("b", 60_000, () => "timeout", "superseded");
  parked.drop("a", "gone");
  assert.equal(await second, "gone");
  assert.equal(parked.size, 1);
  parked.dropAll((key) => `closing ${key}`);
  assert.equal(await other, "closing b");
  assert.equal(parked.size, 0);
  // Nothing left to answer, and no timer left running (the test's sanitizer checks that).
  assert.equal(parked.serve(() => "late"), 0);
});
