/**
 * An HTTP server with the limits Deno.serve lacks: a cap on concurrent connections, a header
 * read timeout (slowloris), an idle timeout between keep-alive requests, and an accept loop that
 * survives running out of file descriptors.
 *
 * Found on Deno 2.9.6 (2026-12-01): Deno.serve has no connection cap and no timeouts (a
 * connection that never finishes its headers, or an idle keep-alive one, was still open after
 * 40 s), and when accept() fails with EMFILE its `finished` promise rejects with
 * `Http: Error: Too many open files` and the server stops for good. node:http has
 * headersTimeout, keepAliveTimeout and maxConnections and they work under Deno, but it served a
 * trivial handler at about a third of Deno.serve's rate. So this module runs its own accept
 * loop (net/conn_gate.ts) and hands each admitted connection to Deno's own HTTP engine through
 * `serveHttpOnConnection`, the internal function Deno.serve itself is built on (reached through
 * Deno[Deno.internal]; pinned Deno version in .ci/run). The handler marks when a request's
 * headers are complete, which is what the timeouts need. Should a Deno release drop that
 * function, the server falls back to Deno.serve and says so in the log. Either way the handler
 * is mounted through routeByPathOnly (net/http_host.ts): routes come from the path only.
 */
import { acceptLoop, ConnectionGate, RateLimitedLog } from "./conn_gate.ts";
import { abortQuietly } from "./quiet_abort.ts";
import { type FetchHandler, routeByPathOnly } from "./http_host.ts";
import { IdleSweep, type SweptConnection } from "./idle_sweep.ts";

/** Default time a new connection has to send complete request headers. */
export const DEFAULT_HEADER_TIMEOUT_MS = 10_000;
/** Default time a keep-alive connection may sit idle between requests. */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

/** Options of serveHttp. */
export interface HttpListenerOptions {
  hostname: string;
  port: number;
  handler: FetchHandler;
  /** PEM certificate chain and key: serve HTTPS. */
  tls?: { cert: string; key: string };
  maxConnections: number;
  headerTimeoutMs?: number;
  idleTimeoutMs?: number;
  log?: (line: string) => void;
  /** Turns a handler's throw into a response. */
  onError?: (error: unknown) => Response;
}

/** A running HTTP listener. */
export interface HttpListener {
  readonly addr: { hostname: string; port: number };
  /** Connection counters for /metrics. */
  readonly gate: ConnectionGate;
  /** Connections closed by the header or idle timeout. */
  readonly timedOut: number;
  /** Stops accepting and closes every connection. */
  shutdown(): Promise<void>;
}

type ServeOnConnection = (
  conn: Deno.Conn,
  signal: AbortSignal,
  handler: FetchHandler,
  onError: (error: unknown) => Response,
  onListen: () => void,
) => { finished: Promise<void> };

function findServeOnConnection(): ServeOnConnection | undefined {
  // deno-lint-ignore no-explicit-any
  const internal = (Deno as any)[(Deno as any).internal];
  const fn = internal?.serveHttpOnConnection;
  return typeof fn === "function" ? fn : undefined;
}

/** Starts serving; throws when the address cannot be bound. */
export function serveHttp(options: HttpListenerOptions): HttpListener {
  const gate = new ConnectionGate("http", options.maxConnections);
  const onError = options.onError ??
    (() => new Response("Internal server error\n", { status: 500 }));
  const handler = routeByPathOnly(options.handler);
  const serveOnConnection = findServeOnConnection();
  if (!serveOnConnection) return fallback(options, gate, onError);
  const refusals = new RateLimitedLog((line) => options.log?.(line));
  const headerTimeoutMs = options.headerTimeoutMs ?? DEFAULT_HEADER_TIMEOUT_MS;
  const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  let timedOut = 0;
  // Header timeout until the first request's headers are complete, then the idle timeout
  // between the end of one handler and the next request's headers; a request in progress is
  // never cut. One interval sweeps them all (net/idle_sweep.ts): no timer per request.
  const sweep = new IdleSweep(headerTimeoutMs, idleTimeoutMs, () => timedOut++);
  const listener: Deno.Listener = options.tls
    ? Deno.listenTls({ hostname: options.hostname, port: options.port, ...options.tls })
    : Deno.listen({ hostname: options.hostname, port: options.port });
  const open = new Set<{ close(): void; finished: Promise<void> }>();

  const serveOne = (conn: Deno.Conn) => {
    if (!gate.enter()) {
      try {
        conn.close();
      } catch {
        // Already gone.
      }
      refusals.line("cap", `Refused an HTTP connection: ${gate.max} connections open (the cap)`);
      return;
    }
    const controller = new AbortController();
    let ended = false;
    const state: SweptConnection = {
      active: 0,
      idleSince: 0,
      started: false,
      close: () => {
        if (ended) return;
        ended = true;
        // The connection may have ended on its own meanwhile (net/quiet_abort.ts).
        abortQuietly(controller);
      },
    };
    sweep.track(state);
    const served = serveOnConnection(
      conn,
      controller.signal,
      async (request, info) => {
        state.active++;
        state.started = true;
        try {
          return await handler(request, info);
        } finally {
          if (--state.active === 0) state.idleSince = sweep.now;
        }
      },
      onError,
      () => {},
    );
    const entry = { close: state.close, finished: served.finished.catch(() => {}) };
    open.add(entry);
    entry.finished.then(() => {
      ended = true;
      sweep.forget(state);
      open.delete(entry);
      gate.leave();
    });
  };

  const loop = acceptLoop(listener, "HTTP", serveOne, options.log);
  const addr = listener.addr as Deno.NetAddr;
  return {
    addr: { hostname: addr.hostname, port: addr.port },
    gate,
    get timedOut() {
      return timedOut;
    },
    async shutdown() {
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      await loop;
      sweep.close();
      const waiting = [...open].map((entry) => (entry.close(), entry.finished));
      await Promise.all(waiting);
    },
  };
}

/** Deno.serve without the limits, for a Deno that no longer offers serveHttpOnConnection. */
function fallback(
  options: HttpListenerOptions,
  gate: ConnectionGate,
  onError: (error: unknown) => Response,
): HttpListener {
  options.log?.(
    "This Deno has no serveHttpOnConnection: HTTP runs without connection cap or timeouts",
  );
  const server = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    onListen: () => {},
    onError,
    ...options.tls,
  }, routeByPathOnly(options.handler));
  return {
    addr: { hostname: server.addr.hostname, port: server.addr.port },
    gate,
    timedOut: 0,
    shutdown: () => server.shutdown(),
  };
}
