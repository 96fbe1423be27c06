/**
 * The per-listener connection cap (issue 12, resource limits): past `maxConnections` a new
 * connection is accepted and closed at once, counted as refused, and the listener keeps serving
 * the connections it holds and takes new ones as soon as one leaves. Both kinds of listener:
 * the framed RPC port (peer, MapReduce) and the HTTP port.
 */
import assert from "node:assert/strict";
import { RpcClient, RpcServer } from "../../net/rpc.ts";
import { serveHttp } from "../../net/http_listener.ts";

/** Resolves with whether the server closed `conn` (read returned EOF or failed). */
async function closedByServer(conn: Deno.Conn): Promise<boolean> {
  const n = await conn.read(new Uint8Array(16)).catch(() => null);
  return n === null;
}

async function waitFor(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

Deno.test("conn cap: an RPC listener past its cap closes new connections and keeps serving", async () => {
  const server = new RpcServer({ maxConnections: 2, name: "capped", log: () => {} });
  server.handle("echo", (params) => params);
  const addr = server.listen("127.0.0.1", 0);
  const clients = [new RpcClient(addr), new RpcClient(addr)];
  try {
    for (const client of clients) assert.equal(await client.call("echo", "hi"), "hi");
    await waitFor(() => server.gate.open === 2, "two open connections");
    // The third is over the cap: closed without a byte.
    const extra = await Deno.connect(addr);
    assert.equal(await closedByServer(extra), true);
    extra.close();
    await waitFor(() => server.gate.refused === 1, "the refusal counted");
    assert.equal(server.gate.open, 2);
    // The held connections still work; when one leaves, a new one is admitted.
    assert.equal(await clients[0].call("echo", 1), 1);
    clients[1].close();
    await waitFor(() => server.gate.open === 1, "a connection to leave");
    const late = new RpcClient(addr);
    clients.push(late);
    assert.equal(await late.call("echo", "again"), "again");
    assert.equal(server.gate.accepted, 3);
  } finally {
    for (const client of clients) client.close();
    await server.close();
  }
});

Deno.test("conn cap: an HTTP listener past its cap closes new connections and keeps serving", async () => {
  const listener = serveHttp({
    hostname: "127.0.0.1",
    port: 0,
    maxConnections: 2,
    log: () => {},
    handler: () => new Response("ok\n"),
  });
  const { port } = listener.addr;
  const request = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  const held: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      held.push(conn);
      await conn.write(request);
      const buffer = new Uint8Array(4096);
      const n = await conn.read(buffer);
      assert.match(new TextDecoder().decode(buffer.subarray(0, n ?? 0)), /^HTTP\/1\.1 200/);
    }
    await waitFor(() => listener.gate.open === 2, "two open connections");
    const extra = await Deno.connect({ hostname: "127.0.0.1", port });
    await extra.write(request).catch(() => 0);
    assert.equal(await closedByServer(extra), true);
    extra.close();
    await waitFor(() => listener.gate.refused === 1, "the refusal counted");
    // A held keep-alive connection is still served.
    await held[0].write(request);
    const buffer = new Uint8Array(4096);
    const n = await held[0].read(buffer);
    assert.match(new TextDecoder().decode(buffer.subarray(0, n ?? 0)), /^HTTP\/1\.1 200/);
  } finally {
    for (const conn of held) {
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }
    await listener.shutdown();
  }
});
