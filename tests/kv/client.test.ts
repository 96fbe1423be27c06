import assert from "node:assert/strict";
import { ConnectionLostError, RemoteError, RpcServer, RpcTimeoutError } from "../../net/rpc.ts";
import {
  DeadlineExceededError,
  KvClient,
  type KvConnection,
  KvRequestError,
  parseEndpoint,
} from "../../kv/client.ts";
import { handleKvRpc, KV_RPC_METHOD, type KvRpcParams } from "../../kv/protocol.ts";
import { FakeService } from "./fake_service.ts";

const text = (v: Uint8Array | null) => (v === null ? null : new TextDecoder().decode(v));

Deno.test("client: parseEndpoint", () => {
  assert.deepEqual(parseEndpoint("127.0.0.1:7001"), { hostname: "127.0.0.1", port: 7001 });
  assert.deepEqual(parseEndpoint("[::1]:80"), { hostname: "::1", port: 80 });
  for (const bad of ["", "host", ":80", "h:0", "h:70000", "h:8x"]) {
    assert.throws(() => parseEndpoint(bad), TypeError, bad);
  }
  assert.throws(() => new KvClient([]), TypeError);
  assert.throws(() => new KvClient(["nope"]), TypeError);
});

Deno.test("client: all operations over a real RPC server", async () => {
  const service = new FakeService();
  const server = new RpcServer({ handshake: { selfId: 1, requirePeerCertificate: false } });
  server.handle(KV_RPC_METHOD, (params) => handleKvRpc(service, params));
  const { port } = server.listen("127.0.0.1", 0);
  const client = new KvClient([`127.0.0.1:${port}`]);
  try {
    assert.deepEqual(await client.get("k"), { value: null, index: 0 });
    assert.deepEqual(await client.put("k", "a"), { index: 1 });
    await client.append("k", new Uint8Array([0x62]));
    assert.equal(text((await client.get("k")).value), "ab");
    assert.equal(text((await client.get("k", { stale: true })).value), "ab");
    const miss = await client.cas("k", "zz", "c");
    assert.equal(miss.ok, false);
    assert.equal(text(miss.current), "ab");
    const hit = await client.cas("k", "ab", "c");
    assert.deepEqual({ ok: hit.ok, current: text(hit.current) }, { ok: true, current: "c" });
    assert.equal((await client.cas("n", null, "new")).ok, true);
    assert.deepEqual(await client.del("k"), { index: 6, existed: true });
    assert.equal((await client.del("k")).existed, false);
    // Every write carried this client's id and consecutive sequence numbers.
    assert.deepEqual(service.writes.map((w) => [w.clientId, w.seq]), [
      [client.clientId, 1],
      [client.clientId, 2],
      [client.clientId, 3],
      [client.clientId, 4],
      [client.clientId, 5],
      [client.clientId, 6],
      [client.clientId, 7],
    ]);
    await assert.rejects(client.put("", "x"), KvRequestError);
    // A lost reply: the write applied, the retry with the same (id, seq) applies nothing new.
    service.loseReplies = 1;
    await client.append("log", "x");
    assert.equal(text(service.sm.get("log")), "x");
    assert.equal(service.writes.at(-1)!.seq, service.writes.at(-2)!.seq);
  } finally {
    client.close();
    await server.close();
  }
});

/** What a fake endpoint sees: any params, with the session fields a write carries. */
type Recorded = KvRpcParams & { clientId?: string; seq?: number };
type Behaviour = (params: Recorded) => unknown;

/** Fake endpoints: each answers by its behaviour; every call is recorded. */
function fakeCluster(behaviours: Record<string, Behaviour>) {
  const calls: { endpoint: string; params: Recorded }[] = [];
  let closed = 0;
  const connect = (endpoint: string): KvConnection => ({
    call(_method, params) {
      calls.push({ endpoint, params: { ...(params as Recorded) } });
      try {
        return Promise.resolve(behaviours[endpoint](params as Recorded));
      } catch (error) {
        return Promise.reject(error);
      }
    },
    close() {
      closed++;
    },
  });
  return { calls, connect, closedCount: () => closed };
}

const lost: Behaviour = () => {
  throw new ConnectionLostError("Connection refused");
};
const unavailable: Behaviour = () => ({
  kind: "error",
  code: "unavailable",
  message: "No leader is known",
});

