import assert from "node:assert/strict";
import {
  handleKvRpc,
  InvalidRequestError,
  TimeoutError,
  TooLargeError,
  UnavailableError,
  utf8,
  utf8Length,
  validateKey,
  validateKvRpcParams,
  validateValue,
} from "../../kv/service.ts";
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
  assert.deepEqual(await call({ op: "put", key: "k", value: utf8("a") }), {
    ok: true,
    index: 1,
    leader: "127.0.0.1:7001",
  });
  assert.deepEqual(await call({ op: "append", key: "k", value: utf8("b") }), {
    ok: true,
    index: 2,
    leader: "127.0.0.1:7001",
  });
  assert.deepEqual(await call({ op: "get", key: "k" }), {
    ok: true,
    index: 2,
    value: utf8("ab"),
    leader: "127.0.0.1:7001",
  });
  assert.deepEqual((await call({ op: "get", key: "x", stale: true })).value, null);
  assert.deepEqual(service.reads.map((r) => r.stale), [false, true]);
  const cas = await call({ op: "cas", key: "k", value: utf8("c"), expect: null });
  assert.equal(cas.ok, false);
  assert.deepEqual(cas.current, utf8("ab"));
  assert.equal(
    (await call({ op: "cas", key: "k", value: utf8("c"), expect: utf8("ab") })).ok,
    true,
  );
  assert.equal((await call({ op: "del", key: "k" })).existed, true);
  assert.equal((await call({ op: "del", key: "k" })).existed, false);
  await call({ op: "put", key: "s", value: utf8("1"), clientId: "c", seq: 5 });
  await assert.rejects(
    call({ op: "put", key: "s", value: utf8("1"), clientId: "c", seq: 4 }),
    /older than the last applied/,
  );
});

Deno.test("service: handleKvRpc turns retryable errors into prefixed messages", async () => {
  const service = new FakeService();
  service.failWith = new UnavailableError("Election in progress");
  await assert.rejects(handleKvRpc(service, { op: "get", key: "k" }), (e: Error) => {
    assert.equal(e.message, "unavailable: Election in progress");
    return true;
  });
  service.failWith = new TimeoutError("Not committed");
  await assert.rejects(handleKvRpc(service, { op: "del", key: "k" }), /^Error: timeout: /);
  service.failWith = undefined;
  await assert.rejects(handleKvRpc(service, { op: "del", key: "" }), InvalidRequestError);
});
