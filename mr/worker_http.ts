/**
 * The optional HTTP endpoint of a MapReduce worker (`raftmr worker --http`): /status JSON,
 * /metrics in Prometheus text, and / as a small page that refreshes itself.
 */
import { Hono } from "hono";
import type { WorkerStatus } from "./worker.ts";

/** Routes over a live WorkerStatus record. */
export function createWorkerHttpApp(status: WorkerStatus): Hono {
  const app = new Hono();
  app.get("/status", (c) => c.json({ ...status, uptimeMs: Date.now() - status.startedAt }));
  app.get("/metrics", (c) => {
    const lines = [
      [
        "raftmr_mr_worker_tasks_done_total",
        "counter",
        "Tasks this worker completed",
        status.tasksDone,
      ],
      [
        "raftmr_mr_worker_tasks_failed_total",
        "counter",
        "Task attempts whose app code threw",
        status.tasksFailed,
      ],
      ["raftmr_mr_worker_bytes_read_total", "counter", "Input bytes read", status.bytesRead],
      [
        "raftmr_mr_worker_bytes_written_total",
        "counter",
        "Output bytes written",
        status.bytesWritten,
      ],
      ["raftmr_mr_worker_busy", "gauge", "1 while a task runs", status.current ? 1 : 0],
    ].flatMap(([name, type, help, value]) => [
      `# HELP ${name} ${help}`,
      `# TYPE ${name} ${type}`,
      `${name} ${value}`,
    ]);
    return c.text(lines.join("\n") + "\n", 200, {
      "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
    });
  });
  app.get("/", (c) => {
    const task = status.current
      ? `${status.current.kind} task ${status.current.task} (attempt ${status.current.attempt})`
      : "none";
    return c.html(
      `<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="1">` +
        `<title>raftmr worker ${escape(status.id)}</title>` +
        `<h1>raftmr worker ${escape(status.id)}</h1><ul>` +
        `<li>state: ${escape(status.state)}</li><li>current: ${escape(task)}</li>` +
        `<li>tasks done: ${status.tasksDone}, failed: ${status.tasksFailed}</li>` +
        `<li>bytes read: ${status.bytesRead}, written: ${status.bytesWritten}</li>` +
        `<li>coordinator: ${escape(status.coordinator)}, app: ${escape(status.app)}</li></ul>`,
    );
  });
  return app;
}

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}
