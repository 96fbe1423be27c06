/**
 * Membership changes and leadership transfer in the simulator: learners replicate but never
 * count, a learner is promoted and a voter removed (the leader included), a one-node cluster
 * grows to three, leadership moves on request, and the fixed scenario of Ongaro's 2015
 * single-server-change bug shows the own-term rule keeps consecutive majorities overlapping.
 */
import assert from "node:assert/strict";
import { ChangeRefusedError } from "../../raft/errors.ts";
import type { ConfChange } from "../../raft/membership.ts";
import type { NodeId } from "../../raft/types.ts";
import { type Cluster, cmd, withCluster } from "./cluster.ts";

/** Proposes a change on the current leader and runs until it is applied there. */
async function change(c: Cluster, ch: ConfChange): Promise<void> {
  const deadline = c.now + 10_000;
  while (c.now < deadline) {
    const leader = await c.checkOneLeader();
    let outcome: "ok" | "retry" | Error | undefined;
    c.node(leader)!.changeMembership(ch).then(
      () => outcome = "ok",
      (e) => outcome = e instanceof ChangeRefusedError && !/retry/.test(e.message) ? e : "retry",
    );
    while (outcome === undefined && c.now < deadline) await c.run(20);
    if (outcome === "ok") return;
    if (outcome instanceof Error) throw outcome;
    await c.run(100);
  }
  throw new Error(`Change ${JSON.stringify(ch)} not applied in 10 s: ${c.describe()}`);
}

function voters(c: Cluster, id: NodeId): NodeId[] {
  return c.node(id)!.membership()!.conf.peers;
}

Deno.test("A learner replicates but never counts; promoted, it does; a removed voter stops", async () => {
  await withCluster("membership basic", { n: 3 }, async (c) => {
    await c.one(cmd("a"), 3, false);
    await change(c, { type: "addLearner", id: 4, addr: "h:4" });
    await c.addNode(4);
    const idx = await c.one(cmd("b"), 4, true);
    assert.ok(c.applied(4) >= idx, "the learner applies what the voters commit");
    // With two voters cut off, the leader and the learner are no quorum: nothing commits.
    const leader = await c.checkOneLeader();
    const others = [1, 2, 3].filter((id) => id !== leader);
    for (const id of others) c.disconnect(id);
    const r = await c.start1(leader, cmd("minority"));
    await c.run(1000);
    assert.ok(c.applied(4) < r.index, "a learner must not complete a quorum");
    for (const id of others) c.connect(id);
    await c.run(1000);
    await change(c, { type: "promote", id: 4 });
    await change(c, { type: "remove", id: 3 });
    await c.run(500); // followers learn the commit with the next heartbeat
    for (const id of [1, 2, 4]) assert.deepEqual(voters(c, id), [1, 2, 4]);
    // The removed follower is told too (the leader feeds it a while longer), so it knows.
    assert.deepEqual(voters(c, 3), [1, 2, 4]);
    assert.deepEqual(c.node(3)!.membership()!.conf.removed, [3]);
    // Node 3 (removed) is cut off for good: writes still commit on 1, 2, 4.
    c.disconnect(3);
    await c.one(cmd("after"), 3, true);
    // Node 3 never leads again even when it times out: nobody answers its votes.
    await c.run(3000);
    assert.equal(c.getState(3).isLeader, false);
  });
});

Deno.test("Removing the leader: it hands over and steps down once the removal commits", async () => {
  await withCluster("membership remove leader", { n: 3 }, async (c) => {
    await c.one(cmd("a"), 3, false);
    const old = await c.checkOneLeader();
    const termBefore = c.getState(old).term;
    await change(c, { type: "remove", id: old });
    await c.run(200);
    const next = await c.checkOneLeader();
    assert.notEqual(next, old);
    assert.ok(!voters(c, next).includes(old));
    assert.equal(c.getState(old).isLeader, false);
    assert.ok(c.getState(next).term > termBefore);
    const rest = c.ids.filter((id) => id !== old);
    const before = Math.max(...rest.map((id) => c.applied(id)));
    await c.one(cmd("b"), 2, true);
    assert.ok(Math.min(...rest.map((id) => c.applied(id))) > before);
  });
});

Deno.test("Grow a one-node cluster to three through learners", async () => {
  await withCluster("membership grow", { n: 1 }, async (c) => {
    await c.one(cmd("solo"), 1, false);
    for (const id of [2, 3]) {
      await change(c, { type: "addLearner", id, addr: `h:${id}` });
      await c.addNode(id);
      await c.one(cmd(`catch-up ${id}`), id, true);
      await change(c, { type: "promote", id });
    }
    await c.run(500);
    for (const id of [1, 2, 3]) assert.deepEqual(voters(c, id), [1, 2, 3]);
    // Now any one node may fail.
    await c.crash(1);
    await c.one(cmd("two of three"), 2, true);
  });
});

