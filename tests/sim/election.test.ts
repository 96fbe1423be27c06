/**
 * Raft 2A scenarios (elections) plus PreVote/CheckQuorum behaviour, in the simulator on virtual
 * time. Timing: 10 ms ticks, heartbeat 50 ms, election timeout 300-600 ms.
 */
import assert from "node:assert/strict";
import { withCluster } from "./cluster.ts";

Deno.test("InitialElection: one leader, terms agree and stay put without failures", async () => {
  await withCluster("InitialElection", { n: 3 }, async (c) => {
    await c.checkOneLeader();
    await c.run(50);
    const term1 = c.checkTerms();
    assert.ok(term1 >= 1, `term is ${term1}`);
    await c.run(2000);
    const term2 = c.checkTerms();
    assert.equal(term2, term1, "term changed without failures");
    await c.checkOneLeader();
  });
});

Deno.test("ReElection: leader loss, minority without leader, rejoin", async () => {
  await withCluster("ReElection", { n: 3 }, async (c) => {
    const leader1 = await c.checkOneLeader();
    c.disconnect(leader1);
    await c.checkOneLeader();
    c.connect(leader1);
    const leader2 = await c.checkOneLeader();
    c.disconnect(leader2);
    c.disconnect((leader2 % 3) + 1);
    await c.run(2000);
    c.checkNoLeader();
    c.connect((leader2 % 3) + 1);
    await c.checkOneLeader();
    c.connect(leader2);
    await c.checkOneLeader();
  });
});

Deno.test("ManyElections: 7 nodes, 9 rounds of 3 random disconnections", async () => {
  await withCluster("ManyElections", { n: 7 }, async (c) => {
    await c.checkOneLeader();
    for (let i = 0; i < 9; i++) {
      const cut = [1, 2, 3].map(() => 1 + Math.floor(c.rand() * 7));
      for (const id of cut) c.disconnect(id);
      await c.checkOneLeader();
      for (const id of cut) c.connect(id);
    }
    await c.checkOneLeader();
  });
});
