import assert from "node:assert/strict";
import { createHttpApp } from "../../kv/http.ts";
import { TimeoutError, UnavailableError } from "../../kv/service.ts";
import { FakeService } from "./fake_service.ts";

const URL_BASE = "http://node";

function setup(options = {}) {
  const service = new FakeService();
  const app = createHttpApp(service, options);
  const req = (path: string, init?: RequestInit) => app.request(URL_BASE + path, init);
  return { service, app, req };
}

Deno.test("http: put then get returns the bytes with X-Raft-Index", async () => {
  const { req } = setup();
  const put = await req("/v1/kv/greeting", { method: "PUT", body: "hello" });
  assert.equal(put.status, 200);
  assert.deepEqual(await put.json(), { index: 1 });
  const get = await req("/v1/kv/greeting");
  assert.equal(get.status, 200);
  assert.equal(get.headers.get("x-raft-index"), "1");
  assert.equal(await get.text(), "hello");
  const binary = new Uint8Array([0, 1, 254, 255]);
  await req("/v1/kv/bin", { method: "PUT", body: binary });
  assert.deepEqual(new Uint8Array(await (await req("/v1/kv/bin")).arrayBuffer()), binary);
});

Deno.test("http: missing keys are 404 and stale=true asks for a local read", async () => {
  const { req, service } = setup();
  const res = await req("/v1/kv/nope?stale=true");
  assert.equal(res.status, 404);
  assert.match((await res.json()).error, /Key not found/);
  await (await req("/v1/kv/nope")).body?.cancel();
  assert.deepEqual(service.reads, [{ key: "nope", stale: true }, { key: "nope", stale: false }]);
});

Deno.test("http: keys may contain '/' and percent-encoded characters", async () => {
  const { req, service } = setup();
  await (await req("/v1/kv/a/b/c", { method: "PUT", body: "1" })).body?.cancel();
  await (await req("/v1/kv/x%2Fy%20z%C3%A9", { method: "PUT", body: "2" })).body?.cancel();
  assert.deepEqual(service.writes.map((w) => w.key), ["a/b/c", "x/y zé"]);
  assert.equal(await (await req("/v1/kv/a/b/c")).text(), "1");
  const bad = await req("/v1/kv/%E0%A4%A");
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error, /percent-encoding/);
});

Deno.test("http: append concatenates and works on a missing key", async () => {
  const { req } = setup();
  for (const part of ["x ", "y"]) {
    const res = await req("/v1/kv/log/append", { method: "POST", body: part });
    assert.equal(res.status, 200);
    await res.body?.cancel();
  }
  assert.equal(await (await req("/v1/kv/log")).text(), "x y");
  const noSuffix = await req("/v1/kv/log", { method: "POST", body: "z" });
  assert.equal(noSuffix.status, 404);
  await noSuffix.body?.cancel();
});

Deno.test("http: delete answers 200 when the key existed, else 404", async () => {
  const { req } = setup();
  await (await req("/v1/kv/k", { method: "PUT", body: "v" })).body?.cancel();
  const first = await req("/v1/kv/k", { method: "DELETE" });
  assert.equal(first.status, 200);
  assert.deepEqual(await first.json(), { index: 2 });
  const second = await req("/v1/kv/k", { method: "DELETE" });
  assert.equal(second.status, 404);
  assert.match((await second.json()).error, /not found/);
});

Deno.test("http: prev and prevExist=false make a compare-and-set", async () => {
  const { req, service } = setup();
  const create = await req("/v1/kv/k?prevExist=false", { method: "PUT", body: "one" });
  assert.equal(create.status, 200);
  await create.body?.cancel();
  const again = await req("/v1/kv/k?prevExist=false", { method: "PUT", body: "two" });
  assert.equal(again.status, 412);
  const body = await again.json();
  assert.equal(body.value, "one");
  assert.equal(typeof body.error, "string");
  const wrong = await req("/v1/kv/k?prev=nope", { method: "PUT", body: "two" });
  assert.equal(wrong.status, 412);
  assert.equal((await wrong.json()).value, "one");
  const missing = await req("/v1/kv/absent?prev=x", { method: "PUT", body: "two" });
  assert.equal(missing.status, 412);
  assert.deepEqual((await missing.json()).value, null);
  const right = await req("/v1/kv/k?prev=one", { method: "PUT", body: "two" });
  assert.equal(right.status, 200);
  await right.body?.cancel();
  assert.equal(await (await req("/v1/kv/k")).text(), "two");
  assert.deepEqual(service.writes[0].expect, null);
  assert.equal(service.writes[0].op, "cas");
  for (const q of ["prevExist=maybe", "prev=a&prevExist=false", "prevExist=true"]) {
    const res = await req(`/v1/kv/k?${q}`, { method: "PUT", body: "x" });
    assert.equal(res.status, 400, q);
    await res.body?.cancel();
  }
});

