/**
 * Unit tests of the pure membership rules: configuration entries round-trip and are told apart
 * from application commands, single-server changes produce the next configuration, and the
 * leader refuses what would be unsafe (a second change in flight, a change before its own term
 * committed, a lagging learner's promotion, the last voter's removal, a change the reachable
 * voters could not commit).
 */
import assert from "node:assert/strict";
import { Encoder } from "@msgpack/msgpack";
import {
  applyChange,
  type ChangeContext,
  decodeConfEntry,
  decodeConfState,
  encodeConfEntry,
  encodeConfState,
  isConfEntryData,
  refusal,
} from "../../raft/membership.ts";
import type { ConfState } from "../../raft/types.ts";

const three: ConfState = {
  peers: [1, 2, 3],
  addrs: { 1: "h:1", 2: "h:2", 3: "h:3" },
  clusterId: "c1",
};

function ctx(over: Partial<ChangeContext> = {}): ChangeContext {
  return {
    conf: three,
    leader: 1,
    pending: false,
    ownTermCommitted: true,
    transferring: false,
    active: new Set([1, 2, 3]),
    match: new Map([[1, 100], [2, 100], [3, 100]]),
    lastIndex: 100,
    ...over,
  };
}

Deno.test("Configuration entries round-trip and never look like a msgpack command", () => {
  const conf = applyChange(three, { type: "addLearner", id: 4, addr: "h:4" });
  const data = encodeConfEntry({ conf, change: { type: "addLearner", id: 4, addr: "h:4" } });
  assert.ok(isConfEntryData(data));
  const back = decodeConfEntry(data);
  assert.deepEqual(back.conf, conf);
  assert.deepEqual(back.change, { type: "addLearner", id: 4, addr: "h:4" });
  // Every msgpack value's first byte differs from the mark: try the shapes commands use.
  const enc = new Encoder();
  for (
    const v of [[1, 1, "k", 0, null], { a: 1 }, "s", 0, -1, 1.5, null, true, new Uint8Array(3)]
  ) {
    assert.ok(!isConfEntryData(enc.encode(v)), `msgpack ${JSON.stringify(v)} taken for conf`);
  }
  assert.ok(!isConfEntryData(new Uint8Array(0)), "the no-op is not a configuration entry");
  assert.deepEqual(decodeConfState(encodeConfState(conf)), conf);
  assert.throws(() => decodeConfEntry(new Uint8Array([0xc1, 9, 1])), /unsupported version 9/);
  assert.throws(() => decodeConfState(new TextEncoder().encode('{"peers":[1,1]}')), /twice/);
  assert.throws(() => decodeConfState(new TextEncoder().encode('{"peers":[0]}')), /bad node id/);
});

Deno.test("Single-server changes: add a learner, promote it, remove a voter (never reused)", () => {
  let c = applyChange(three, { type: "addLearner", id: 4, addr: "h:4" });
  assert.deepEqual(c.peers, [1, 2, 3]);
  assert.deepEqual(c.learners, [4]);
  assert.equal(c.addrs?.["4"], "h:4");
  c = applyChange(c, { type: "promote", id: 4 });
  assert.deepEqual(c.peers, [1, 2, 3, 4]);
  assert.equal(c.learners, undefined);
  c = applyChange(c, { type: "remove", id: 3 });
  assert.deepEqual(c.peers, [1, 2, 4]);
  assert.deepEqual(c.removed, [3]);
  assert.equal(c.addrs?.["3"], undefined);
  assert.equal(c.clusterId, "c1");
  assert.throws(() => applyChange(c, { type: "promote", id: 2 }), /not a learner/);
  const boot = applyChange({ peers: [1, 2] }, {
    type: "bootstrap",
    clusterId: "x",
    addrs: { 1: "a", 2: "b", 9: "stranger" },
  });
  assert.deepEqual(boot, { peers: [1, 2], addrs: { 1: "a", 2: "b" }, clusterId: "x" });
});

Deno.test("Refusals: one change in flight, own-term entry committed first (Ongaro 2015)", () => {
  const add = { type: "addLearner" as const, id: 4, addr: "h:4" };
  assert.equal(refusal(ctx(), add), undefined);
  assert.match(refusal(ctx({ pending: true }), add)!, /already in progress/);
  assert.match(refusal(ctx({ ownTermCommitted: false }), add)!, /entry of its term/);
  assert.match(refusal(ctx({ transferring: true }), add)!, /leadership transfer/);
});

Deno.test("Refusals: duplicate id or address, reused id, unknown or wrong-role ids", () => {
  assert.match(refusal(ctx(), { type: "addLearner", id: 2, addr: "h:9" })!, /already a voter/);
  assert.match(refusal(ctx(), { type: "addLearner", id: 5, addr: "h:2" })!, /used by node 2/);
  const gone = applyChange(three, { type: "remove", id: 3 });
  assert.match(
    refusal(ctx({ conf: gone }), { type: "addLearner", id: 3, addr: "h:3" })!,
    /never reused/,
  );
  assert.match(refusal(ctx(), { type: "promote", id: 2 })!, /already a voter/);
  assert.match(refusal(ctx(), { type: "promote", id: 7 })!, /not a member/);
  assert.match(refusal(ctx(), { type: "remove", id: 7 })!, /not a member/);
  const withLearner = applyChange(three, { type: "addLearner", id: 4, addr: "h:4" });
  assert.match(
    refusal(ctx({ conf: withLearner }), { type: "addLearner", id: 4, addr: "h:5" })!,
    /already a learner/,
  );
});

Deno.test("Promotion waits until the learner holds 90% of the log and answers", () => {
  const conf = applyChange(three, { type: "addLearner", id: 4, addr: "h:4" });
  const active = new Set([1, 2, 3, 4]);
  const lagging = ctx({ conf, active, match: new Map([[4, 50]]) });
  assert.match(refusal(lagging, { type: "promote", id: 4 })!, /not caught up: .* 50 of 100/);
  const silent = ctx({ conf, active: new Set([1, 2, 3]), match: new Map([[4, 100]]) });
  assert.match(refusal(silent, { type: "promote", id: 4 })!, /not caught up/);
  const ready = ctx({ conf, active, match: new Map([[4, 95]]) });
  assert.equal(refusal(ready, { type: "promote", id: 4 }), undefined);
});

Deno.test("Strict reconfiguration: refuse what the reachable voters could not commit", () => {
  // 3 voters, 2 reachable: removing a reachable one leaves 1 of 2 reachable: no quorum.
  const twoUp = ctx({ active: new Set([1, 2]) });
  assert.match(refusal(twoUp, { type: "remove", id: 2 })!, /only 1 of the 2 voters/);
  // Removing the unreachable one leaves 2 of 2: fine.
  assert.equal(refusal(twoUp, { type: "remove", id: 3 }), undefined);
  // Adding a voter directly to a one-node cluster: 1 of 2 reachable, refused (use a learner).
  const single = ctx({ conf: { peers: [1] }, active: new Set([1]), match: new Map([[1, 5]]) });
  assert.match(refusal(single, { type: "addVoter", id: 2, addr: "h:2" })!, /only 1 of the 2/);
  assert.equal(refusal(single, { type: "addLearner", id: 2, addr: "h:2" }), undefined);
  assert.match(refusal(single, { type: "remove", id: 1 })!, /last voter/);
  // Removing a learner never affects a quorum.
  const conf = applyChange(three, { type: "addLearner", id: 4, addr: "h:4" });
  assert.equal(refusal(ctx({ conf, active: new Set([1]) }), { type: "remove", id: 4 }), undefined);
});
