import assert from "node:assert/strict";
import { Deadlines } from "../../net/deadlines.ts";

const never = () => new Promise<never>(() => {});

Deno.test("Deadlines: a promise that settles in time wins, value or error", async () => {
  const deadlines = new Deadlines(5);
  const far = performance.now() + 60_000;
  assert.equal(await deadlines.race(Promise.resolve(7), far, () => new Error("late")), 7);
  await assert.rejects(
    deadlines.race(Promise.reject(new RangeError("own")), far, () => new Error("late")),
    RangeError,
  );
  assert.equal(deadlines.pending, 0);
  // The sweep that finds nothing pending stops the interval (the test sanitizer checks it).
  await new Promise((resolve) => setTimeout(resolve, 20));
});

Deno.test("Deadlines: a promise still pending at its deadline rejects with onTimeout()", async () => {
  const deadlines = new Deadlines(5);
  const start = performance.now();
  const late = deadlines.race(never(), start + 30, () => new TypeError("deadline passed"));
  const inTime = deadlines.race(
    new Promise((resolve) => setTimeout(() => resolve("ok"), 5)),
    start + 10_000,
    () => new Error("should not expire"),
  );
  await assert.rejects(late, TypeError);
  assert.ok(performance.now() >= start + 30, "expired before its deadline");
  assert.equal(await inTime, "ok");
  assert.equal(deadlines.pending, 0);
  await new Promise((resolve) => setTimeout(resolve, 20));
});

Deno.test("Deadlines: close() stops the timer and leaves pending races to their promises", async () => {
  const deadlines = new Deadlines(5);
  let settle!: (v: string) => void;
  const race = deadlines.race(
    new Promise<string>((resolve) => (settle = resolve)),
    performance.now() + 10,
    () => new Error("expired after close"),
  );
  deadlines.close();
  await new Promise((resolve) => setTimeout(resolve, 30));
  settle("done");
  assert.equal(await race, "done");
});

Deno.test("Deadlines: add() fires once its time has passed, cancel() keeps it from firing", async () => {
  const deadlines = new Deadlines(5);
  const fired: string[] = [];
  deadlines.add(performance.now() + 10, () => fired.push("due"));
  const cancelled = deadlines.add(performance.now() + 10, () => fired.push("cancelled"));
  deadlines.cancel(cancelled);
  assert.equal(deadlines.pending, 1);
  await new Promise((resolve) => setTimeout(resolve, 40));
  assert.deepEqual(fired, ["due"]);
  assert.equal(deadlines.pending, 0);
});
