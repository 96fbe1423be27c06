/** The cluster identity rule of the peer handshake. */
import assert from "node:assert/strict";
import { clusterMismatch } from "../../net/cluster_match.ts";

const member = { clusterId: "aaaa", joining: false, fresh: false };

Deno.test("Same cluster id, or none yet on either side: the peers may talk", () => {
  assert.equal(clusterMismatch(member, { ...member }, 2), undefined);
  const forming = { joining: false, fresh: true };
  assert.equal(clusterMismatch(forming, forming, 2), undefined);
});

Deno.test("Different cluster ids are refused with both ids named", () => {
  const other = { clusterId: "bbbb", joining: false, fresh: false };
  assert.match(clusterMismatch(member, other, 3)!, /cluster aaaa, node 3 to cluster bbbb/);
});

Deno.test("An empty data directory without --join cannot reach a formed cluster", () => {
  const wiped = { joining: false, fresh: true };
  assert.match(clusterMismatch(member, wiped, 3)!, /Node 3 has an empty data directory/);
  assert.match(clusterMismatch(wiped, member, 1)!, /This node has an empty data directory/);
  // Started with --join it is a member being added: accepted both ways.
  const joining = { joining: true, fresh: true };
  assert.equal(clusterMismatch(member, joining, 4), undefined);
  assert.equal(clusterMismatch(joining, member, 1), undefined);
  // A bootstrap member that has Raft state but has not yet learned the id: accepted.
  const early = { joining: false, fresh: false };
  assert.equal(clusterMismatch(member, early, 2), undefined);
  assert.equal(clusterMismatch(early, member, 1), undefined);
});