Deno.test("http: X-Client-Id and X-Request-Seq make a write exactly-once", async () => {
  const { req, service } = setup();
  const headers = { "x-client-id": "client-1", "x-request-seq": "5" };
  for (let i = 0; i < 3; i++) {
    const res = await req("/v1/kv/k/append", { method: "POST", body: "a", headers });
    assert.equal(res.status, 200);
    await res.body?.cancel();
  }
  assert.equal(await (await req("/v1/kv/k")).text(), "a");
  assert.equal(service.writes[0].clientId, "client-1");
  assert.equal(service.writes[0].seq, 5);
  const older = await req("/v1/kv/k/append", {
    method: "POST",
    body: "a",
    headers: { "x-client-id": "client-1", "x-request-seq": "4" },
  });
  assert.equal(older.status, 409);
  await older.body?.cancel();
  const bad: Record<string, string>[] = [
    { "x-client-id": "c", "x-request-seq": "1.5" },
    { "x-client-id": "c", "x-request-seq": "abc" },
    { "x-client-id": "c", "x-request-seq": "-1" },
    { "x-client-id": "c", "x-request-seq": "99999999999999999" },
    { "x-client-id": "c" },
    { "x-request-seq": "3" },
  ];
  for (const h of bad) {
    const res = await req("/v1/kv/k", { method: "PUT", body: "x", headers: h });
    assert.equal(res.status, 400, JSON.stringify(h));
    assert.equal(typeof (await res.json()).error, "string");
  }
});

Deno.test("http: bad or oversized keys and values are refused", async () => {
  const { req, service } = setup({ maxKeyBytes: 8, maxValueBytes: 4 });
  const cases: [string, RequestInit | undefined, number][] = [
    ["/v1/kv/", { method: "PUT", body: "x" }, 400],
    ["/v1/kv/123456789", { method: "PUT", body: "x" }, 413],
    ["/v1/kv/%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9", undefined, 413],
    ["/v1/kv/k", { method: "PUT", body: "12345" }, 413],
    ["/v1/kv/k/append", { method: "POST", body: "12345" }, 413],
    ["/v1/kv/k?prev=12345", { method: "PUT", body: "1" }, 413],
  ];
  for (const [path, init, status] of cases) {
    const res = await req(path, init);
    assert.equal(res.status, status, path);
    assert.equal(typeof (await res.json()).error, "string");
  }
  // A chunked body without Content-Length is cut off at the limit too.
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new Uint8Array(3));
      controller.enqueue(new Uint8Array(3));
      controller.close();
    },
  });
  const res = await req("/v1/kv/k", { method: "PUT", body: stream });
  assert.equal(res.status, 413);
  await res.body?.cancel();
  assert.equal(service.writes.length, 0);
  const ok = await req("/v1/kv/12345678", { method: "PUT", body: "1234" });
  assert.equal(ok.status, 200);
  await ok.body?.cancel();
});

Deno.test("http: service errors map to 503 with Retry-After, 504 and 500", async () => {
  const errors: unknown[] = [];
  const { req, service } = setup({ onInternalError: (e: unknown) => errors.push(e) });
  service.failWith = new UnavailableError("Election in progress", 2);
  for (const init of [undefined, { method: "PUT", body: "x" }]) {
    const res = await req("/v1/kv/k", init);
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("retry-after"), "2");
    assert.deepEqual(await res.json(), { error: "Election in progress" });
  }
  service.failWith = new TimeoutError("Write not committed in time");
  const timeout = await req("/v1/kv/k", { method: "DELETE" });
  assert.equal(timeout.status, 504);
  await timeout.body?.cancel();
  service.failWith = new Error("boom");
  const internal = await req("/v1/kv/k");
  assert.equal(internal.status, 500);
  assert.match((await internal.json()).error, /boom/);
  assert.equal(errors.length, 1);
});

Deno.test("http: unknown routes and methods are JSON 404", async () => {
  const { req } = setup();
  for (const [path, method] of [["/v2/kv/k", "GET"], ["/v1/kv/k", "PATCH"], ["/nope", "GET"]]) {
    const res = await req(path, { method });
    assert.equal(res.status, 404, `${method} ${path}`);
    assert.equal(typeof (await res.json()).error, "string");
  }
});

Deno.test("http: /status, /metrics, /healthz and the dashboard", async () => {
  const { req, service } = setup();
  const status = await req("/status");
  assert.equal(status.status, 200);
  assert.equal((await status.json()).role, "leader");
  await (await req("/v1/kv/k")).body?.cancel();
  const metrics = await req("/metrics");
  assert.equal(metrics.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const text = await metrics.text();
  assert.match(text, /^raftmr_proposals_total 7$/m);
  assert.match(text, /^raftmr_http_requests_total\{method="GET",code="404"\} 1$/m);
  const healthy = await req("/healthz");
  assert.equal(healthy.status, 200);
  await healthy.body?.cancel();
  service.leader = false;
  const unhealthy = await req("/healthz");
  assert.equal(unhealthy.status, 503);
  assert.ok(unhealthy.headers.get("retry-after"));
  await unhealthy.body?.cancel();
  const page = await req("/");
  assert.match(page.headers.get("content-type")!, /text\/html/);
  // Rendered on the server from /status (it used to be drawn in the browser from fetch("/status")):
  // the page itself names the leader and shows counters with units.
  const html = (await page.text()).replace(/\s+/g, " ").replace(/> </g, "><");
  assert.match(html, /<span>Leader<\/span><b class="state"><a href="\/">node 1<\/a> \(this node\)/);
  assert.match(html, /28\.6 ms/);
  assert.doesNotMatch(html, /28\.579/);
});
