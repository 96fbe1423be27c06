import assert from "node:assert/strict";
import {
  ConnectionLostError,
  RemoteError,
  RpcClient,
  RpcServer,
  RpcTimeoutError,
} from "../../net/rpc.ts";
import { encodeFrame } from "../../net/frame.ts";

function startServer(): { server: RpcServer; port: number } {
  const server = new RpcServer({ maxFrameBytes: 1024 * 1024 });
  server.handle("echo", (params) => params);
  server.handle("delayedEcho", async (params) => {
    const { value, ms } = params as { value: number; ms: number };
    await new Promise((resolve) => setTimeout(resolve, ms));
    return value;
  });
  server.handle("fail", () => {
    throw new Error("Handler refused: bad input");
  });
  server.handle("never", () => new Promise(() => {}));
  const { port } = server.listen("127.0.0.1", 0);
  return { server, port };
}

Deno.test("10,000 concurrent calls over one connection all get their own replies", async () => {
  const { server, port } = startServer();
  const client = new RpcClient({ hostname: "127.0.0.1", port });
  const calls = Array.from({ length: 10_000 }, (_, i) => client.call("echo", { i }));
  const replies = await Promise.all(calls);
  replies.forEach((reply, i) => assert.deepEqual(reply, { i }));
  assert.equal(server.connectionCount, 1);
  client.close();
  await server.close();
});

Deno.test("replies come back out of order and a slow handler does not block others", async () => {
  const { server, port } = startServer();
  const client = new RpcClient({ hostname: "127.0.0.1", port });
  const order: number[] = [];
  // 1 s apart: both frames leave in one turn, but a loaded process may read them in two.
  const slow = client.call("delayedEcho", { value: 1, ms: 1_000 }).then((v) =>
    order.push(v as number)
  );
  const fast = client.call("delayedEcho", { value: 2, ms: 1 }).then((v) => order.push(v as number));
  await Promise.all([slow, fast]);
  assert.deepEqual(order, [2, 1]);
  client.close();
  await server.close();
});

Deno.test("remote errors, timeouts and aborts are typed", async () => {
  const { server, port } = startServer();
  const client = new RpcClient({ hostname: "127.0.0.1", port });
  await assert.rejects(
    client.call("fail"),
    (err: unknown) => err instanceof RemoteError && err.message === "Handler refused: bad input",
  );
  await assert.rejects(client.call("nope"), RemoteError);
  await assert.rejects(client.call("never", null, { timeoutMs: 50 }), RpcTimeoutError);
  const controller = new AbortController();
  const aborted = client.call("never", null, { signal: controller.signal });
  controller.abort(new Error("Caller gave up"));
  await assert.rejects(aborted, /Caller gave up/);
  // The connection is still good after all of that.
  assert.equal(await client.call("echo", "still here"), "still here");
  client.close();
  await server.close();
});

Deno.test("a refused connection fails promptly, and the client reconnects once the server is up", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const client = new RpcClient({ hostname: "127.0.0.1", port }, { maxBackoffMs: 50 });
  await assert.rejects(client.call("echo", 1), ConnectionLostError);
  const server = new RpcServer();
  server.handle("echo", (p) => p);
  server.listen("127.0.0.1", port);
  let reply: unknown;
  for (let attempt = 0; attempt < 50 && reply === undefined; attempt++) {
    reply = await client.call("echo", 42).catch(() => undefined);
  }
  assert.equal(reply, 42);
  client.close();
  await server.close();
});

Deno.test("killing the server process mid-call fails the call with a connection error", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./fixtures/echo_server.ts", import.meta.url).pathname],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  const port = Number(text.trim());
  const client = new RpcClient({ hostname: "127.0.0.1", port }, { timeoutMs: 60_000 });
  assert.equal(await client.call("echo", "up"), "up");
  const hanging = client.call("hang");
  child.kill("SIGKILL");
  await assert.rejects(hanging, ConnectionLostError);
  await child.status;
  reader.releaseLock();
  await child.stdout.cancel();
  client.close();
});

async function sendRaw(port: number, bytes: Uint8Array): Promise<"closed"> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(bytes).catch(() => 0);
  const buffer = new Uint8Array(16);
  // The server must close this connection: read() then returns null (or fails with a reset).
  const n = await conn.read(buffer).catch(() => null);
  conn.close();
  assert.equal(n, null);
  return "closed";
}

Deno.test("garbage, a 4 GiB length and a truncated frame close only that connection", async () => {
  const { server, port } = startServer();
  const client = new RpcClient({ hostname: "127.0.0.1", port });
  assert.equal(await client.call("echo", "before"), "before");

  await sendRaw(port, new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  await sendRaw(port, new Uint8Array([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]));
  await sendRaw(port, encodeFrame({ not: "an rpc frame" }));
  // A truncated frame: the sender goes away halfway through; the server drops that connection.
  const truncated = await Deno.connect({ hostname: "127.0.0.1", port });
  await truncated.write(encodeFrame([0, 1, "echo", "x".repeat(100)]).slice(0, 20));
  truncated.close();

  assert.equal(await client.call("echo", "after"), "after");
  const fresh = new RpcClient({ hostname: "127.0.0.1", port });
  assert.equal(await fresh.call("echo", "fresh"), "fresh");
  fresh.close();
  client.close();
  await server.close();
});

Deno.test("an oversized reply closes the client's connection with an error, not a hang", async () => {
  const server = new RpcServer();
  server.handle("big", () => "y".repeat(4096));
  const { port } = server.listen("127.0.0.1", 0);
  const client = new RpcClient({ hostname: "127.0.0.1", port }, { maxFrameBytes: 1024 });
  await assert.rejects(
    client.call("big"),
    (err: unknown) => err instanceof ConnectionLostError && /exceeds the maximum/.test(err.message),
  );
  client.close();
  await server.close();
});
