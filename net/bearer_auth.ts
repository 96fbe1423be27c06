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
 * Distinct Authorization headers remembered once admitted. Only a header that carried a valid
 * token gets in, so strangers cannot fill it; a client varying the whitespace around its token
 * past this many is simply checked in full each time.
 */
const ADMITTED_HEADERS = 16;

/**
 * Wraps `handler` so that only requests with a valid token (or to an open path) reach it. Mount
 * it inside routeByPathOnly (net/http_host.ts; serveHttp does): with the Host header checked
 * first, the path read here from request.url is the request target's, so a crafted Host such as
 * `h/healthz?` cannot make a KV request look like an open path.
 *
 * A full check (SHA-256 of the token, constant-time compare with every digest) cost 4-19 us per
 * request under Deno 2.9.6's node:crypto, as much as a fifth of a KV write's CPU on the leader.
 * So a header that was admitted once is remembered, and a request whose header equals a
 * remembered one, compared in constant time against every remembered header, is admitted
 * without hashing. Any other header gets the full check; a miss reveals nothing about the
 * remembered ones, since the comparison's time depends only on their lengths.
 */
export function requireBearer(handler: FetchHandler, options: BearerOptions): FetchHandler {
  const admitted: string[] = [];
  return (request, info) => {
    const url = request.url;
    // The path: from the first "/" after the scheme's "//", up to "?" (no URL object: hot path).
    const pathStart = url.indexOf("/", url.indexOf("//") + 2);
    const query = url.indexOf("?", pathStart);
    const path = pathStart < 0 ? "/" : url.slice(pathStart, query < 0 ? undefined : query);
    if (options.openPaths.has(path)) return handler(request, info);
    const header = request.headers.get("authorization") ?? "";
    let known = false;
    for (const remembered of admitted) {
      if (constantTimeEqual(header, remembered)) known = true;
    }
    if (known) return handler(request, info);
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match || !tokenMatches(match[1], options.tokenDigests)) {
      options.onRefused?.();
      return json(401, match ? "Invalid token" : "Missing bearer token", {
        "www-authenticate": 'Bearer realm="raftmr"',
      });
    }
    if (admitted.length < ADMITTED_HEADERS) admitted.push(header);
    return handler(request, info);
  };
}

/**
 * Whether `given` equals `secret`, in a time that depends on `secret`'s length only: every
 * character is compared, none ends the loop early (past `given`'s end, charCodeAt is NaN, which
 * `| 0` turns into 0, and the length difference alone makes the result false).
 */
function constantTimeEqual(given: string, secret: string): boolean {
  let diff = given.length ^ secret.length;
  for (let i = 0; i < secret.length; i++) {
    diff |= (given.charCodeAt(i) | 0) ^ secret.charCodeAt(i);
  }
  return diff === 0;
}

function json(status: number, error: string, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ error }) + "\n", {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}
