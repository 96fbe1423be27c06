/**
 * Routing by the request path only, at every HTTP listener (the KV API, the coordinator's and the
 * worker's pages). Deno.serve hands the handler `request.url` built as "http://" + the Host
 * header + the request target, and Hono (like kv/http.ts's own key parsing) reads the path out
 * of that string. A Host header such as `h/v1/kv/secret?` therefore moves the path: a request
 * for `PUT /v1/kv/public/x` arrives as `http://h/v1/kv/secret?/v1/kv/public/x`, whose path is
 * `/v1/kv/secret`, and a proxy that lets through only one path prefix is bypassed.
 *
 * The rule is RFC 9112 §3.2: a request whose Host header is not a valid `host[:port]` is answered
 * 400 Bad Request. With only host characters in the authority, the path of `request.url` is the
 * request target's path again.
 */

// RFC 3986 §3.2.2-3.2.3 without userinfo (RFC 9110 §7.2: Host = uri-host [":" port]): an IP
// literal in brackets, or a reg-name/IPv4 of unreserved, sub-delims and percent-encoded
// characters. None of '/', '?', '#', '\' or '@' can appear, so none can end the authority early.
const HOST_RE = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]{0,5})?$/;

/** Whether `value` is a Host header that cannot change how the request's URL splits. */
export function isValidHost(value: string): boolean {
  return HOST_RE.test(value);
}

/** A Deno.serve handler, e.g. a Hono app's `fetch`. */
export type FetchHandler = (
  request: Request,
  info: Deno.ServeHandlerInfo,
) => Response | Promise<Response>;

/**
 * Wraps `handler` so a request with an invalid Host header is refused with a JSON 400 before any
 * route sees it; every other request goes through unchanged. Every role mounts its HTTP app with
 * `Deno.serve(options, routeByPathOnly(app.fetch))`.
 */
export function routeByPathOnly(handler: FetchHandler): FetchHandler {
  return (request, info) => {
    // Absent only in HTTP/1.0, where Deno builds the URL from the listening address.
    const host = request.headers.get("host");
    if (host !== null && !isValidHost(host)) {
      return new Response(JSON.stringify({ error: `Invalid Host header: ${host}` }), {
        status: 400,
        headers: { "content-type": "application/json" },
      });
    }
    return handler(request, info);
  };
}
