/**
 * A removed node killed between appending its removal and learning that it committed: on
 * restart its own log shows the removal but not its commit, so it still counts itself a member
 * of the committed configuration and (pre-)campaigns, while the others, for whom the removal
 * committed long ago, ignore it. It must notice (status) and learn its fate rather than
 * campaign silently forever, as etcd's removed member learns it from its peers and stops.
 */
import assert from "node:assert/strict";
import type { NodeId } from "../../raft/types.ts";
import { cmd, withCluster } from "./cluster.ts";

Deno.test("A node restarted with its removal in its log but not known committed learns it and stops campaigning", async () => {
  await withCluster("removed restart", { n: 3 }, async (c) => {
    await c.one(cmd("a"), 3, false);
    const leader = await c.checkOneLeader();
    const victim: NodeId = c.ids.find((id) => id !== leader)!;
    // The victim's acknowledgements are lost: the removal commits with the other two, and the
    // victim never hears a commit index that covers it before it is killed.
    c.setLink(victim, leader, false);
    const done = c.node(leader)!.changeMembership({ type: "remove", id: victim });
    done.catch(() => {});
    let at = 0;
    for (let i = 0; i < 200 && at === 0; i++) {
      await c.run(0.2);
      const ms = c.node(victim)!.membership()!;
      if (!ms.conf.peers.includes(victim)) at = ms.confIndex;
    }
    assert.ok(at > 0, "the victim appended its removal");
    assert.ok(c.node(victim)!.status().commit < at, "the victim did not learn the commit yet");
    await c.crash(victim);
    c.setLink(victim, leader, true);
    // Long enough for the leader to stop feeding the removed node (ten election timeouts).
    await c.run(10_000);
    assert.ok(c.node(leader)!.status().commit >= at, "the removal committed");
    await c.restart(victim);
    const node = c.node(victim)!;
    assert.equal(node.membership()!.confIndex, at, "the restarted victim's log holds its removal");
    assert.deepEqual(
      node.status().removal,
      { index: at, committed: false },
      "the restarted node shows its pending removal",
    );
    // It asks for votes; the leader answers by feeding it the log, so it learns the commit.
    await c.run(5_000);
    assert.ok(node.status().commit >= at, "the restarted node never learned its removal committed");
    assert.deepEqual(node.status().removal, { index: at, committed: true });
    // From then on it stays quiet: no more campaigns, the cluster keeps its leader and term.
    const term = c.getState(leader).term;
    const before = node.metrics.electionsStarted;
    // In a stable cluster only the victim would ask for (pre-)votes.
    const asked = () => (c.byType.get("preVote") ?? 0) + (c.byType.get("vote") ?? 0);
    const askedBefore = asked();
    await c.run(5_000);
    assert.equal(node.metrics.electionsStarted, before);
    assert.equal(asked(), askedBefore, "the removed node still asks for votes");
    assert.equal(node.status().role, "follower");
    assert.equal(c.getState(leader).isLeader, true);
    assert.equal(c.getState(leader).term, term);
    await c.one(cmd("b"), 2, true);
  });
});
