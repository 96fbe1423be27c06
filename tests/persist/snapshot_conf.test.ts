/** Snapshot headers carry the whole configuration: learners, addresses and the cluster id. */
import assert from "node:assert/strict";
import { decodeSnapshot, encodeSnapshot, SnapshotCorruptionError } from "../../persist/snapshot.ts";
import type { Snapshot } from "../../raft/types.ts";

Deno.test("A snapshot header round-trips voters, learners, removed ids, addresses, cluster id", () => {
  const snap: Snapshot = {
    meta: {
      index: 42,
      term: 7,
      conf: {
        peers: [1, 2, 4],
        learners: [5],
        removed: [3],
        addrs: { 1: "127.0.0.1:7001", 2: "127.0.0.1:7002", 4: "h:4", 5: "h:5" },
        clusterId: "a1b2",
      },
    },
    data: new TextEncoder().encode("state"),
  };
  const back = decodeSnapshot(encodeSnapshot(snap));
  assert.deepEqual(back.meta, snap.meta);
  assert.deepEqual(back.data, snap.data);
  // A flipped byte inside the configuration is caught by the header CRC.
  const bytes = encodeSnapshot(snap);
  bytes[60] ^= 0xff;
  assert.throws(() => decodeSnapshot(bytes), SnapshotCorruptionError);
});
