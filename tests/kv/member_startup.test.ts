/**
 * Start-up membership rules: what a data directory recorded, when --peers disagrees with it,
 * a removed node's refusal, and the address book the transport dials.
 */
import assert from "node:assert/strict";
import { peerAddresses, startupRefusal, storedMembership } from "../../kv/member_startup.ts";
import { applyChange, encodeConfEntry } from "../../raft/membership.ts";
import { MemoryStorage } from "../../raft/storage.ts";
import type { ConfState } from "../../raft/types.ts";

const hp = (port: number) => ({ hostname: "127.0.0.1", port });
const peers123 = new Map([[1, hp(7001)], [2, hp(7002)], [3, hp(7003)]]);
const boot: ConfState = { peers: [1, 2, 3], addrs: { 1: "127.0.0.1:7001" }, clusterId: "c" };

Deno.test("storedMembership reads the last committed configuration entry", async () => {
  const s = new MemoryStorage([1, 2, 3]);
  assert.deepEqual(storedMembership(s), { conf: undefined, index: 0, hasState: false });
  const added = applyChange(boot, { type: "addLearner", id: 4, addr: "127.0.0.1:7004" });
  const bootData = encodeConfEntry({
    conf: boot,
    change: { type: "bootstrap", clusterId: "c", addrs: {} },
  });
  const addData = encodeConfEntry({
    conf: added,
    change: { type: "addLearner", id: 4, addr: "127.0.0.1:7004" },
  });
  await s.save({ term: 1, vote: 1, commit: 2 }, [
    { index: 1, term: 1, data: new Uint8Array(0) },
    { index: 2, term: 1, data: bootData },
    { index: 3, term: 1, data: addData },
  ]);
  // Entry 3 is not committed: the configuration in force is entry 2's.
  assert.deepEqual(storedMembership(s), { conf: boot, index: 2, hasState: true });
  await s.save({ term: 1, vote: 1, commit: 3 }, []);
  assert.equal(storedMembership(s).index, 3);
  assert.deepEqual(storedMembership(s).conf?.learners, [4]);
});

Deno.test("startupRefusal: stale --peers, a removed node, a stranger without --join", () => {
  const stored = { conf: boot, index: 2, hasState: true };
  assert.equal(startupRefusal(1, stored, peers123, false), undefined);
  // Fewer peers than members is fine: addresses come from the configuration.
  assert.equal(startupRefusal(1, stored, new Map([[1, hp(7001)]]), false), undefined);
  const gone = applyChange(boot, { type: "remove", id: 3 });
  const after = { conf: gone, index: 9, hasState: true };
  assert.match(
    startupRefusal(1, after, peers123, false)!,
    /disagrees with --peers: --peers lists 3 \(removed: 3\).*members: 1, 2/,
  );
  assert.match(startupRefusal(3, after, peers123, false)!, /Node 3 was removed from the cluster c/);
  const four = new Map([...peers123, [4, hp(7004)]]);
  assert.match(startupRefusal(4, stored, four, false)!, /start it with --join/);
  assert.equal(startupRefusal(4, stored, new Map([[4, hp(7004)]]), true), undefined);
  // Nothing recorded (a new cluster, or one formed before configurations were logged).
  assert.equal(startupRefusal(1, { index: 0, hasState: false }, peers123, false), undefined);
});

Deno.test("peerAddresses: --peers wins, the configuration fills in, removed ids are dropped", () => {
  const conf = applyChange(
    applyChange(boot, { type: "addLearner", id: 4, addr: "10.0.0.4:7004" }),
    { type: "remove", id: 3 },
  );
  const book = peerAddresses(conf, new Map([[1, hp(9001)], [3, hp(7003)]]));
  assert.deepEqual([...book.keys()].sort(), [1, 4]);
  assert.deepEqual(book.get(1), hp(9001));
  assert.deepEqual(book.get(4), { hostname: "10.0.0.4", port: 7004 });
  // Node 2 has no address anywhere: it is left out rather than guessed.
  assert.equal(book.has(2), false);
  assert.deepEqual([...peerAddresses(undefined, peers123).keys()], [1, 2, 3]);
});
