/**
 * Closing a served HTTP connection whose client already hung up must not end the process.
 * Found in CI (a worker's shuffle server at the end of a job): Deno's abort listener of
 * serveHttpOnConnection closes the connection's resource, which its end had already released,
 * and throws BadResource from inside the abort event, where no try/catch reaches.
 */
import assert from "node:assert/strict";
import { abortQuietly } from "../../net/quiet_abort.ts";
import { serveHttp } from "../../net/http_listener.ts";

type ServeOnConnection = (
  conn: Deno.Conn,
  signal: AbortSignal,
  handler: (request: Request) => Response,
  onError: (error: unknown) => Response,
  onListen: () => void,
) => { finished: Promise<void> };

/** Serves one request on a fresh connection, lets the client hang up, waits for the end. */
async function endedConnection(): Promise<AbortController> {
  // deno-lint-ignore no-explicit-any
  const internal = (Deno as any)[(Deno as any).internal];
  const serveOnConnection: ServeOnConnection = internal.serveHttpOnConnection;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const dialing = Deno.connect({
    hostname: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
  });
  const conn = await listener.accept();
  listener.close();
  const client = await dialing;
  const controller = new AbortController();
  const served = serveOnConnection(
    conn,
    controller.signal,
    () => new Response("ok\n"),
    () => new Response("error\n", { status: 500 }),
    () => {},
  );
  await client.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  await client.read(new Uint8Array(4096));
  client.close();
  await served.finished.catch(() => {});
  return controller;
}

Deno.test("abortQuietly: the abort of a connection that already ended does not end the process", async () => {
  // A plain abort() here reports an uncaught BadResource (and fails this test).
  abortQuietly(await endedConnection());
});

Deno.test("abortQuietly: any other error thrown by an abort listener is still reported", () => {
  const controller = new AbortController();
  controller.signal.addEventListener("abort", () => {
    throw new RangeError("not a stale close");
  });
  let reported: unknown;
  const seen = (event: ErrorEvent) => {
    reported = event.error;
    event.preventDefault(); // The test's own handler: keep the runner from failing on it.
  };
  globalThis.addEventListener("error", seen);
  try {
    abortQuietly(controller);
  } finally {
    globalThis.removeEventListener("error", seen);
  }
  assert.ok(reported instanceof RangeError);
});

Deno.test("http listener: shutdown right after clients hung up leaves the process running", async () => {
  for (let round = 0; round < 10; round++) {
    const listener = serveHttp({
      hostname: "127.0.0.1",
      port: 0,
      maxConnections: 64,
      handler: () => new Response("ok\n"),
    });
    const port = listener.addr.port;
    const conns: Deno.Conn[] = [];
    for (let i = 0; i < 4; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
      const buffer = new Uint8Array(4096);
      const n = await conn.read(buffer);
      assert.match(new TextDecoder().decode(buffer.subarray(0, n ?? 0)), /^HTTP\/1\.1 200/);
      conns.push(conn);
    }
    for (const conn of conns) conn.close();
    await listener.shutdown();
    await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port }));
  }
});
