/**
 * Bad input against real `raftmr serve` processes: garbage, a 4 GiB length prefix, oversized and
 * malformed frames on the peer port, and malformed HTTP requests. Each is answered with a 4xx or
 * a closed connection, and the node keeps serving everyone else.
 */
import assert from "node:assert/strict";
import { encodeFrame, FrameDecoder } from "../../net/frame.ts";
import { peerHello } from "../../net/handshake.ts";
import { ProcessCluster } from "../lib/cluster.ts";
import { call, Clerk, poll, read, SERVE_ARGS } from "./daemon_helpers.ts";

/** Liveness guard for raw socket reads (not a timing assertion: it only stops a hang). */
const READ_GUARD_MS = 15_000;

/**
 * Sends `bytes` on a fresh connection and reads until the peer closes it. Returns what was read,
 * or throws if the connection is still open after the guard (the server ignored bad input).
 */
async function sendAndAwaitClose(port: number, bytes: Uint8Array): Promise<Uint8Array> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const received: number[] = [];
  const timer = setTimeout(() => {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }, READ_GUARD_MS);
  let closedByPeer = false;
  try {
    try {
      await conn.write(bytes);
      // Half-close: a server waiting for the rest of a truncated request now sees end of input.
      await conn.closeWrite();
    } catch {
      // The server may close before reading everything: that is a close too.
    }
    const buffer = new Uint8Array(64 * 1024);
    while (true) {
      let n: number | null;
      try {
        n = await conn.read(buffer);
      } catch (error) {
        // Reset by the peer counts as closed; our own guard firing shows up as BadResource.
        closedByPeer = !(error instanceof Deno.errors.BadResource);
        break;
      }
      if (n === null) {
        closedByPeer = true;
        break;
      }
      received.push(...buffer.subarray(0, n));
    }
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
  assert.ok(closedByPeer, `port ${port} kept the connection open after bad input`);
  return new Uint8Array(received);
}

function u32(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n);
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** The cluster still works: a write and a linearizable read through every node, /healthz 200. */
async function assertHealthy(cluster: ProcessCluster, key: string): Promise<void> {
  assert.deepEqual(cluster.running, cluster.ids, `a node died\n${cluster.dump()}`);
  for (const id of cluster.ids) {
    const w = await new Clerk(cluster).put(id, `${key}-${id}`, "still-ok");
    assert.equal(w.status, 200, `write through node ${id}: ${w.body}\n${cluster.dump()}`);
    const r = await read(cluster, id, `${key}-${id}`);
    assert.equal(r.status, 200, `read through node ${id}: ${r.body}`);
    assert.equal(r.body, "still-ok");
    await poll(
      async () => ((await call(`${cluster.url(id)}/healthz`)).status === 200 ? true : undefined),
      () => `node ${id} /healthz is not 200\n${cluster.dump()}`,
    );
  }
}

Deno.test("daemon: garbage and oversized frames on the peer port close that connection only", async () => {
  // Insecure, so the bytes reach the frame decoder and the handshake instead of failing TLS.
  const cluster = await ProcessCluster.start({ nodes: 3, extraArgs: SERVE_ARGS, insecure: true });
  try {
    const leader = await cluster.waitForLeader();
    const follower = cluster.ids.find((id) => id !== leader)!;
    const bad: [string, Uint8Array][] = [
      // Random bytes; the first four set the length, so force it under the limit too.
      ["random garbage", crypto.getRandomValues(new Uint8Array(4096))],
      ["garbage with a small length", concat(u32(16), crypto.getRandomValues(new Uint8Array(16)))],
      ["a 4 GiB length prefix", u32(0xffff_ffff)],
      ["a 4 GiB length prefix with data", concat(u32(0xffff_ffff), new Uint8Array(8192))],
      ["a frame just over 64 MiB", concat(u32(64 * 1024 * 1024 + 1), new Uint8Array(1024))],
      ["msgpack's never-used byte", concat(u32(4), new Uint8Array([0xc1, 0xc1, 0xc1, 0xc1]))],
      ["a frame that is not an RPC array", encodeFrame("hello")],
      ["an RPC frame of an unknown kind", encodeFrame([9, 1, "kv", {}])],
      ["a request without a method name", encodeFrame([0, 1, 42, {}])],
      ["a notification of an unknown method", encodeFrame([3, "nope", {}])],
    ];
    for (const id of [leader, follower]) {
      for (const [what, bytes] of bad) {
        await sendAndAwaitClose(cluster.node(id).peerPort, bytes).catch((error) => {
          throw new Error(`${what} to node ${id}: ${error.message}`);
        });
      }
    }
    // Well-framed but nonsensical Raft traffic and KV calls: dropped or answered with an error.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: cluster.node(leader).peerPort });
    try {
      await conn.write(encodeFrame(peerHello(follower)));
      await conn.write(encodeFrame([3, "raft", [{ type: "nonsense", to: leader, from: 99 }]]));
      await conn.write(encodeFrame([3, "raft", "not a batch"]));
      await conn.write(encodeFrame([0, 7, "kv", { op: "explode", key: "k" }]));
      // The kv call is answered on this same connection (after the handshake's Welcome).
      const decoder = new FrameDecoder();
      const buffer = new Uint8Array(4096);
      const frames: unknown[] = [];
      // A reply to call 7 (an error reply, or a typed error inside a reply).
      while (!frames.some((f) => Array.isArray(f) && (f[0] === 1 || f[0] === 2) && f[1] === 7)) {
        const n = await conn.read(buffer);
        assert.ok(n !== null, `no reply to a malformed kv call; got ${JSON.stringify(frames)}`);
        frames.push(...decoder.push(buffer.slice(0, n)));
      }
      assert.equal((frames[0] as { type?: string }).type, "welcome");
    } finally {
      conn.close();
    }
    await assertHealthy(cluster, "after-garbage");
  } finally {
    await cluster.stop();
  }
});

