import assert from "node:assert/strict";
import { encodeCommand, type KvCommand } from "../../kv/commands.ts";
import { type ApplyResult, KvStateMachine } from "../../kv/state_machine.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const b = (s: string) => enc.encode(s);
const str = (v: Uint8Array | null) => (v === null ? null : dec.decode(v));

/** Applies commands at consecutive indexes, returning their results. */
class Log {
  index = 0;
  constructor(readonly sm: KvStateMachine) {}
  apply(command: KvCommand | Uint8Array): ApplyResult | undefined {
    const data = command instanceof Uint8Array ? command : encodeCommand(command);
    return this.sm.apply({ index: ++this.index, term: 1, data });
  }
}

Deno.test("state machine: put, append, del and cas", () => {
  const log = new Log(new KvStateMachine());
  assert.deepEqual(log.apply({ op: "put", key: "a", value: b("1"), time: 1 }), { status: "ok" });
  assert.deepEqual(log.apply({ op: "append", key: "a", value: b("2"), time: 1 }), { status: "ok" });
  assert.deepEqual(log.apply({ op: "append", key: "n", value: b("x"), time: 1 }), { status: "ok" });
  assert.equal(str(log.sm.get("a")), "12");
  assert.equal(str(log.sm.get("n")), "x");
  assert.deepEqual(log.apply({ op: "cas", key: "a", value: b("3"), expect: b("1"), time: 1 }), {
    status: "mismatch",
    current: b("12"),
  });
  assert.deepEqual(log.apply({ op: "cas", key: "a", value: b("3"), expect: b("12"), time: 1 }), {
    status: "ok",
  });
  assert.deepEqual(log.apply({ op: "cas", key: "a", value: b("4"), expect: null, time: 1 }), {
    status: "mismatch",
    current: b("3"),
  });
  assert.deepEqual(log.apply({ op: "cas", key: "z", value: b("4"), expect: null, time: 1 }), {
    status: "ok",
  });
  assert.deepEqual(log.apply({ op: "cas", key: "q", value: b("4"), expect: b("x"), time: 1 }), {
    status: "mismatch",
    current: null,
  });
  assert.deepEqual(log.apply({ op: "del", key: "a", time: 1 }), { status: "ok", existed: true });
  assert.deepEqual(log.apply({ op: "del", key: "a", time: 1 }), { status: "ok", existed: false });
  assert.equal(log.sm.get("a"), null);
  assert.equal(log.sm.size, 2);
  assert.equal(log.sm.valueBytes, 2);
  assert.equal(log.sm.appliedIndex, 10);
});

Deno.test("state machine: no-ops and already-applied indexes are skipped", () => {
  const sm = new KvStateMachine();
  assert.equal(sm.apply({ index: 1, term: 1, data: new Uint8Array(0) }), undefined);
  assert.equal(sm.appliedIndex, 1);
  const put = encodeCommand({ op: "append", key: "k", value: b("x"), time: 1 });
  assert.deepEqual(sm.apply({ index: 2, term: 1, data: put }), { status: "ok" });
  assert.equal(sm.apply({ index: 2, term: 1, data: put }), undefined);
  assert.equal(str(sm.get("k")), "x");
});

Deno.test("state machine: a malformed command yields an invalid result and changes nothing", () => {
  const log = new Log(new KvStateMachine());
  log.apply({ op: "put", key: "k", value: b("v"), time: 1 });
  const result = log.apply(new Uint8Array([1, 2, 3]));
  assert.equal(result?.status, "invalid");
  assert.equal(log.sm.appliedIndex, 2);
  assert.equal(str(log.sm.get("k")), "v");
});

Deno.test("state machine: a retried (client id, seq) applies once and returns the cached result", () => {
  const log = new Log(new KvStateMachine());
  const append = (seq: number, v: string) =>
    log.apply({ op: "append", key: "k", value: b(v), clientId: "c", seq, time: 1 });
  assert.deepEqual(append(1, "a"), { status: "ok" });
  assert.deepEqual(append(1, "a"), { status: "ok" });
  assert.deepEqual(append(2, "b"), { status: "ok" });
  assert.deepEqual(append(2, "b"), { status: "ok" });
  assert.equal(str(log.sm.get("k")), "ab");
  assert.equal(append(1, "a")?.status, "stale");
  assert.equal(str(log.sm.get("k")), "ab");
  // A retried cas returns the original outcome even though the state has moved on.
  const cas = {
    op: "cas",
    key: "k",
    value: b("X"),
    expect: b("ab"),
    clientId: "d",
    seq: 1,
    time: 1,
  } as const;
  assert.deepEqual(log.apply(cas), { status: "ok" });
  assert.deepEqual(log.apply(cas), { status: "ok" });
  assert.equal(str(log.sm.get("k")), "X");
  const del = { op: "del", key: "k", clientId: "d", seq: 2, time: 1 } as const;
  assert.deepEqual(log.apply(del), { status: "ok", existed: true });
  assert.deepEqual(log.apply(del), { status: "ok", existed: true });
  // Without a session the same write applies again.
  log.apply({ op: "append", key: "k", value: b("z"), time: 1 });
  log.apply({ op: "append", key: "k", value: b("z"), time: 1 });
  assert.equal(str(log.sm.get("k")), "zz");
});

