/**
 * Bearer-token check in front of an HTTP handler: requests must carry
 * `Authorization: Bearer <token>` with one of the configured tokens, except for the exact paths
 * left open (by default /healthz and /metrics, which load balancers and Prometheus poll).
 */
import { tokenMatches } from "./handshake.ts";
import type { FetchHandler } from "./http_host.ts";

/** Options of requireBearer. */
export interface BearerOptions {
  /** SHA-256 digests of the accepted tokens (net/handshake.ts tokenDigest). */
  tokenDigests: Uint8Array[];
  /** Paths served without a token. */
  openPaths: ReadonlySet<string>;
  /** Called for each refused request (counted in /metrics). */
  onRefused?: () => void;
}

/**
 * Wraps `handler` so that only requests with a valid token (or to an open path) reach it. Mount
 * it inside routeByPathOnly (net/http_host.ts; serveHttp does): with the Host header checked
 * first, the path read here from request.url is the request target's, so a crafted Host such as
 * `h/healthz?` cannot make a KV request look like an open path.
 */
export function requireBearer(handler: FetchHandler, options: BearerOptions): FetchHandler {
  return (request, info) => {
    const url = request.url;
    // The path: from the first "/" after the scheme's "//", up to "?" (no URL object: hot path).
    const pathStart = url.indexOf("/", url.indexOf("//") + 2);
    const query = url.indexOf("?", pathStart);
    const path = pathStart < 0 ? "/" : url.slice(pathStart, query < 0 ? undefined : query);
    if (options.openPaths.has(path)) return handler(request, info);
    const header = request.headers.get("authorization") ?? "";
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match || !tokenMatches(match[1], options.tokenDigests)) {
      options.onRefused?.();
      return json(401, match ? "Invalid token" : "Missing bearer token", {
        "www-authenticate": 'Bearer realm="raftmr"',
      });
    }
    return handler(request, info);
  };
}

function json(status: number, error: string, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ error }) + "\n", {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}
