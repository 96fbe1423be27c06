/** The snapshot policy on its own: thresholds, and a leader's patience with active laggards. */
import assert from "node:assert/strict";
import {
  DEFAULT_SNAPSHOT_CONFIG,
  shouldSnapshot,
  type SnapshotStatus,
} from "../../raft/snapshot_policy.ts";

const cfg = { snapshotEntries: 100, snapshotBytes: 1000 };

function follower(over: Partial<SnapshotStatus>): SnapshotStatus {
  return { role: "follower", applied: 0, snapshotIndex: 0, bytesSinceSnapshot: 0, ...over };
}

Deno.test("shouldSnapshot: either threshold triggers, nothing applied never does", () => {
  assert.equal(shouldSnapshot(follower({ applied: 99 }), cfg), false);
  assert.equal(shouldSnapshot(follower({ applied: 100 }), cfg), true);
  assert.equal(shouldSnapshot(follower({ applied: 150, snapshotIndex: 60 }), cfg), false);
  assert.equal(shouldSnapshot(follower({ applied: 5, bytesSinceSnapshot: 1000 }), cfg), true);
  assert.equal(
    shouldSnapshot(follower({ applied: 7, snapshotIndex: 7, bytesSinceSnapshot: 5000 }), cfg),
    false,
    "a snapshot at the index already covered",
  );
  assert.ok(
    DEFAULT_SNAPSHOT_CONFIG.snapshotEntries > 0 && DEFAULT_SNAPSHOT_CONFIG.snapshotBytes > 0,
  );
});

Deno.test("shouldSnapshot: a leader waits for an active laggard, up to twice the thresholds", () => {
  const lagging = {
    "2": {
      match: 120,
      next: 121,
      state: "replicate" as const,
      recentActive: true,
      logWentBackwards: false,
    },
    "3": {
      match: 150,
      next: 151,
      state: "replicate" as const,
      recentActive: true,
      logWentBackwards: false,
    },
  };
  const leader = (applied: number, bytes = 0): SnapshotStatus => ({
    role: "leader",
    applied,
    snapshotIndex: 0,
    bytesSinceSnapshot: bytes,
    progress: lagging,
  });
  assert.equal(shouldSnapshot(leader(150), cfg), false, "node 2 is active and behind");
  assert.equal(shouldSnapshot(leader(200), cfg), true, "twice the entry threshold");
  assert.equal(shouldSnapshot(leader(150, 2000), cfg), true, "twice the byte threshold");
  const idle = { ...lagging, "2": { ...lagging["2"], recentActive: false } };
  assert.equal(
    shouldSnapshot({ ...leader(150), progress: idle }, cfg),
    true,
    "an inactive follower is not waited for",
  );
  assert.equal(shouldSnapshot({ ...leader(150), role: "follower" }, cfg), true);
});
