/**
 * The configuration a node starts with, as the address book and the handshake see it: the
 * newest in its log, as the Raft core has it (thesis §4.1), even when the commit index on disk
 * lags it. Found on real processes: a node killed before it saved the commit index that covered
 * the cluster's bootstrap configuration, restarted with `--peers 3=itself`, knew no peer, refused
 * the real members' connections ("Node 1 is not a member of this cluster") and never rejoined.
 */
import assert from "node:assert/strict";
import { peerAddresses, storedMembership } from "../../kv/member_startup.ts";
import { encodeConfEntry } from "../../raft/membership.ts";
import { MemoryStorage } from "../../raft/storage.ts";
import type { ConfState } from "../../raft/types.ts";

const addrs = { 1: "127.0.0.1:7001", 2: "127.0.0.1:7002", 3: "127.0.0.1:7003" };
const boot: ConfState = { peers: [1, 2, 3], addrs, clusterId: "c" };

Deno.test("start membership: a configuration above the saved commit index still names the peers", async () => {
  // --peers 3=itself: the storage's fallback configuration is node 3 alone.
  const s = new MemoryStorage([3]);
  await s.save({ term: 1, vote: 1, commit: 1 }, [
    { index: 1, term: 1, data: new Uint8Array(0) },
    {
      index: 2,
      term: 1,
      data: encodeConfEntry({ conf: boot, change: { type: "bootstrap", clusterId: "c", addrs } }),
    },
  ]);
  const only3 = new Map([[3, { hostname: "127.0.0.1", port: 7003 }]]);
  // The committed view (the start-up refusal's) has no configuration yet...
  assert.equal(storedMembership(s).conf, undefined);
  // ...the newest in the log is the cluster's, and the address book built from it has every
  // member at its recorded address.
  const inForce = storedMembership(s, { uncommitted: true });
  assert.deepEqual(inForce.conf, boot);
  assert.equal(inForce.index, 2);
  assert.deepEqual(
    [...peerAddresses(inForce.conf, only3)].sort(([a], [b]) => a - b),
    [
      [1, { hostname: "127.0.0.1", port: 7001 }],
      [2, { hostname: "127.0.0.1", port: 7002 }],
      [3, { hostname: "127.0.0.1", port: 7003 }],
    ],
  );
});
