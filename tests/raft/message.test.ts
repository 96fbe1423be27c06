/**
 * Messages are plain msgpack-able objects; validateMessage() is the gate for untrusted input.
 * Also covers MemoryStorage's contract (append/truncate, snapshot, compaction errors).
 */
import assert from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import { CompactedError, MemoryStorage, UnavailableError } from "../../raft/storage.ts";
import { type Message, MESSAGE_TYPES, validateMessage } from "../../raft/types.ts";

const b = (s: string) => new TextEncoder().encode(s);

const SAMPLES: Message[] = [
  {
    type: "app",
    from: 1,
    to: 2,
    term: 3,
    index: 4,
    logTerm: 2,
    entries: [{ index: 5, term: 3, data: b("x") }, { index: 6, term: 3, data: new Uint8Array(0) }],
    commit: 4,
  },
  { type: "appResp", from: 2, to: 1, term: 3, index: 6, reject: false, hintIndex: 0, hintTerm: 0 },
  { type: "vote", from: 1, to: 2, term: 3, index: 6, logTerm: 3 },
  { type: "preVote", from: 1, to: 2, term: 4, index: 6, logTerm: 3 },
  { type: "voteResp", from: 2, to: 1, term: 3, reject: true },
  { type: "preVoteResp", from: 2, to: 1, term: 4, reject: false },
  { type: "heartbeat", from: 1, to: 2, term: 3, commit: 5, ctx: 7 },
  { type: "heartbeatResp", from: 2, to: 1, term: 3, ctx: 7, reject: false, index: 5 },
  {
    type: "snap",
    from: 1,
    to: 3,
    term: 3,
    index: 100,
    logTerm: 2,
    peers: [1, 2, 3],
    offset: 0,
    total: 3,
    crc: 0xdeadbeef,
    data: b("abc"),
    done: true,
  },
  { type: "snapResp", from: 3, to: 1, term: 3, index: 100, offset: 3, reject: false },
  {
    type: "snap",
    from: 1,
    to: 4,
    term: 3,
    index: 100,
    logTerm: 2,
    peers: [1, 2, 3],
    conf: { peers: [1, 2, 3], learners: [4], addrs: { 4: "h:4" }, clusterId: "c" },
    offset: 0,
    total: 3,
    crc: 1,
    data: b("abc"),
    done: true,
  },
  { type: "vote", from: 1, to: 2, term: 5, index: 6, logTerm: 3, transfer: true },
  { type: "timeoutNow", from: 1, to: 2, term: 3 },
  // Acknowledgements with the sender's incarnation (a wiped follower's old acks are told apart).
  { type: "heartbeatResp", from: 2, to: 1, term: 3, ctx: 7, reject: true, index: 0, inc: 9 },
  {
    type: "appResp",
    from: 2,
    to: 1,
    term: 3,
    index: 6,
    reject: false,
    hintIndex: 0,
    hintTerm: 0,
    inc: 1764547200000,
  },
];

Deno.test("validateMessage: every message type survives a msgpack round trip", () => {
  assert.deepEqual([...new Set(SAMPLES.map((m) => m.type))].sort(), [...MESSAGE_TYPES].sort());
  for (const m of SAMPLES) {
    const back = validateMessage(decode(encode(m)));
    assert.deepEqual(back, m);
  }
});

Deno.test("validateMessage: rejects malformed input with TypeError, strips unknown fields", () => {
  const bad: unknown[] = [
    null,
    42,
    "app",
    [],
    { type: "nope", from: 1, to: 2, term: 1 },
    { ...SAMPLES[0], from: 0 },
    { ...SAMPLES[0], term: -1 },
    { ...SAMPLES[0], term: 1.5 },
    { ...SAMPLES[0], entries: "x" },
    { ...SAMPLES[0], entries: [{ index: 5, term: 3, data: "x" }] },
    { ...SAMPLES[0], entries: [{ index: 9, term: 3, data: b("x") }] },
    { ...SAMPLES[1], reject: "no" },
    { ...SAMPLES[8], offset: 2 }, // chunk past total
    { ...SAMPLES[8], peers: [1, -2] },
    { ...SAMPLES[8], crc: 2 ** 33 },
    { ...SAMPLES[10], conf: { peers: [1, 1] } },
    { ...SAMPLES[11], transfer: "yes" },
    { ...SAMPLES[13], inc: -1 },
    { ...SAMPLES[14], inc: "1" },
  ];
  for (const x of bad) assert.throws(() => validateMessage(x), TypeError, JSON.stringify(x));
  const extra = validateMessage({ ...SAMPLES[4], evil: "x", __proto__: { y: 1 } });
  assert.equal("evil" in extra, false);
});

Deno.test("MemoryStorage: append, conflicting truncation, snapshot install and compaction", async () => {
  const s = new MemoryStorage([1, 2, 3]);
  assert.equal(s.firstIndex(), 1);
  assert.equal(s.lastIndex(), 0);
  const e = (index: number, term: number) => ({ index, term, data: b(`${index}.${term}`) });
  await s.save({ term: 1, vote: 1, commit: 0 }, [e(1, 1), e(2, 1), e(3, 1)]);
  assert.equal(s.lastIndex(), 3);
  await s.save(undefined, [e(2, 2)]); // conflict: truncates 2..3
  assert.equal(s.lastIndex(), 2);
  assert.equal(s.term(2), 2);
  assert.deepEqual(s.initialState().hardState, { term: 1, vote: 1, commit: 0 });
  assert.equal(s.entries(1, 3, 1).length, 1, "maxBytes cuts, but returns at least one entry");
  await s.save(undefined, [e(3, 2), e(4, 2)]);
  await s.compact({ meta: { index: 3, term: 2, conf: { peers: [1, 2, 3] } }, data: b("snap") });
  assert.equal(s.firstIndex(), 4);
  assert.equal(s.term(3), 2);
  assert.throws(() => s.entries(2, 4), CompactedError);
  assert.throws(() => s.term(9), UnavailableError);
  assert.equal(s.logBytes(), e(4, 2).data.length + 24);
  // A received snapshot past the log replaces it entirely.
  await s.save({ term: 3, vote: 0, commit: 10 }, [], {
    meta: { index: 10, term: 3, conf: { peers: [1, 2, 3] } },
    data: b("s2"),
  });
  assert.equal(s.firstIndex(), 11);
  assert.equal(s.lastIndex(), 10);
  assert.equal(s.snapshot().meta.index, 10);
  await s.close();
  await assert.rejects(async () => await s.save(undefined, [e(11, 3)]));
});
