/** The simulator's flight recorder: what a failing run prints besides its seed. */
import assert from "node:assert/strict";
import { cmd, withCluster } from "./cluster.ts";
import { EventRing } from "./events.ts";

Deno.test("EventRing keeps the newest events, oldest first, and counts the forgotten", () => {
  const ring = new EventRing(3);
  for (let i = 1; i <= 5; i++) ring.note(i, `e${i}`, i % 2 === 0 ? 7 : undefined);
  assert.equal(ring.total, 5);
  assert.deepEqual(ring.lines().map((l) => l.trim()), [
    "3.0  e3",
    "4.0  node 7: e4",
    "5.0  e5",
  ]);
});

Deno.test("A failing simulator run prints its seed, the last events and the nodes", async () => {
  const printed: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void printed.push(args.join(" "));
  try {
    await assert.rejects(
      withCluster("EventsOnFailure", { n: 3, seed: 42, traceEvents: 200 }, async (c) => {
        await c.one(cmd("x"), 3, true);
        const leader = await c.checkOneLeader();
        c.disconnect(leader);
        await c.run(1000);
        throw new Error("deliberate failure");
      }),
      /deliberate failure/,
    );
  } finally {
    console.error = original;
  }
  const out = printed.join("\n");
  assert.match(out, /EventsOnFailure failed with SEED=42/);
  assert.match(out, /SEED=42, virtual t=\d+ ms; last \d+ events/);
  // The events a reader needs to see what happened: the election, the commit, the cut-off
  // leader and the messages it could no longer deliver, then a new leader in a later term.
  assert.match(out, /node \d: leader t1/);
  assert.match(out, /node \d: commit 2/);
  assert.match(out, /node \d: disconnect/);
  assert.match(out, /drop \w+ \d>\d t\d .*\(link down\)/);
  assert.match(out, /send (preVote|vote) \d>\d t2 last=2\/1/);
  assert.match(out, /node \d: leader t2/);
  assert.match(out, /nodes:\n {2}1: /);
});
