/**
 * Raft 2A scenarios (elections) plus PreVote/CheckQuorum behaviour, in the simulator on virtual
 * time. Timing: 10 ms ticks, heartbeat 50 ms, election timeout 300-600 ms.
 */
import assert from "node:assert/strict";
import { shuffled, withCluster } from "./cluster.ts";

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

Deno.test("Minority partition: no leader is ever elected on the minority side", async () => {
  await withCluster("MinorityPartition", { n: 5 }, async (c) => {
    const leader = await c.checkOneLeader();
    // Put the current leader in the minority: CheckQuorum must make it step down, and the
    // minority must never elect anyone.
    const minority = [leader, (leader % 5) + 1];
    const majority = c.ids.filter((id) => !minority.includes(id));
    c.partition(minority, majority);
    const term0 = c.getState(leader).term;
    await c.run(1500);
    for (let t = 0; t < 5000; t += 20) {
      await c.run(20);
      for (const id of minority) {
        assert.ok(!c.getState(id).isLeader, `minority node ${id} leads at t=${c.now}`);
      }
    }
    let majorityLeader = 0;
    for (const id of majority) if (c.getState(id).isLeader) majorityLeader = id;
    assert.ok(majorityLeader > 0, "the majority has no leader");
    assert.ok(c.getState(majorityLeader).term > term0);
  });
});

Deno.test("Election deadline: a leader within 5 virtual seconds whenever a majority is connected", async () => {
  await withCluster("ElectionDeadline", { n: 5 }, async (c) => {
    for (let round = 0; round < 20; round++) {
      const order = shuffled(c.ids, c.rand);
      const size = 3 + Math.floor(c.rand() * 3);
      const group = order.slice(0, size);
      c.partition(group, order.slice(size));
      const t0 = c.now;
      let elected = false;
      while (c.now - t0 <= 5000 && !elected) {
        await c.run(10);
        const top = Math.max(...group.map((id) => c.getState(id).term));
        elected = group.some((id) => {
          const s = c.getState(id);
          return s.isLeader && s.term === top;
        });
      }
      assert.ok(elected, `no leader within 5 s among ${group.join(",")} (round ${round})`);
      await c.run(c.rand() * 1000);
    }
  });
});

Deno.test("PreVote: a rejoining partitioned node does not disrupt a healthy leader", async () => {
  await withCluster("PreVoteRejoin", { n: 3 }, async (c) => {
    const leader = await c.checkOneLeader();
    const term = c.getState(leader).term;
    const loner = (leader % 3) + 1;
    c.disconnect(loner);
    await c.run(5000); // many election timeouts
    // Pre-votes fail without a quorum, so the isolated node never bumps its term.
    assert.equal(c.getState(loner).term, term, "isolated node incremented its term");
    c.connect(loner);
    await c.run(2000);
    assert.ok(c.getState(leader).isLeader, "the leader was deposed");
    assert.equal(c.getState(leader).term, term, "the term changed");
    await c.one(new TextEncoder().encode("after"), 3, false);
  });
});

Deno.test("PreVote off: the same rejoin does disrupt (the test can fail)", async () => {
  await withCluster("NoPreVoteRejoin", {
    n: 3,
    config: { preVote: false, checkQuorum: false },
  }, async (c) => {
    const leader = await c.checkOneLeader();
    const term = c.getState(leader).term;
    const loner = (leader % 3) + 1;
    c.disconnect(loner);
    await c.run(5000);
    assert.ok(c.getState(loner).term > term, "without PreVote the isolated node bumps its term");
    c.connect(loner);
    await c.run(2000);
    assert.ok(c.checkTerms() > term, "without PreVote the rejoin forces a new term");
  });
});

Deno.test("CheckQuorum: a leader cut off from the majority steps down", async () => {
  await withCluster("CheckQuorum", { n: 3 }, async (c) => {
    const leader = await c.checkOneLeader();
    c.disconnect(leader);
    // It hears from nobody; after at most two election timeouts (2 x 300 ms) it must step down.
    await c.run(700);
    assert.ok(!c.getState(leader).isLeader, "isolated leader still claims leadership");
    c.connect(leader);
    await c.checkOneLeader();
  });
});
