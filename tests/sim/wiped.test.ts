/**
 * A follower whose data directory was wiped rejoins with an empty log. The leader must notice
 * (it had counted that follower's acknowledgements), say so in its metrics and status, and
 * replicate everything to it again; invariants are checked throughout as in every scenario.
 */
import assert from "node:assert/strict";
import { NodeMetrics } from "../../kv/node_metrics.ts";
import { cmd, withCluster } from "./cluster.ts";

Deno.test("WipedFollower: the leader notices the log went backwards and re-replicates", async () => {
  await withCluster("WipedFollower", { n: 3 }, async (c) => {
    await c.one(cmd(1), 3, true);
    await c.one(cmd(2), 3, true);
    const leader = await c.checkOneLeader();
    const f = (leader % 3) + 1;
    const before = c.node(leader)!.status().lastIndex;
    await c.wipe(f);
    await c.restart(f);
    assert.equal(c.node(f)!.status().lastIndex, 0, "the wiped node starts empty");
    await c.run(1000);
    const metrics = c.node(leader)!.metrics;
    assert.equal(metrics.followerLogRegressions, 1, "one incident, counted once");
    // What /metrics shows an operator.
    const exported = new NodeMetrics();
    exported.attach({
      node: c.node(leader)!,
      walBytes: () => 0,
      walAllocatedBytes: () => 0,
      keys: () => 0,
      forwardedRequests: () => 0,
      peerReachable: () => [],
    });
    assert.match(exported.registry.render(), /^raftmr_follower_log_regressions_total 1$/m);
    // Everything the cluster committed is on the wiped node again, and new writes reach all.
    assert.equal(c.node(f)!.status().lastIndex, before);
    await c.one(cmd(3), 3, true);
    const pr = c.node(leader)!.status().progress?.[f];
    assert.ok(pr, "the leader reports the follower");
    assert.equal(pr.logWentBackwards, false, "caught up again");
    assert.equal(pr.match, c.node(leader)!.status().lastIndex);
    assert.equal(c.node(leader)!.metrics.followerLogRegressions, 1);
  });
});
