/**
 * The metrics of a daemon's listeners, registered in its status/ registry: connections open,
 * admitted and refused per listener, HTTP requests refused for want of a token, HTTP
 * connections closed by a timeout, and the partial-frame budget.
 */
import type { Registry } from "../status/metrics.ts";
import { partialFrameBudget } from "./byte_budget.ts";
import type { ConnectionGate } from "./conn_gate.ts";

/** Where the values come from, read at each scrape. */
export interface ListenerMetricSources {
  gates: () => ConnectionGate[];
  httpUnauthorized: () => number;
  httpTimeouts: () => number;
}

/** Registers the listener metrics once, when the daemon is built. */
export function registerListenerMetrics(registry: Registry, s: ListenerMetricSources): void {
  const perGate = (value: (gate: ConnectionGate) => number) => () =>
    s.gates().map((gate) => ({ labels: { listener: gate.name }, value: value(gate) }));
  registry.gaugeFunc(
    { name: "raftmr_connections_open", help: "Connections open now", labels: ["listener"] },
    perGate((g) => g.open),
  );
  registry.counterFunc(
    {
      name: "raftmr_connections_accepted_total",
      help: "Connections admitted under the cap",
      labels: ["listener"],
    },
    perGate((g) => g.accepted),
  );
  registry.counterFunc(
    {
      name: "raftmr_connections_refused_total",
      help: "Connections refused: over the cap, failed TLS or handshake, or a forbidden call",
      labels: ["listener"],
    },
    perGate((g) => g.refused),
  );
  registry.counterFunc(
    {
      name: "raftmr_http_unauthorized_total",
      help: "HTTP requests refused for a missing or invalid token",
    },
    s.httpUnauthorized,
  );
  registry.counterFunc(
    {
      name: "raftmr_http_timeouts_total",
      help: "HTTP connections closed by the header or idle timeout",
    },
    s.httpTimeouts,
  );
  registry.gaugeFunc(
    {
      name: "raftmr_partial_frame_bytes",
      help: "Memory held by partially received peer frames",
    },
    () => partialFrameBudget.used,
  );
  registry.counterFunc(
    {
      name: "raftmr_partial_frame_refusals_total",
      help: "Connections closed because partial frames would exceed the budget",
    },
    () => partialFrameBudget.refusals,
  );
}
