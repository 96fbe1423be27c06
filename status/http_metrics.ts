/**
 * HTTP metrics for any role's Hono app: requests by method and status code, and their duration
 * by route and code. The route label is the pattern that matched (`/v1/kv/*`), never the raw
 * path: a label per key would grow without bound and sink Prometheus (its naming guide: label
 * values must have low cardinality).
 */
import type { MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import { type CounterChild, decadeBuckets, type HistogramChild, type Registry } from "./metrics.ts";

/** Request duration buckets: 100 us to 10 s (a forwarded write may wait out an election). */
export const HTTP_DURATION_BUCKETS: number[] = decadeBuckets(0.0001, 10);

/** The route label of a request that matched no route. */
export const UNMATCHED_ROUTE = "unmatched";

/**
 * Registers `raftmr_http_requests_total{method,code}` and
 * `raftmr_http_request_duration_seconds{route,code}` on `registry` and returns the middleware
 * that feeds them; mount it first (`app.use(httpMetrics(registry))`).
 */
export function httpMetrics(registry: Registry): MiddlewareHandler {
  const requests = registry.counter({
    name: "raftmr_http_requests_total",
    help: "HTTP requests served, by method and status",
    labels: ["method", "code"],
  });
  const duration = registry.histogram({
    name: "raftmr_http_request_duration_seconds",
    help: "Time to answer an HTTP request, by route pattern and status",
    labels: ["route", "code"],
    buckets: HTTP_DURATION_BUCKETS,
  });
  // Each series is resolved once and kept by method (route) and status: a request then costs
  // two map lookups per metric, not a label object and a key string each (seen in profiles of
  // the KV leader under load). Both sets are small: methods, route patterns and codes are few.
  const requestSeries = new Map<string, Map<number, CounterChild>>();
  const durationSeries = new Map<string, Map<number, HistogramChild>>();
  return async function recordHttpMetrics(c, next) {
    const start = performance.now();
    await next();
    const status = c.res.status;
    const method = c.req.method;
    const route = routeOf(c);
    let byMethod = requestSeries.get(method);
    if (!byMethod) requestSeries.set(method, byMethod = new Map());
    let counter = byMethod.get(status);
    if (!counter) byMethod.set(status, counter = requests.child({ method, code: String(status) }));
    counter.inc();
    let byRoute = durationSeries.get(route);
    if (!byRoute) durationSeries.set(route, byRoute = new Map());
    let histogram = byRoute.get(status);
    if (!histogram) {
      byRoute.set(status, histogram = duration.child({ route, code: String(status) }));
    }
    histogram.observe((performance.now() - start) / 1000);
  };
}

/**
 * The pattern of the handler that answered: the last matched route that is not middleware.
 * Middleware takes (c, next), a handler only c (the distinction Hono's route helper uses).
 */
function routeOf(c: Parameters<MiddlewareHandler>[0]): string {
  const routes = matchedRoutes(c);
  for (let i = routes.length - 1; i >= 0; i--) {
    if (routes[i].handler.length < 2) return routes[i].path;
  }
  return UNMATCHED_ROUTE;
}
