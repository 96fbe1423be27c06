/** HTTP metrics: requests counted by method and code, durations labelled by route pattern. */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { httpMetrics } from "../../status/http_metrics.ts";
import { Registry } from "../../status/metrics.ts";

Deno.test("http metrics: the route label is the matched pattern, never the path", async () => {
  const registry = new Registry();
  const app = new Hono();
  app.use(httpMetrics(registry));
  // Another middleware after ours (auth, say) must not be taken for the route.
  app.use(async (_c, next) => await next());
  app.get("/items/:id", (c) => c.text(c.req.param("id")));
  app.get("/files/*", (c) => c.text("file"));
  for (const path of ["/items/1", "/items/2", "/files/a/b", "/nope/x"]) {
    await (await app.request(path)).body?.cancel();
  }
  await (await app.request("/items/3", { method: "DELETE" })).body?.cancel();
  const text = registry.render();
  assert.match(text, /^raftmr_http_requests_total\{method="GET",code="200"\} 3$/m);
  assert.match(text, /^raftmr_http_requests_total\{method="GET",code="404"\} 1$/m);
  assert.match(text, /^raftmr_http_requests_total\{method="DELETE",code="404"\} 1$/m);
  assert.match(
    text,
    /^raftmr_http_request_duration_seconds_count\{route="\/items\/:id",code="200"\} 2$/m,
  );
  assert.match(
    text,
    /^raftmr_http_request_duration_seconds_count\{route="\/files\/\*",code="200"\} 1$/m,
  );
  assert.match(
    text,
    /^raftmr_http_request_duration_seconds_count\{route="unmatched",code="404"\} 2$/m,
  );
  assert.doesNotMatch(text, /items\/1|a\/b|nope/);
});
