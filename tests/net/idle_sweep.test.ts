/** The HTTP listener's header and idle timeouts on one sweeping interval (net/idle_sweep.ts). */
import assert from "node:assert/strict";
import { IdleSweep, type SweptConnection } from "../../net/idle_sweep.ts";

function connection(): SweptConnection & { closedAt?: number } {
  const conn: SweptConnection & { closedAt?: number } = {
    active: 0,
    idleSince: 0,
    started: false,
    close: () => (conn.closedAt = performance.now()),
  };
  return conn;
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

Deno.test("IdleSweep: a connection without a request is closed after the header timeout, not before", async () => {
  let timeouts = 0;
  const sweep = new IdleSweep(50, 60_000, () => timeouts++);
  const slow = connection();
  const tracked = performance.now();
  sweep.track(slow);
  await until(() => slow.closedAt !== undefined, "the header timeout");
  assert.ok(slow.closedAt! - tracked >= 50, `closed after ${slow.closedAt! - tracked} ms`);
  assert.equal(timeouts, 1);
  // Nothing left to watch: the interval is stopped (the test's sanitizer checks it).
});

Deno.test("IdleSweep: a request in progress is never cut; the idle limit runs from its end", async () => {
  let timeouts = 0;
  const sweep = new IdleSweep(20, 60_000, () => timeouts++);
  const busy = connection();
  sweep.track(busy);
  busy.active = 1;
  busy.started = true;
  const quiet = connection();
  sweep.track(quiet);
  // Well past the header limit of both: only the one without a request in progress goes.
  await until(() => quiet.closedAt !== undefined, "the idle connection's timeout");
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(busy.closedAt, undefined, "a connection with a request in progress was closed");
  // Its request ends: now the idle limit (60 s) applies, which is far away.
  busy.active = 0;
  busy.idleSince = sweep.now;
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(busy.closedAt, undefined, "closed before its idle limit");
  assert.equal(timeouts, 1);
  sweep.close();
});

Deno.test("IdleSweep: the idle limit applies once a request has begun", async () => {
  const sweep = new IdleSweep(60_000, 30, () => {});
  const conn = connection();
  sweep.track(conn);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(conn.closedAt, undefined, "closed by the idle limit before any request");
  conn.started = true;
  conn.idleSince = sweep.now;
  await until(() => conn.closedAt !== undefined, "the idle timeout");
});

Deno.test("IdleSweep: forget() and close() stop watching; invalid limits are refused", () => {
  const sweep = new IdleSweep(10_000, 10_000, () => {});
  const a = connection();
  sweep.track(a);
  sweep.forget(a);
  const b = connection();
  sweep.track(b);
  sweep.close();
  assert.throws(() => new IdleSweep(0, 1000, () => {}), RangeError);
  assert.throws(() => new IdleSweep(1000, NaN, () => {}), RangeError);
});
