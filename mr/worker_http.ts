/**
 * The optional HTTP endpoint of a MapReduce worker (`raftmr worker --http`): /status JSON,
 * /metrics in Prometheus text, and / as a page that refreshes itself (mr/worker_page.ts).
 */
import { Hono } from "hono";
import { httpMetrics } from "../status/http_metrics.ts";
import { metricsResponse, Registry } from "../status/metrics.ts";
import { registerProcessMetrics } from "../status/process_metrics.ts";
import type { WorkerStatus } from "./worker.ts";
import { workerPage } from "./worker_page.ts";
import { type HttpListener, serveHttp } from "../net/http_listener.ts";
import { defaultConnectionCap } from "../net/conn_gate.ts";

/** Registers a worker's metrics on `registry`, each read from the live `status` when scraped. */
export function registerWorkerMetrics(registry: Registry, status: WorkerStatus): void {
  const r = registry;
  r.counterFunc(
    { name: "raftmr_mr_worker_tasks_done_total", help: "Tasks this worker completed" },
    () => status.tasksDone,
  );
  r.counterFunc(
    { name: "raftmr_mr_worker_tasks_failed_total", help: "Task attempts whose app code threw" },
    () => status.tasksFailed,
  );
  r.counterFunc(
    { name: "raftmr_mr_worker_bytes_read_total", help: "Input bytes read" },
    () => status.bytesRead,
  );
  r.counterFunc(
    { name: "raftmr_mr_worker_bytes_written_total", help: "Output bytes written" },
    () => status.bytesWritten,
  );
  r.counterFunc(
    { name: "raftmr_mr_worker_shuffle_fetched_bytes_total", help: "Partition bytes fetched" },
    () => status.shuffleBytesFetched,
  );
  r.counterFunc(
    { name: "raftmr_mr_worker_shuffle_served_bytes_total", help: "Partition bytes served" },
    () => status.shuffleBytesServed,
  );
  r.counterFunc(
    {
      name: "raftmr_mr_worker_corrupt_transfers_total",
      help: "Transfers that failed their length or CRC-32C check",
    },
    () => status.corruptTransfers,
  );
  r.gaugeFunc(
    { name: "raftmr_mr_worker_busy", help: "1 while a task runs" },
    () => (status.current ? 1 : 0),
  );
}

/** Routes over a live WorkerStatus record. */
export function createWorkerHttpApp(status: WorkerStatus): Hono {
  const registry = new Registry();
  const app = new Hono();
  app.use(httpMetrics(registry));
  registerWorkerMetrics(registry, status);
  registerProcessMetrics(registry);
  app.get("/status", (c) => c.json({ ...status, uptimeMs: Date.now() - status.startedAt }));
  app.get("/metrics", () => metricsResponse(registry.render()));
  app.get("/", (c) => c.html(workerPage(status, Date.now())));
  return app;
}

/**
 * Serves a worker's status page on `http` through the capped listener (connection cap, header
 * and idle timeouts, EMFILE-surviving accept loop, routes from the path only); the caller shuts
 * it down.
 */
export function serveWorkerHttp(
  http: { hostname: string; port: number },
  status: WorkerStatus,
): HttpListener {
  return serveHttp({
    hostname: http.hostname,
    port: http.port,
    maxConnections: defaultConnectionCap(),
    handler: createWorkerHttpApp(status).fetch,
  });
}
