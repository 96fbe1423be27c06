import assert from "node:assert/strict";
import { checkLinearizability, type KvHistoryOp, type KvHistoryOpKind } from "./linearizability.ts";

let nextClient = 0;
/** Shorthand for one operation: [call, return] interval, inputs and outputs. */
function op(
  kind: KvHistoryOpKind,
  call: number,
  ret: number | undefined,
  fields: Partial<KvHistoryOp> = {},
): KvHistoryOp {
  return { clientId: nextClient++, op: kind, key: "k", call, return: ret, ...fields };
}
const get = (call: number, ret: number | undefined, value: string | null) =>
  op("get", call, ret, { output: { value } });
const put = (call: number, ret: number | undefined, value: string) =>
  op("put", call, ret, { value });
const append = (call: number, ret: number | undefined, value: string) =>
  op("append", call, ret, { value });

function assertOk(history: KvHistoryOp[]) {
  const result = checkLinearizability(history);
  assert.deepEqual(result, { ok: true });
}
function assertNotOk(history: KvHistoryOp[], key = "k") {
  const result = checkLinearizability(history);
  assert.equal(result.ok, false);
  if (!result.ok) {
    assert.equal(result.key, key);
    assert.match(result.explanation, /No linearization/);
  }
}

Deno.test("linearizability: sequential and overlapping histories pass", () => {
  assertOk([]);
  assertOk([get(0, 1, null), put(2, 3, "a"), get(4, 5, "a"), append(6, 7, "b"), get(8, 9, "ab")]);
  // A read overlapping a write may see either value, and two reads may disagree in real order
  // only if the write lies between them.
  assertOk([put(0, 10, "a"), get(1, 2, null), get(3, 4, "a")]);
  assertOk([put(0, 10, "a"), get(1, 2, "a"), get(3, 11, "a")]);
  // Concurrent appends in either order.
  assertOk([append(0, 10, "x"), append(0, 10, "y"), get(11, 12, "yx")]);
  // Touching intervals count as concurrent.
  assertOk([put(0, 5, "a"), get(5, 6, null)]);
});

Deno.test("linearizability: classic violations fail", () => {
  // Stale read after a completed write.
  assertNotOk([put(0, 1, "a"), get(2, 3, null)]);
  // A read goes back in time after another read saw the new value.
  assertNotOk([put(0, 100, "a"), get(1, 2, "a"), get(3, 4, null)]);
  // Lost append: both completed, the read sees only one.
  assertNotOk([append(0, 1, "x"), append(0, 1, "y"), get(2, 3, "x")]);
  // Duplicated append (a retry applied twice).
  assertNotOk([append(0, 1, "x"), get(2, 3, "xx")]);
  // A value nobody wrote.
  assertNotOk([put(0, 1, "a"), get(0, 5, "b")]);
  // Appends applied out of real-time order.
  assertNotOk([append(0, 1, "x"), append(2, 3, "y"), get(4, 5, "yx")]);
});

Deno.test("linearizability: del and cas outputs are checked", () => {
  const del = (call: number, ret: number, existed: boolean) =>
    op("del", call, ret, { output: { existed } });
  const cas = (call: number, ret: number, expect: string | null, value: string, ok: boolean) =>
    op("cas", call, ret, { expect, value, output: { ok } });
  assertOk([put(0, 1, "a"), del(2, 3, true), del(4, 5, false), get(6, 7, null)]);
  assertNotOk([put(0, 1, "a"), del(2, 3, false)]);
  assertOk([cas(0, 1, null, "a", true), cas(2, 3, "a", "b", true), get(4, 5, "b")]);
  // Two concurrent create-only swaps cannot both win, but one winner is fine.
  assertNotOk([cas(0, 10, null, "a", true), cas(0, 10, null, "b", true)]);
  assertOk([cas(0, 10, null, "a", true), cas(0, 10, null, "b", false), get(11, 12, "a")]);
  assertNotOk([cas(0, 10, null, "a", true), cas(0, 10, null, "b", false), get(11, 12, "b")]);
  // A mismatch reports the current value.
  assertOk([
    put(0, 1, "z"),
    op("cas", 2, 3, { expect: "q", value: "r", output: { ok: false, current: "z" } }),
  ]);
  assertNotOk([
    put(0, 1, "z"),
    op("cas", 2, 3, { expect: "q", value: "r", output: { ok: false, current: "y" } }),
  ]);
});

