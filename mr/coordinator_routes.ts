/**
 * The coordinator's pages for people: GET /status (JSON), /metrics (Prometheus text) and /
 * (a self-refreshing progress page), as a Hono app. Its own module, loaded on the first such
 * request (mr/coordinator.ts): `mr run` serves its job's data on the same port but seldom a
 * status page, and Hono and the page's templates cost its start-up a few milliseconds of CPU
 * while its workers start beside it on the same cores.
 */
import { Hono } from "hono";
import { httpMetrics } from "../status/http_metrics.ts";
import { metricsResponse, type Registry } from "../status/metrics.ts";
import { coordinatorPage } from "./coordinator_page.ts";
import type { JobStatus } from "./coordinator.ts";

/** The routes over a coordinator's status and metrics; requests are counted in `registry`. */
export function coordinatorRoutes(
  registry: Registry,
  status: () => JobStatus,
  metrics: () => string,
): Hono {
  const app = new Hono();
  app.use(httpMetrics(registry));
  app.get("/status", (c) => c.json(status()));
  app.get("/metrics", () => metricsResponse(metrics()));
  app.get("/", (c) => c.html(coordinatorPage(status())));
  return app;
}
