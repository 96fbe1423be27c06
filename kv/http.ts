/**
 * The KV HTTP API as a Hono app (its routes and status codes are the README's "HTTP API of a
 * peer" table, which tests/kv/http.test.ts checks). It only
 * translates HTTP to KvService calls and back; replication, forwarding and waiting for a leader
 * are the service's job. The key routes parse the raw URL themselves: keys may contain '/', and
 * on the hot path (benchmarked against etcd) one indexOf beats a router parameter plus decoding.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { httpMetrics } from "../status/http_metrics.ts";
import { metricsResponse, Registry } from "../status/metrics.ts";
import { nodePage } from "./dashboard.ts";
import type { ApplyResult } from "./state_machine.ts";
import {
  DEFAULT_KV_LIMITS,
  InvalidRequestError,
  KvError,
  type KvErrorCode,
  type KvLimits,
  type KvService,
  type KvWrite,
  TooLargeError,
  UnavailableError,
  validateKey,
  validateSession,
  validateValue,
} from "./service.ts";
import { errorMessage } from "../util/errors.ts";

/** Options of createHttpApp. */
export interface HttpAppOptions {
  /** Maximum key length in UTF-8 bytes (default 1 KiB). */
  maxKeyBytes?: number;
  /** Maximum value length in bytes (default 1 MiB). */
  maxValueBytes?: number;
  /** Called with unexpected errors (answered 500), e.g. to log them. */
  onInternalError?: (error: unknown) => void;
}

/**
 * The HTTP status of each failure reason, the one place it is decided (Hono's HTTPException rule:
 * the error names its reason, the boundary maps it). 503 = nothing happened, retry after the
 * Retry-After pause; 504 = accepted, outcome unknown.
 */
const HTTP_STATUS: Readonly<Record<KvErrorCode, number>> = Object.freeze({
  invalid: 400,
  stale: 409,
  too_large: 413,
  unavailable: 503,
  timeout: 504,
});

const KV_PREFIX = "/v1/kv/";
const APPEND_SUFFIX = "/append";
const JSON_TYPE = "application/json";
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

function json(status: number, body: unknown, headers?: Record<string, string>): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": JSON_TYPE, ...headers },
  });
}

function errorResponse(status: number, message: string, headers?: Record<string, string>) {
  return json(status, { error: message }, headers);
}

/** The part of the URL after the origin, split into raw path and raw query (may be ""). */
function splitUrl(url: string): { path: string; query: string } {
  const start = url.indexOf("/", url.indexOf("://") + 3);
  const q = url.indexOf("?", start);
  const end = q === -1 ? url.length : q;
  const hash = url.indexOf("#", start);
  return {
    path: url.slice(start, hash !== -1 && hash < end ? hash : end),
    query: q === -1 ? "" : url.slice(q + 1),
  };
}

function decodeKey(raw: string): string {
  if (raw.indexOf("%") === -1) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new InvalidRequestError(`Invalid key: bad percent-encoding: ${raw}`);
  }
}

/**
 * Reads a request body, refusing (413) anything over `max` bytes without buffering it all. A body
 * that cannot be read (the client sent less than its Content-Length and hung up) is the client's
 * error: 400, not 500.
 */
async function readBody(request: Request, max: number): Promise<Uint8Array> {
  try {
    return await readBodyUnchecked(request, max);
  } catch (error) {
    if (error instanceof TooLargeError) throw error;
    throw new InvalidRequestError(
      `Invalid request body: ${errorMessage(error)}`,
    );
  }
}

