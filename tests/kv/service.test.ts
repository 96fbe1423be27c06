import assert from "node:assert/strict";
import {
  InvalidRequestError,
  TimeoutError,
  TooLargeError,
  UnavailableError,
  utf8,
  utf8Length,
  validateKey,
  validateValue,
} from "../../kv/service.ts";
import {
  handleKvRpc,
  type KvRpcReply,
  parseKvRpcReply,
  validateKvRpcParams,
} from "../../kv/protocol.ts";
import { FakeService } from "./fake_service.ts";

Deno.test("service: utf8Length agrees with TextEncoder", () => {
  for (const s of ["", "abc", "é", "€uro", "😀x", "\ud800", "a\udc00b", "\ud83d"]) {
    assert.equal(utf8Length(s), new TextEncoder().encode(s).length, JSON.stringify(s));
  }
});

Deno.test("service: key and value limits", () => {
  const limits = { maxKeyBytes: 4, maxValueBytes: 2 };
  assert.throws(() => validateKey("", limits), InvalidRequestError);
  validateKey("abcd", limits);
  assert.throws(() => validateKey("abcde", limits), TooLargeError);
  assert.throws(() => validateKey("éé€", limits), TooLargeError);
  validateKey("é€".slice(0, 1) + "é", limits);
  validateValue(new Uint8Array(2), limits);
  assert.throws(() => validateValue(new Uint8Array(3), limits), /Value too large: 3 bytes/);
  validateKey("k".repeat(1024));
  assert.throws(() => validateKey("k".repeat(1025)), TooLargeError);
});

Deno.test("service: validateKvRpcParams accepts good params and keeps only known fields", () => {
  const v = new Uint8Array([1]);
  assert.deepEqual(validateKvRpcParams({ op: "get", key: "k", extra: 1 }), {
    op: "get",
    key: "k",
    stale: false,
  });
  assert.deepEqual(validateKvRpcParams({ op: "get", key: "k", stale: true }), {
    op: "get",
    key: "k",
    stale: true,
  });
  assert.deepEqual(
    validateKvRpcParams({ op: "put", key: "k", value: v, clientId: null, seq: null }),
    { op: "put", key: "k", value: v },
  );
  assert.deepEqual(
    validateKvRpcParams({ op: "cas", key: "k", value: v, expect: null, clientId: "c", seq: 2 }),
    { op: "cas", key: "k", value: v, expect: null, clientId: "c", seq: 2 },
  );
  assert.deepEqual(validateKvRpcParams({ op: "del", key: "k" }), { op: "del", key: "k" });
});

Deno.test("service: validateKvRpcParams rejects bad params", () => {
  const v = new Uint8Array([1]);
  const bad: [unknown, typeof InvalidRequestError | typeof TooLargeError][] = [
    [null, InvalidRequestError],
    ["get", InvalidRequestError],
    [{ op: "nope", key: "k" }, InvalidRequestError],
    [{ op: "get", key: 5 }, InvalidRequestError],
    [{ op: "get", key: "" }, InvalidRequestError],
    [{ op: "get", key: "k", stale: "yes" }, InvalidRequestError],
    [{ op: "put", key: "k" }, InvalidRequestError],
    [{ op: "put", key: "k", value: "v" }, InvalidRequestError],
    [{ op: "cas", key: "k", value: v }, InvalidRequestError],
    [{ op: "put", key: "k", value: v, clientId: "c" }, InvalidRequestError],
    [{ op: "put", key: "k", value: v, seq: 1 }, InvalidRequestError],
    [{ op: "put", key: "k", value: v, clientId: "c", seq: 1.5 }, InvalidRequestError],
    [{ op: "put", key: "k", value: v, clientId: "c".repeat(200), seq: 1 }, InvalidRequestError],
    [{ op: "put", key: "k", value: new Uint8Array(9) }, TooLargeError],
    [{ op: "cas", key: "k", value: v, expect: new Uint8Array(9) }, TooLargeError],
    [{ op: "get", key: "123456789" }, TooLargeError],
  ];
  for (const [params, type] of bad) {
    assert.throws(
      () => validateKvRpcParams(params, { maxKeyBytes: 8, maxValueBytes: 8 }),
      type,
      JSON.stringify(params),
    );
  }
});