Deno.test("linearizability: unknown outcomes may take effect late, or never", () => {
  // Never took effect.
  assertOk([put(0, undefined, "a"), get(5, 6, null)]);
  // Took effect after the first read, long after the client gave up.
  assertOk([put(0, undefined, "a"), get(5, 6, null), get(7, 8, "a")]);
  // But once seen it cannot be undone.
  assertNotOk([put(0, undefined, "a"), get(5, 6, "a"), get(7, 8, null)]);
  // Not before its call.
  assertNotOk([get(0, 1, "a"), put(2, undefined, "a")]);
  // An unknown append applies at most once.
  assertOk([append(0, undefined, "x"), get(5, 6, "x")]);
  assertNotOk([append(0, undefined, "x"), get(5, 6, "xx")]);
  // Unknown reads are ignored whatever they claim.
  assertOk([get(0, undefined, "nonsense"), put(1, 2, "a")]);
});

Deno.test("linearizability: keys are checked independently and the bad key is named", () => {
  const history = [
    { ...put(0, 1, "a"), key: "good" },
    { ...get(2, 3, "a"), key: "good" },
    { ...put(0, 1, "a"), key: "bad" },
    { ...get(2, 3, "b"), key: "bad" },
  ];
  assertNotOk(history, "bad");
  assertOk(history.slice(0, 2));
  assert.throws(() => checkLinearizability([put(5, 4, "a")]), RangeError);
});

Deno.test("linearizability: the step budget reports an exhausted search", () => {
  const history = [
    append(0, 100, "a"),
    append(0, 100, "b"),
    append(0, 100, "c"),
    get(101, 102, "x"),
  ];
  const result = checkLinearizability(history, { maxStepsPerKey: 3 });
  assert.equal(result.ok, false);
  assert.equal(!result.ok && result.exhausted, true);
});

/** A seeded generator of a history that really happened: each op takes effect at a random point. */
function simulate(seed: number, clients: number, opsPerClient: number, keys: number) {
  let s = seed;
  const rand = () => {
    s = (s * 1664525 + 1013904223) % 4294967296;
    return s / 4294967296;
  };
  type Pending = { op: KvHistoryOp; at: number; applies: boolean };
  const pending: Pending[] = [];
  for (let c = 0; c < clients; c++) {
    let t = rand() * 10;
    for (let j = 0; j < opsPerClient; j++) {
      const call = t;
      const ret = call + 1 + rand() * 20;
      const key = `k${Math.floor(rand() * keys)}`;
      const r = rand();
      const kind: KvHistoryOpKind = r < 0.4
        ? "get"
        : r < 0.7
        ? "append"
        : r < 0.8
        ? "put"
        : r < 0.9
        ? "cas"
        : "del";
      const o: KvHistoryOp = { clientId: c, op: kind, key, call, return: ret };
      if (kind === "append" || kind === "put" || kind === "cas") o.value = `<${c}.${j}>`;
      const unknown = kind !== "get" && rand() < 0.03;
      const at = call + rand() * (ret - call);
      // An unknown write may apply inside its interval, much later, or never.
      const applies = !unknown || rand() < 0.5;
      pending.push({ op: o, at: unknown && rand() < 0.5 ? at + 100 : at, applies });
      // After a timeout the client moves on; its unknown write stays pending forever.
      if (unknown) o.return = undefined;
      t = ret + rand() * 3;
    }
  }
  pending.sort((a, b) => a.at - b.at);
  const state = new Map<string, string>();
  for (const { op: o, applies } of pending) {
    const current = state.get(o.key) ?? null;
    if (o.op === "cas") o.expect = rand() < 0.6 ? current : "<nope>";
    if (!applies) continue;
    switch (o.op) {
      case "get":
        o.output = { value: current };
        break;
      case "put":
        state.set(o.key, o.value!);
        break;
      case "append":
        state.set(o.key, (current ?? "") + o.value!);
        break;
      case "del":
        o.output = { existed: current !== null };
        state.delete(o.key);
        break;
      case "cas": {
        const ok = current === o.expect;
        o.output = ok ? { ok } : { ok, current };
        if (ok) state.set(o.key, o.value!);
      }
    }
  }
  return pending.map((p) => p.op);
}

Deno.test("linearizability: large simulated concurrent histories pass, corrupted ones fail", () => {
  for (const seed of [1, 2, 3]) {
    const history = simulate(seed, 10, 150, 4);
    assert.ok(history.length > 600);
    assertOk(history);
    // Corrupt one completed read that saw a value: the history must no longer check.
    const victim = history.find((o) => o.op === "get" && o.return !== undefined && o.output?.value);
    assert.ok(victim);
    victim.output = { value: victim.output!.value + "<bogus>" };
    const result = checkLinearizability(history);
    assert.equal(result.ok, false, `seed ${seed}`);
    assert.equal(!result.ok && result.key, victim.key);
  }
});