async function readBodyUnchecked(request: Request, max: number): Promise<Uint8Array> {
  const declared = request.headers.get("content-length");
  if (declared !== null) {
    const n = Number(declared);
    if (n > max) throw new TooLargeError(`Value too large: ${n} bytes, limit ${max}`);
    if (Number.isSafeInteger(n) && n >= 0) return new Uint8Array(await request.arrayBuffer());
  }
  const body = request.body;
  if (body === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = body.getReader();
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > max) {
        await reader.cancel();
        throw new TooLargeError(`Value too large: over ${max} bytes`);
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** Reads X-Client-Id / X-Request-Seq into the write; 400 when malformed or only one is given. */
function applySessionHeaders(request: Request, write: KvWrite): void {
  const clientId = request.headers.get("x-client-id");
  const rawSeq = request.headers.get("x-request-seq");
  if (clientId === null && rawSeq === null) return;
  if (rawSeq === null) throw new InvalidRequestError("Missing header: X-Request-Seq");
  if (clientId === null) throw new InvalidRequestError("Missing header: X-Client-Id");
  const seq = /^[0-9]{1,16}$/.test(rawSeq) ? Number(rawSeq) : NaN;
  if (!Number.isSafeInteger(seq)) {
    throw new InvalidRequestError(`Invalid header X-Request-Seq: not an integer: ${rawSeq}`);
  }
  validateSession(clientId, seq);
  write.clientId = clientId;
  write.seq = seq;
}

function bytesToJsonString(bytes: Uint8Array | null): string | null {
  return bytes === null ? null : textDecoder.decode(bytes);
}

function writeResponse(key: string, index: number, result: ApplyResult): Response {
  switch (result.status) {
    case "ok":
      if (result.existed === false) {
        return json(404, { error: `Key not found: ${key}`, index });
      }
      return json(200, { index });
    case "mismatch":
      return json(412, {
        error: `Compare failed: ${key}`,
        value: bytesToJsonString(result.current),
        index,
      });
    case "stale":
    case "invalid":
      return errorResponse(HTTP_STATUS[result.status], result.error);
  }
}

/**
 * Builds the Hono app serving the KV API, /status, /metrics, /healthz and the / dashboard on top
 * of `service`. The server mounts it with Deno.serve({ ... }, routeByPathOnly(app.fetch)), so the
 * path it routes on is the request target's (net/http_host.ts).
 */
export function createHttpApp(service: KvService, options: HttpAppOptions = {}): Hono {
  const limits: KvLimits = {
    maxKeyBytes: options.maxKeyBytes ?? DEFAULT_KV_LIMITS.maxKeyBytes,
    maxValueBytes: options.maxValueBytes ?? DEFAULT_KV_LIMITS.maxValueBytes,
  };
  // HTTP request metrics, rendered after the service's own.
  const registry = new Registry();
  const app = new Hono();

  app.onError((error) => {
    if (error instanceof KvError) {
      const retryAfter = error instanceof UnavailableError
        ? { "retry-after": String(Math.max(1, Math.ceil(error.retryAfterSeconds))) }
        : undefined;
      return errorResponse(HTTP_STATUS[error.code], error.message, retryAfter);
    }
    options.onInternalError?.(error);
    return errorResponse(500, `Internal error: ${(error as Error)?.message ?? String(error)}`);
  });
  app.notFound((c) => errorResponse(404, `Not found: ${c.req.method} ${c.req.path}`));

  app.use(httpMetrics(registry));

  const kvRoute = async (c: Context): Promise<Response> => {
    const request = c.req.raw;
    const method = request.method;
    const { path, query } = splitUrl(request.url);
    let rawKey = path.slice(KV_PREFIX.length);
    if (method === "POST") {
      if (!rawKey.endsWith(APPEND_SUFFIX)) return c.notFound();
      rawKey = rawKey.slice(0, -APPEND_SUFFIX.length);
    }
    const key = decodeKey(rawKey);
    validateKey(key, limits);
    const params = query === "" ? undefined : new URLSearchParams(query);

    if (method === "GET") {
      const stale = params?.get("stale");
      const { value, index } = await service.read(key, {
        stale: stale === "true" || stale === "1",
      });
      if (value === null) {
        return json(404, { error: `Key not found: ${key}`, index }, {
          "x-raft-index": String(index),
        });
      }
      return new Response(value as Uint8Array<ArrayBuffer>, {
        status: 200,
        headers: { "content-type": "application/octet-stream", "x-raft-index": String(index) },
      });
    }

    let write: KvWrite;
    if (method === "DELETE") {
      write = { op: "del", key };
    } else {
      const value = await readBody(request, limits.maxValueBytes);
      validateValue(value, limits);
      if (method === "POST") {
        write = { op: "append", key, value };
      } else {
        write = { op: "put", key, value };
        const prev = params?.get("prev") ?? null;
        const prevExist = params?.get("prevExist") ?? null;
        if (prevExist !== null && prevExist !== "true" && prevExist !== "false") {
          throw new InvalidRequestError(`Invalid prevExist: must be true or false: ${prevExist}`);
        }
        if (prevExist === "false") {
          if (prev !== null) {
            throw new InvalidRequestError("Invalid request: prev and prevExist=false conflict");
          }
          write = { op: "cas", key, value, expect: null };
        } else if (prev !== null) {
          const expect = textEncoder.encode(prev);
          validateValue(expect, limits);
          write = { op: "cas", key, value, expect };
        } else if (prevExist === "true") {
          throw new InvalidRequestError("Unsupported: prevExist=true without prev");
        }
      }
    }
    applySessionHeaders(request, write);
    const { index, result } = await service.write(write);
    return writeResponse(key, index, result);
  };
  app.get("/v1/kv/*", kvRoute);
  app.put("/v1/kv/*", kvRoute);
  app.delete("/v1/kv/*", kvRoute);
  app.post("/v1/kv/*", kvRoute);

  app.get("/status", () => json(200, service.status()));
  app.get("/metrics", () => {
    let text = service.metricsText();
    if (text.length > 0 && !text.endsWith("\n")) text += "\n";
    return metricsResponse(text + registry.render());
  });
  app.get("/healthz", () => {
    if (service.leaderKnown()) return json(200, { ok: true });
    return errorResponse(503, "No leader is known", { "retry-after": "1" });
  });
  app.get("/", (c) => c.html(nodePage(service.status())));
  return app;
}
