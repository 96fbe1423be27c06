/**
 * Routes come from the request path only: raw HTTP requests over a TCP socket whose Host header
 * tries to move the path (`Host: h/v1/kv/secret?` on `PUT /v1/kv/public/x`) are refused with 400
 * by the KV daemon and the coordinator, and nothing is written.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createHttpApp } from "../../kv/http.ts";
import { KvServer } from "../../kv/server.ts";
import { DEFAULT_KV_LIMITS } from "../../kv/service.ts";
import { isValidHost, routeByPathOnly } from "../../net/http_host.ts";
import { freePort } from "../lib/cluster.ts";
import { withTempDir } from "../lib/run.ts";
import { FakeService } from "../kv/fake_service.ts";
import { startOneFileJob } from "../mr/helpers.ts";

const EVIL_HOST = "h/v1/kv/secret?";

/** Sends one raw HTTP/1.1 request and returns the status code and body of the answer. */
async function rawRequest(
  port: number,
  head: string,
  body = "",
): Promise<{ status: number; body: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const text = `${head}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
    await conn.write(new TextEncoder().encode(text));
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(16 * 1024);
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
    const response = new TextDecoder().decode(
      chunks.reduce((all, c) => new Uint8Array([...all, ...c]), new Uint8Array()),
    );
    const match = /^HTTP\/1\.1 (\d{3})/.exec(response);
    assert.ok(match, `not an HTTP response: ${response.slice(0, 200)}`);
    return { status: Number(match[1]), body: response.slice(response.indexOf("\r\n\r\n") + 4) };
  } finally {
    conn.close();
  }
}

Deno.test("http host: only host[:port] is a valid Host header", () => {
  for (const good of ["127.0.0.1:8080", "example.com", "[::1]:80", "a-b.c_d~e", "h:", ""]) {
    assert.ok(isValidHost(good), good);
  }
  for (const bad of [EVIL_HOST, "h/x", "h?x", "h#x", "h\\x", "u@h", "h x", "h:80/x", "h:123456"]) {
    assert.ok(!isValidHost(bad), bad);
  }
});

Deno.test("http host: without the guard the Host header picks the key (the attack is real)", async () => {
  const service = new FakeService();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    createHttpApp(service).fetch,
  );
  try {
    const out = await rawRequest(
      server.addr.port,
      `PUT /v1/kv/public/x HTTP/1.1\r\nHost: ${EVIL_HOST}`,
      "v",
    );
    assert.equal(out.status, 200, out.body);
    assert.deepEqual(service.writes.map((w) => w.key), ["secret"]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("http host: the KV daemon refuses a path-moving Host header with 400 and writes nothing", async () => {
  await withTempDir("raftmr-http-host-", async (dir) => {
    const peer = { hostname: "127.0.0.1", port: freePort() };
    const http = { hostname: "127.0.0.1", port: freePort() };
    const server = await KvServer.start({
      id: 1,
      peers: new Map([[1, peer]]),
      dataDir: join(dir, "node"),
      http,
      raft: {},
      limits: { ...DEFAULT_KV_LIMITS },
      requestTimeoutMs: 5_000,
      log: () => {},
    });
    try {
      const base = `http://127.0.0.1:${http.port}`;
      while (!server.leaderKnown()) await new Promise((r) => setTimeout(r, 10));
      const evil = await rawRequest(
        http.port,
        `PUT /v1/kv/public/x HTTP/1.1\r\nHost: ${EVIL_HOST}`,
        "evil",
      );
      assert.equal(evil.status, 400, evil.body);
      assert.match(evil.body, /Invalid Host header/);
      for (const key of ["secret", "public/x"]) {
        const got = await fetch(`${base}/v1/kv/${key}`);
        await got.body?.cancel();
        assert.equal(got.status, 404, key);
      }
      // The same request with a proper Host header is served, so the refusal was the header's.
      const good = await rawRequest(
        http.port,
        `PUT /v1/kv/public/x HTTP/1.1\r\nHost: 127.0.0.1:${http.port}`,
        "ok",
      );
      assert.equal(good.status, 200, good.body);
      assert.equal(await (await fetch(`${base}/v1/kv/public/x`)).text(), "ok");
      const secret = await fetch(`${base}/v1/kv/secret`);
      await secret.body?.cancel();
      assert.equal(secret.status, 404);
    } finally {
      await server.shutdown();
    }
  });
});

Deno.test("http host: the coordinator's pages are routed by path only", async () => {
  await withTempDir("raftmr-http-host-", async (dir) => {
    const { coordinator } = await startOneFileJob(dir);
    try {
      const port = coordinator.httpAddress!.port;
      const evil = await rawRequest(port, "GET /metrics HTTP/1.1\r\nHost: h/status?");
      assert.equal(evil.status, 400, evil.body);
      const good = await rawRequest(port, `GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${port}`);
      assert.equal(good.status, 200, good.body);
      assert.match(good.body, /^# (HELP|TYPE) /m);
    } finally {
      await coordinator.close();
    }
  });
});

Deno.test("http host: every Deno.serve in the program mounts its handler through the guard", async () => {
  const root = new URL("../../", import.meta.url);
  const calls: string[] = [];
  async function walk(dir: URL): Promise<void> {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.name.startsWith(".") || ["tests", "bench", "dist"].includes(entry.name)) continue;
      const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
      if (entry.isDirectory) await walk(url);
      else if (entry.name.endsWith(".ts")) {
        const src = (await Deno.readTextFile(url)).replace(/\/\*[\s\S]*?\*\//g, "");
        // The handler is the call's last argument: look from the call to its closing line.
        for (const m of src.matchAll(/Deno\.serve\(/g)) {
          const call = src.slice(m.index, src.indexOf(");", m.index) + 2);
          calls.push(`${entry.name}: ${/routeByPathOnly\(/.test(call) ? "guarded" : call}`);
        }
        // serveHttp (net/http_listener.ts) mounts every handler through the guard itself.
        for (const _ of src.matchAll(/\bserveHttp\(\{/g)) calls.push(`${entry.name}: guarded`);
      }
    }
  }
  await walk(root);
  assert.ok(calls.length >= 3, `found only: ${calls.join("; ")}`);
  assert.deepEqual(calls.filter((c) => !c.endsWith(": guarded")), []);
});

Deno.test("http host: the guard passes valid requests through unchanged", async () => {
  const seen: string[] = [];
  const handler = routeByPathOnly((request) => {
    seen.push(request.url);
    return new Response("ok");
  });
  const info = {} as Deno.ServeHandlerInfo;
  const ok = await handler(new Request("http://a.b:1/x?y", { headers: { host: "a.b:1" } }), info);
  assert.equal(ok.status, 200);
  const bad = await handler(
    new Request("http://h/v1/kv/secret?/v1/kv/public/x", { headers: { host: EVIL_HOST } }),
    info,
  );
  assert.equal(bad.status, 400);
  assert.deepEqual(seen, ["http://a.b:1/x?y"]);
});