Deno.test("service: handleKvRpc runs requests and shapes replies", async () => {
  const service = new FakeService();
  const call = (p: unknown) => handleKvRpc(service, p, { leaderHint: () => "127.0.0.1:7001" });
  const write = async (p: unknown) => {
    const reply = await call(p);
    assert.equal(reply.kind, "write", JSON.stringify(reply));
    return reply as Extract<KvRpcReply, { kind: "write" }>;
  };
  assert.deepEqual(await call({ op: "put", key: "k", value: utf8("a") }), {
    kind: "write",
    index: 1,
    result: { status: "ok" },
    leader: "127.0.0.1:7001",
  });
  assert.deepEqual(await call({ op: "append", key: "k", value: utf8("b") }), {
    kind: "write",
    index: 2,
    result: { status: "ok" },
    leader: "127.0.0.1:7001",
  });
  assert.deepEqual(await call({ op: "get", key: "k" }), {
    kind: "read",
    index: 2,
    value: utf8("ab"),
    leader: "127.0.0.1:7001",
  });
  assert.deepEqual(
    (await call({ op: "get", key: "x", stale: true }) as { value: unknown }).value,
    null,
  );
  assert.deepEqual(service.reads.map((r) => r.stale), [false, true]);
  const cas = await write({ op: "cas", key: "k", value: utf8("c"), expect: null });
  assert.equal(cas.result.status, "mismatch");
  assert.deepEqual(cas.result, { status: "mismatch", current: utf8("ab") });
  assert.equal(
    (await write({ op: "cas", key: "k", value: utf8("c"), expect: utf8("ab") })).result.status,
    "ok",
  );
  assert.deepEqual((await write({ op: "del", key: "k" })).result, { status: "ok", existed: true });
  assert.deepEqual((await write({ op: "del", key: "k" })).result, { status: "ok", existed: false });
  await call({ op: "put", key: "s", value: utf8("1"), clientId: "c", seq: 5 });
  const stale = (await write({ op: "put", key: "s", value: utf8("1"), clientId: "c", seq: 4 }))
    .result;
  assert.equal(stale.status, "stale");
  assert.match((stale as { error: string }).error, /older than the last applied/);
});

Deno.test("service: handleKvRpc answers failures with their code, not a message prefix", async () => {
  const service = new FakeService();
  service.failWith = new UnavailableError("Election in progress");
  assert.deepEqual(await handleKvRpc(service, { op: "get", key: "k" }), {
    kind: "error",
    code: "unavailable",
    message: "Election in progress",
  });
  service.failWith = new TimeoutError("Not committed");
  const timeout = await handleKvRpc(service, { op: "del", key: "k" });
  assert.equal(timeout.kind === "error" && timeout.code, "timeout");
  service.failWith = undefined;
  const invalid = await handleKvRpc(service, { op: "del", key: "" });
  assert.equal(invalid.kind === "error" && invalid.code, "invalid");
  const tooLarge = await handleKvRpc(service, { op: "del", key: "k".repeat(2000) });
  assert.equal(tooLarge.kind === "error" && tooLarge.code, "too_large");
  // A forwarded request runs only on the leader side; without one it is refused as unavailable.
  const forwarded = await handleKvRpc(service, { op: "del", key: "k", forwarded: true });
  assert.equal(forwarded.kind === "error" && forwarded.code, "unavailable");
  assert.equal(service.writes.length, 0);
  const leaderSide = new FakeService();
  const viaLeader = await handleKvRpc(service, {
    op: "put",
    key: "k",
    value: utf8("v"),
    forwarded: true,
  }, {
    forwarded: leaderSide,
  });
  assert.equal(viaLeader.kind, "write");
  assert.deepEqual(leaderSide.writes, [{ op: "put", key: "k", value: utf8("v") }]);
  assert.equal(service.writes.length, 0);
  // Anything that is not a KvError is not the protocol's to shape.
  service.failWith = new Error("bug");
  await assert.rejects(handleKvRpc(service, { op: "get", key: "k" }), /bug/);
});

Deno.test("service: parseKvRpcReply accepts the declared shapes and nothing else", () => {
  const v = utf8("v");
  assert.deepEqual(parseKvRpcReply({ kind: "read", index: 3, value: v, leader: "h:1" }, "read"), {
    kind: "read",
    index: 3,
    value: v,
    leader: "h:1",
  });
  assert.deepEqual(parseKvRpcReply({ kind: "read", index: 3, value: null }, "read"), {
    kind: "read",
    index: 3,
    value: null,
  });
  const mismatch = { kind: "write", index: 4, result: { status: "mismatch", current: v } };
  assert.deepEqual(parseKvRpcReply(mismatch, "write"), mismatch);
  const error = { kind: "error", code: "timeout", message: "Not committed" };
  assert.deepEqual(parseKvRpcReply(error, "read"), error);
  const bad: [unknown, "read" | "write"][] = [
    [null, "read"],
    [{ kind: "read", index: 1, value: null }, "write"],
    [{ kind: "write", index: 1, result: { status: "ok" } }, "read"],
    [{ kind: "read", index: -1, value: null }, "read"],
    [{ kind: "read", index: 1, value: "text" }, "read"],
    [{ kind: "write", index: 1, result: { status: "done" } }, "write"],
    [{ kind: "write", index: 1, result: { status: "stale" } }, "write"],
    [{ kind: "write", index: 1, result: { status: "mismatch", current: 5 } }, "write"],
    [{ kind: "error", code: "nope", message: "m" }, "read"],
    [{ kind: "error", code: "invalid" }, "write"],
    [{ ok: true, index: 1 }, "write"],
  ];
  for (const [raw, kind] of bad) {
    assert.throws(() => parseKvRpcReply(raw, kind), TypeError, JSON.stringify(raw));
  }
});