Deno.test("Leadership transfer: the target leads; proposals pause; abandoned if it is down", async () => {
  await withCluster("membership transfer", { n: 3 }, async (c) => {
    await c.one(cmd("a"), 3, false);
    const old = await c.checkOneLeader();
    const target = c.ids.find((id) => id !== old)!;
    let newLeader = 0;
    c.node(old)!.transferLeadership(target).then((l) => newLeader = l);
    // While it runs, the old leader takes no proposals.
    const during = await c.start1(old, cmd("during"));
    assert.equal(during.isLeader, false);
    const t0 = c.now;
    while (newLeader === 0 && c.now - t0 < 5000) await c.run(10);
    assert.equal(newLeader, target);
    // No election timeout passed: the handover took a few round trips.
    assert.ok(c.now - t0 < 300, `transfer took ${c.now - t0} ms`);
    assert.equal(c.getState(target).isLeader, true);
    await c.one(cmd("b"), 3, true);
    // A transfer to a node that is down is abandoned and proposals resume.
    const third = c.ids.find((id) => id !== target && id !== old)!;
    await c.crash(third);
    await c.one(cmd("c"), 2, true);
    let failed: Error | undefined;
    c.node(target)!.transferLeadership(third).catch((e) => failed = e);
    while (failed === undefined && c.now - t0 < 10_000) await c.run(20);
    assert.match(String(failed), /did not finish within an election timeout/);
    assert.equal(c.getState(target).isLeader, true);
    await c.one(cmd("d"), 2, true);
    // Alone (the others down), the leader steps down during the transfer: the caller still
    // gets an answer rather than waiting forever.
    await c.crash(old);
    let alone: Error | undefined;
    c.node(target)!.transferLeadership(old).catch((e) => alone = e);
    const t1 = c.now;
    while (alone === undefined && c.now - t1 < 10_000) await c.run(20);
    assert.match(String(alone), /did not finish/);
  });
});

Deno.test("Ongaro 2015 shape: a new leader changes membership only after its own term commits", async () => {
  await withCluster("membership 2015", { n: 4 }, async (c) => {
    await c.one(cmd("a"), 4, false);
    const l1 = await c.checkOneLeader();
    // Leader 1 proposes a change that no one else receives (it is cut off right away).
    const victim = c.ids.find((id) => id !== l1)!;
    c.disconnect(l1);
    const stuck = c.node(l1)!.changeMembership({ type: "remove", id: victim });
    stuck.catch(() => {});
    await c.run(50);
    // The others elect leader 2 in a later term. Before its no-op commits it must refuse a
    // change: otherwise its change and leader 1's could form majorities that do not overlap.
    let l2 = 0;
    let refusedEarly: string | undefined;
    // Messages take 0.1-1 ms: looking every 0.05 ms catches the leader before any ack lands.
    for (let t = 0; t < 5000 && l2 === 0; t += 0.05) {
      await c.run(0.05);
      for (const id of c.ids) {
        if (id === l1 || !c.getState(id).isLeader) continue;
        l2 = id;
        // Propose at once, before any acknowledgement of the no-op can arrive.
        const r = c.node(id)!.changeMembership({ type: "addLearner", id: 9, addr: "h:9" });
        r.catch((e) => refusedEarly = e.message);
        await Promise.resolve();
      }
    }
    assert.ok(l2 !== 0, "a new leader was elected");
    assert.match(refusedEarly ?? "accepted", /not committed an entry of its term/);
    // Once its own term committed, leader 2 may remove a node: the same kind of change.
    await c.one(cmd("b"), 3, true);
    const other = c.ids.find((id) => id !== l1 && id !== l2 && id !== victim)!;
    await change(c, { type: "remove", id: other });
    // Leader 1 returns: its stale change is overwritten, never in force anywhere.
    c.connect(l1);
    await c.run(2000);
    await c.one(cmd("c"), 2, true);
    for (const id of c.ids) {
      if (id === other) continue;
      const conf = c.node(id)!.membership()!.conf;
      assert.ok(!conf.peers.includes(other), `node ${id} still has ${other}`);
      assert.ok(conf.peers.includes(victim), `node ${id} applied leader ${l1}'s stale removal`);
    }
    await assert.rejects(stuck);
  });
});
