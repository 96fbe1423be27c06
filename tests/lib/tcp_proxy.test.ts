import assert from "node:assert/strict";
import { TcpProxy } from "./tcp_proxy.ts";

/** An echo server on 127.0.0.1:0 that tracks its connections so it can shut down cleanly. */
function echoServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const tasks: Promise<void>[] = [];
  const serve = async (conn: Deno.Conn) => {
    conns.add(conn);
    const buffer = new Uint8Array(4096);
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        await conn.write(buffer.subarray(0, n));
      }
    } catch {
      // Reset by the proxy.
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  };
  const accepting = (async () => {
    try {
      for await (const conn of listener) tasks.push(serve(conn));
    } catch {
      // Closed.
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    get openConnections() {
      return conns.size;
    },
    async close() {
      listener.close();
      for (const conn of conns) conn.close();
      await accepting;
      await Promise.all(tasks);
    },
  };
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Reads exactly n bytes, or returns null if the connection ends (or breaks) first. */
async function readN(conn: Deno.Conn, n: number): Promise<string | null> {
  const out = new Uint8Array(n);
  let got = 0;
  try {
    while (got < n) {
      const r = await conn.read(out.subarray(got));
      if (r === null) return null;
      got += r;
    }
  } catch {
    return null;
  }
  return dec.decode(out);
}

async function writeAll(conn: Deno.Conn, text: string) {
  const bytes = enc.encode(text);
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

async function withProxy(
  fn: (proxy: TcpProxy, server: ReturnType<typeof echoServer>) => Promise<void>,
) {
  const server = echoServer();
  const proxy = new TcpProxy({ hostname: "127.0.0.1", port: server.port });
  await proxy.listen();
  try {
    await fn(proxy, server);
  } finally {
    await proxy.close();
    await server.close();
  }
}

const dial = (proxy: TcpProxy) => Deno.connect({ hostname: "127.0.0.1", port: proxy.port });

/** Waits (a bounded number of turns) until `f()` holds: counters move just after a write. */
async function waitFor(f: () => boolean) {
  for (let i = 0; i < 5000 && !f(); i++) await new Promise((r) => setTimeout(r, 2));
}

/** Lets the event loop run a little (used only to give a wrong forward a chance to happen). */
const settle = () => new Promise((r) => setTimeout(r, 30));

Deno.test("tcp proxy: forwards both ways and counts bytes", async () => {
  await withProxy(async (proxy) => {
    const conn = await dial(proxy);
    await writeAll(conn, "hello");
    assert.equal(await readN(conn, 5), "hello");
    await writeAll(conn, "x".repeat(200_000));
    assert.equal(await readN(conn, 200_000), "x".repeat(200_000));
    await waitFor(() => proxy.bytesFromTarget === 200_005);
    assert.equal(proxy.bytesFromTarget, 200_005);
    assert.equal(proxy.bytesToTarget, 200_005);
    assert.equal(proxy.connectionsAccepted, 1);
    assert.equal(proxy.activeConnections, 1);
    conn.close();
  });
});

Deno.test("tcp proxy: reset mode kills open connections and refuses new ones until unblocked", async () => {
  await withProxy(async (proxy) => {
    const before = await dial(proxy);
    await writeAll(before, "ping");
    assert.equal(await readN(before, 4), "ping");
    proxy.setBlocked(true);
    assert.equal(proxy.blocked, true);
    assert.equal(await readN(before, 1), null);
    before.close();
    const during = await dial(proxy);
    assert.equal(await readN(during, 1), null);
    during.close();
    proxy.setBlocked(false);
    const after = await dial(proxy);
    await writeAll(after, "back");
    assert.equal(await readN(after, 4), "back");
    after.close();
    assert.equal(proxy.connectionsAccepted, 3);
  });
});

Deno.test("tcp proxy: stall mode holds bytes and delivers them in order on unblock", async () => {
  await withProxy(async (proxy, server) => {
    const open = await dial(proxy);
    await writeAll(open, "a");
    assert.equal(await readN(open, 1), "a");
    proxy.setBlocked(true, "stall");
    await writeAll(open, "bc");
    const fresh = await dial(proxy);
    await writeAll(fresh, "new");
    await settle();
    assert.equal(proxy.bytesToTarget, 1);
    assert.equal(server.openConnections, 1);
    proxy.setBlocked(false);
    assert.equal(await readN(open, 2), "bc");
    assert.equal(await readN(fresh, 3), "new");
    await waitFor(() => proxy.bytesToTarget === 6);
    assert.equal(proxy.bytesToTarget, 6);
    open.close();
    fresh.close();
  });
});

Deno.test("tcp proxy: delay keeps data intact and in order", async () => {
  await withProxy(async (proxy) => {
    proxy.setDelayMs(20);
    const conn = await dial(proxy);
    const parts = Array.from({ length: 10 }, (_, i) => `<${i}>`);
    for (const part of parts) await writeAll(conn, part);
    assert.equal(await readN(conn, parts.join("").length), parts.join(""));
    assert.throws(() => proxy.setDelayMs(-1), RangeError);
    conn.close();
  });
});

Deno.test("tcp proxy: a dead target closes the client, and close() frees the port", async () => {
  const server = echoServer();
  const port = server.port;
  await server.close();
  const proxy = new TcpProxy({ hostname: "127.0.0.1", port });
  await proxy.listen();
  const conn = await dial(proxy);
  assert.equal(await readN(conn, 1), null);
  conn.close();
  const proxyPort = proxy.port;
  await proxy.close();
  await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: proxyPort }));
});