Deno.test("daemon: malformed HTTP requests get 4xx and the node stays healthy", async () => {
  const cluster = await ProcessCluster.start({ nodes: 3, extraArgs: SERVE_ARGS });
  try {
    const base = cluster.url(2);
    const expect4xx = async (
      what: string,
      url: string,
      init: RequestInit = {},
      orClosed = false,
    ) => {
      const r = await call(url, init);
      if (orClosed && r.status === 0) return 0; // The HTTP layer dropped it: also acceptable.
      assert.ok(r.status >= 400 && r.status < 500, `${what}: ${r.status} ${r.body} ${r.error}`);
      // Errors are JSON with an "error" field (hyper's own rejections have no body).
      if (r.body.length > 0) assert.equal(typeof JSON.parse(r.body).error, "string", what);
      return r.status;
    };
    assert.equal(await expect4xx("bad percent-encoding", `${base}/v1/kv/%zz`), 400);
    assert.equal(await expect4xx("truncated escape", `${base}/v1/kv/abc%4`), 400);
    await expect4xx("key over 1 KiB", `${base}/v1/kv/${"k".repeat(2000)}`);
    // Over the HTTP server's header limit: hyper answers 431/414 or closes the connection.
    await expect4xx("huge key", `${base}/v1/kv/${"k".repeat(100_000)}`, {}, true);
    await expect4xx("huge key on a write", `${base}/v1/kv/${"k".repeat(5000)}`, {
      method: "PUT",
      body: "v",
    });
    const seqs = ["abc", "1.5", "-1", "1e3", "99999999999999999999", ""];
    for (const seq of seqs) {
      assert.equal(
        await expect4xx(`X-Request-Seq ${JSON.stringify(seq)}`, `${base}/v1/kv/s`, {
          method: "PUT",
          body: "v",
          headers: { "x-client-id": "c", "x-request-seq": seq },
        }),
        400,
      );
    }
    await expect4xx("client id without seq", `${base}/v1/kv/s`, {
      method: "PUT",
      body: "v",
      headers: { "x-client-id": "c" },
    });
    await expect4xx("seq without client id", `${base}/v1/kv/s`, {
      method: "POST",
      body: "v",
      headers: { "x-request-seq": "1" },
    });
    await expect4xx("bad prevExist", `${base}/v1/kv/s?prevExist=maybe`, { method: "PUT" });
    await expect4xx("value over 1 MiB", `${base}/v1/kv/big`, {
      method: "PUT",
      body: new Uint8Array(1024 * 1024 + 1),
    });
    assert.equal(await expect4xx("unknown route", `${base}/v2/nothing`), 404);
    assert.equal(
      await expect4xx("POST without /append", `${base}/v1/kv/s`, { method: "POST" }),
      404,
    );
    await expect4xx("unknown method", `${base}/v1/kv/s`, { method: "PATCH" });
    await expect4xx("empty key", `${base}/v1/kv/`);

    // Requests that are not HTTP at all, on a raw socket: a 400 or a closed connection.
    const httpPort = cluster.node(2).httpPort;
    const raw = [
      "NOT HTTP AT ALL\r\n\r\n",
      "GET /v1/kv/x HTTP/1.1\r\nHost: a\r\nContent-Length: nope\r\n\r\n",
      "PUT /v1/kv/x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nshort",
      "\u0000\u0001\u0002\u00ff".repeat(1000),
    ];
    for (const text of raw) {
      const reply = new TextDecoder().decode(
        await sendAndAwaitClose(httpPort, new TextEncoder().encode(text)),
      );
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(reply)?.[1];
      assert.ok(
        status === undefined || status.startsWith("4"),
        `raw ${JSON.stringify(text)}: ${reply}`,
      );
    }
    // The short-bodied PUT must not have written anything.
    assert.equal((await read(cluster, 2, "x")).status, 404);
    await assertHealthy(cluster, "after-bad-http");
  } finally {
    await cluster.stop();
  }
});