Deno.test("client: rotates past dead and leaderless nodes, reusing the same (id, seq)", async () => {
  let bTries = 0;
  const cluster = fakeCluster({
    "a:1": lost,
    "b:1": () => {
      if (++bTries === 1) {
        return { kind: "error", code: "unavailable", message: "Election in progress" };
      }
      if (bTries === 2) throw new RpcTimeoutError("kv", 10);
      return { kind: "write", index: 9, result: { status: "ok" }, leader: "c:1" };
    },
    "c:1": () => ({ kind: "read", index: 10, value: null }),
  });
  const client = new KvClient(["a:1", "b:1"], { connect: cluster.connect, retryPauseMs: 1 });
  try {
    const { index } = await client.put("k", "v");
    assert.equal(index, 9);
    const writes = cluster.calls.filter((c) => c.params.op === "put");
    assert.ok(writes.length >= 3);
    assert.ok(writes.every((c) => c.params.clientId === client.clientId && c.params.seq === 1));
    // The leader hint (not among the given endpoints) is used from now on.
    assert.equal(client.preferredEndpoint, "c:1");
    await client.get("k");
    assert.equal(cluster.calls.at(-1)!.endpoint, "c:1");
  } finally {
    client.close();
  }
  assert.equal(cluster.closedCount(), 3);
});

Deno.test("client: gives up at the deadline with DeadlineExceededError", async () => {
  const cluster = fakeCluster({ "a:1": unavailable, "b:1": lost });
  const client = new KvClient(["a:1", "b:1"], {
    connect: cluster.connect,
    // Long enough that a loaded process, descheduled after its first call, still rotates to
    // the second endpoint before the deadline (30 ms did not always).
    timeoutMs: 500,
    retryPauseMs: 1,
    maxRetryPauseMs: 5,
  });
  try {
    await assert.rejects(client.append("k", "v"), (e: Error) => {
      assert.ok(e instanceof DeadlineExceededError);
      assert.ok(e.lastError !== undefined);
      return true;
    });
    assert.ok(cluster.calls.length >= 2);
    // The next write takes a new sequence number.
    await assert.rejects(client.append("k", "v"), DeadlineExceededError);
    assert.equal(cluster.calls.at(-1)!.params.seq, 2);
  } finally {
    client.close();
  }
});

Deno.test("client: a refused request is not retried", async () => {
  const cluster = fakeCluster({
    "a:1": () => {
      throw new RemoteError("Key too large: 2000 bytes, limit 1024");
    },
  });
  const client = new KvClient(["a:1"], { connect: cluster.connect });
  try {
    await assert.rejects(client.put("k", "v"), /Key too large/);
    assert.equal(cluster.calls.length, 1);
  } finally {
    client.close();
  }
});

Deno.test("client: a refusal keeps its code and is not retried", async () => {
  const cluster = fakeCluster({
    "a:1": (params) =>
      params.op === "put"
        ? { kind: "error", code: "too_large", message: "Value too large: 9 bytes, limit 8" }
        : { kind: "write", index: 3, result: { status: "stale", error: "Seq 1 is old" } },
  });
  const client = new KvClient(["a:1"], { connect: cluster.connect });
  try {
    await assert.rejects(client.put("k", "v"), (e: Error) => {
      assert.ok(e instanceof KvRequestError);
      assert.equal(e.code, "too_large");
      return true;
    });
    await assert.rejects(client.append("k", "v"), (e: Error) => {
      assert.ok(e instanceof KvRequestError);
      assert.equal(e.code, "stale");
      assert.equal(e.message, "Seq 1 is old");
      return true;
    });
    assert.equal(cluster.calls.length, 2);
  } finally {
    client.close();
  }
});

Deno.test("client: concurrent writes are issued one at a time in call order", async () => {
  let inFlight = 0;
  let maxInFlight = 0;
  const seqs: number[] = [];
  const connect = (): KvConnection => ({
    async call(_method, params) {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await Promise.resolve();
      await Promise.resolve();
      seqs.push((params as Recorded).seq!);
      inFlight--;
      return { kind: "write", index: seqs.length, result: { status: "ok" } };
    },
    close() {},
  });
  const client = new KvClient(["a:1"], { connect });
  try {
    await Promise.all([client.put("a", "1"), client.append("a", "2"), client.del("a")]);
    assert.equal(maxInFlight, 1);
    assert.deepEqual(seqs, [1, 2, 3]);
  } finally {
    client.close();
  }
});

Deno.test("client: close() ends an operation waiting to retry", async () => {
  const cluster = fakeCluster({ "a:1": unavailable });
  const client = new KvClient(["a:1"], { connect: cluster.connect, retryPauseMs: 60_000 });
  const pending = client.get("k");
  while (cluster.calls.length === 0) await new Promise((r) => setTimeout(r, 1));
  client.close();
  await assert.rejects(pending, ConnectionLostError);
});
