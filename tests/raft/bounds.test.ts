/**
 * One rule for terms and indexes (raft/bounds.ts): the transport's validator and the core's
 * step() drop a message past the bound, and nothing in it reaches the node's state or storage.
 */
import assert from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import { isTermOrIndex, MAX_TERM_OR_INDEX, messageOutOfBounds } from "../../raft/bounds.ts";
import { RawNode } from "../../raft/raw_node.ts";
import { MemoryStorage } from "../../raft/storage.ts";
import { type Message, validateMessage } from "../../raft/types.ts";

const HUGE = Number.MAX_SAFE_INTEGER; // 9007199254740991: what an attacker sent
const JUST_ABOVE = MAX_TERM_OR_INDEX + 1;

Deno.test("Bounds: the bound leaves room to increment and add, far below 2^53", () => {
  assert.ok(Number.isSafeInteger(MAX_TERM_OR_INDEX * 2 + 1));
  assert.ok(isTermOrIndex(0) && isTermOrIndex(MAX_TERM_OR_INDEX));
  for (const bad of [JUST_ABOVE, HUGE, -1, 1.5, NaN, Infinity, "1", undefined]) {
    assert.equal(isTermOrIndex(bad), false, String(bad));
  }
});

Deno.test("Bounds: validateMessage refuses a term or any index past the bound", () => {
  const hb = { type: "heartbeat", from: 2, to: 1, term: 3, commit: 4, ctx: 0 };
  assert.deepEqual(validateMessage(decode(encode({ ...hb, term: MAX_TERM_OR_INDEX }))), {
    ...hb,
    term: MAX_TERM_OR_INDEX,
  });
  for (const term of [HUGE, JUST_ABOVE]) {
    assert.throws(
      () => validateMessage(decode(encode({ ...hb, term }))),
      (e: unknown) => e instanceof TypeError && /term .* past the bound/.test(e.message),
    );
  }
  const app = {
    type: "app",
    from: 2,
    to: 1,
    term: 3,
    index: JUST_ABOVE - 1,
    logTerm: 3,
    entries: [{ index: JUST_ABOVE, term: 3, data: new Uint8Array(1) }],
    commit: 0,
  };
  assert.throws(() => validateMessage(app), /entry index .* past the bound/);
  assert.throws(() => validateMessage({ ...app, index: HUGE, entries: [] }), /index/);
  assert.throws(() => validateMessage({ ...app, commit: JUST_ABOVE, entries: [] }), /commit/);
  const vote = { type: "vote", from: 2, to: 1, term: 3, index: 0, logTerm: JUST_ABOVE };
  assert.throws(() => validateMessage(vote), /logTerm/);
  const resp = {
    type: "appResp",
    from: 2,
    to: 1,
    term: 3,
    index: 1,
    reject: true,
    hintIndex: HUGE,
    hintTerm: 0,
  };
  assert.throws(() => validateMessage(resp), /hintIndex/);
});

Deno.test("Bounds: messageOutOfBounds looks at every term and index of every type", () => {
  const ok: Message[] = [
    { type: "snapResp", from: 1, to: 2, term: 1, index: 5, offset: 0, reject: false },
    { type: "heartbeatResp", from: 1, to: 2, term: 1, ctx: 0, reject: false, index: 5 },
    { type: "voteResp", from: 1, to: 2, term: 1, reject: false },
  ];
  for (const m of ok) assert.equal(messageOutOfBounds(m), undefined, m.type);
  assert.match(messageOutOfBounds({ ...ok[0], index: JUST_ABOVE } as Message)!, /index/);
  assert.match(messageOutOfBounds({ ...ok[1], index: JUST_ABOVE } as Message)!, /index/);
  assert.match(messageOutOfBounds({ ...ok[2], term: HUGE })!, /term/);
});

function leaderAlone(): { raw: RawNode; storage: MemoryStorage } {
  // A three-node cluster seen from node 1 only; it campaigns and wins with node 2's vote.
  const storage = new MemoryStorage([1, 2, 3]);
  const raw = new RawNode({ id: 1, peers: [1, 2, 3], storage, rand: () => 0 });
  const drive = () => {
    while (raw.hasReady()) {
      const rd = raw.ready();
      void storage.save(rd.hardState, rd.entries, rd.snapshot);
      raw.advance(rd);
    }
  };
  raw.campaign();
  drive();
  raw.step({ type: "preVoteResp", from: 2, to: 1, term: 1, reject: false });
  drive();
  raw.step({ type: "voteResp", from: 2, to: 1, term: 1, reject: false });
  drive();
  raw.step({
    type: "appResp",
    from: 2,
    to: 1,
    term: 1,
    index: 1,
    reject: false,
    hintIndex: 0,
    hintTerm: 0,
  });
  drive();
  assert.equal(raw.role, "leader");
  assert.equal(raw.commit, 1);
  return { raw, storage };
}

Deno.test("Bounds: the core drops a forged heartbeat with a huge term: term, log and leader stay", () => {
  const { raw, storage } = leaderAlone();
  for (const term of [HUGE, JUST_ABOVE]) {
    raw.step({ type: "heartbeat", from: 3, to: 1, term, commit: 0, ctx: 0 });
    raw.step({
      type: "app",
      from: 3,
      to: 1,
      term,
      index: 1,
      logTerm: 1,
      entries: [{ index: 2, term, data: new Uint8Array([1]) }],
      commit: 2,
    });
  }
  assert.equal(raw.hasReady(), false, "nothing to persist or send");
  assert.deepEqual(
    [raw.role, raw.term, raw.leader, raw.commit, raw.status().lastIndex],
    ["leader", 1, 1, 1, 1],
  );
  assert.equal(storage.initialState().hardState.term, 1, "the forged term was never saved");
  assert.equal(raw.counters().messagesDropped, 4);
  const { lines } = raw.takeWarnings();
  assert.equal(lines.length, 4);
  assert.match(lines[0], /^Dropped a heartbeat message from node 3: term 9007199254740991 is past/);
  assert.deepEqual(raw.takeWarnings().lines, [], "warnings are handed out once");
});