Deno.test("state machine: sessions expire after the TTL of command time", () => {
  const log = new Log(new KvStateMachine({ sessionTtlMs: 1000 }));
  const append = (id: string, seq: number, time: number) =>
    log.apply({ op: "append", key: id, value: b("x"), clientId: id, seq, time });
  append("old", 1, 0);
  append("fresh", 1, 500);
  assert.equal(log.sm.sessionCount, 2);
  append("fresh", 2, 1400); // "old" idle 1400 > 1000: gone; "fresh" was used at 500 < 1000 ago.
  assert.equal(log.sm.sessionCount, 1);
  append("old", 1, 1400); // Forgotten, so the retry applies again: the documented trade-off.
  assert.equal(str(log.sm.get("old")), "xx");
  // A command stamped earlier (a new leader with a slower clock) does not revive anything.
  append("fresh", 2, 100);
  assert.equal(str(log.sm.get("fresh")), "xx");
});

Deno.test("state machine: the session count is capped, evicting the least recently used", () => {
  const log = new Log(new KvStateMachine({ maxSessions: 2 }));
  const put = (id: string, seq: number) =>
    log.apply({ op: "append", key: id, value: b("x"), clientId: id, seq, time: 1 });
  put("a", 1);
  put("b", 1);
  put("a", 2); // a is now most recently used.
  put("c", 1); // evicts b
  assert.equal(log.sm.sessionCount, 2);
  put("a", 2);
  put("c", 1);
  assert.equal(str(log.sm.get("a")), "xx");
  assert.equal(str(log.sm.get("c")), "x");
  put("b", 1); // b was evicted, so this applies again
  assert.equal(str(log.sm.get("b")), "xx");
});

Deno.test("state machine: snapshot and restore carry keys, sessions and the applied index", () => {
  const log = new Log(new KvStateMachine());
  log.apply({ op: "put", key: "a", value: b("1"), time: 1 });
  log.apply({ op: "put", key: "gone", value: b("1"), time: 1 });
  log.apply({ op: "del", key: "gone", time: 1 });
  log.apply({ op: "cas", key: "a", value: b("2"), expect: b("9"), clientId: "c", seq: 4, time: 2 });
  log.apply({ op: "del", key: "zz", clientId: "d", seq: 1, time: 2 });
  log.apply({ op: "append", key: "bin", value: new Uint8Array([0, 255, 1]), time: 3 });
  const data = log.sm.snapshot();

  const copy = new KvStateMachine();
  copy.restore(data);
  assert.equal(copy.appliedIndex, 6);
  assert.equal(copy.size, 2);
  assert.equal(str(copy.get("a")), "1");
  assert.deepEqual(copy.get("bin"), new Uint8Array([0, 255, 1]));
  assert.deepEqual(copy.snapshot(), data);
  const next = new Log(copy);
  next.index = 6;
  assert.deepEqual(
    next.apply({
      op: "cas",
      key: "a",
      value: b("2"),
      expect: b("9"),
      clientId: "c",
      seq: 4,
      time: 4,
    }),
    { status: "mismatch", current: b("1") },
  );
  assert.deepEqual(next.apply({ op: "del", key: "zz", clientId: "d", seq: 1, time: 4 }), {
    status: "ok",
    existed: false,
  });
  copy.restore(new Uint8Array(0));
  assert.equal(copy.size, 0);
  assert.equal(copy.appliedIndex, 0);
  assert.throws(() => copy.restore(new Uint8Array([0x93, 1, 2, 3])), /Cannot restore/);
});

Deno.test("state machine: the snapshot holds only live state (lab TestSnapshotSize3B)", () => {
  const log = new Log(new KvStateMachine());
  for (let i = 0; i < 200; i++) {
    log.apply({ op: "put", key: "x", value: b("0"), clientId: "c", seq: 2 * i, time: i });
    log.apply({ op: "put", key: "x", value: b("1"), clientId: "c", seq: 2 * i + 1, time: i });
  }
  assert.ok(log.sm.snapshot().length < 500);
});

Deno.test("state machine: replicas applying the same log reach identical snapshots", () => {
  let seed = 7;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const entries: Uint8Array[] = [];
  const ops = ["put", "append", "del", "cas"] as const;
  for (let i = 0; i < 500; i++) {
    const op = ops[rand(4)];
    const key = `k${rand(5)}`;
    const command: KvCommand = { op, key, time: i * 10, clientId: `c${rand(50)}`, seq: rand(4) };
    if (op !== "del") command.value = b(String(rand(3)));
    if (op === "cas") command.expect = rand(2) === 0 ? null : b(String(rand(3)));
    entries.push(rand(20) === 0 ? new Uint8Array([rand(256)]) : encodeCommand(command));
  }
  const a = new KvStateMachine({ maxSessions: 20, sessionTtlMs: 300 });
  const c = new KvStateMachine({ maxSessions: 20, sessionTtlMs: 300 });
  entries.forEach((data, i) => a.apply({ index: i + 1, term: 1, data }));
  // The second replica restores a mid-way snapshot, then applies the rest.
  const half = new KvStateMachine({ maxSessions: 20, sessionTtlMs: 300 });
  entries.slice(0, 250).forEach((data, i) => half.apply({ index: i + 1, term: 1, data }));
  c.restore(half.snapshot());
  entries.forEach((data, i) => c.apply({ index: i + 1, term: 1, data }));
  assert.deepEqual(c.snapshot(), a.snapshot());
  assert.ok(a.sessionCount <= 20);
});
