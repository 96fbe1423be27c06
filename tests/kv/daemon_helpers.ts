/**
 * Shared helpers of the daemon tests (tests/kv/daemon_*.test.ts): small HTTP calls against one
 * node that never throw on network trouble (status 0 instead), and polling for convergence.
 * Every helper consumes the response body, so no test leaks a fetch resource.
 */
import { type ProcessCluster } from "../lib/cluster.ts";
import { errorMessage } from "../../util/errors.ts";
import { sleep } from "../../util/sleep.ts";
import { authHeaders } from "../lib/credentials.ts";

/** What one HTTP call returned; status 0 means no answer (connection refused, reset, timeout). */
export interface HttpResult {
  status: number;
  body: string;
  headers: Headers;
  error?: string;
}

/** Default bound on one test HTTP call: above the servers' --request-timeout used by tests. */
export const CALL_TIMEOUT_MS = 8_000;

/** Request timeout the tests give serve (shorter than the 5 s default keeps fault tests quick). */
export const SERVE_ARGS = ["--request-timeout", "2s"];

/** Sends one request and reads the whole body before the deadline; never throws. */
export async function call(
  url: string,
  init: RequestInit = {},
  timeoutMs = CALL_TIMEOUT_MS,
): Promise<HttpResult> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error("Request timed out")), timeoutMs);
  try {
    // Test clusters require the test token (tests/lib/credentials.ts); a test may override it.
    const headers = new Headers(authHeaders());
    for (const [name, value] of new Headers(init.headers)) headers.set(name, value);
    const response = await fetch(url, { ...init, headers, signal: controller.signal });
    const body = await response.text();
    return { status: response.status, body, headers: response.headers };
  } catch (error) {
    return {
      status: 0,
      body: "",
      headers: new Headers(),
      error: errorMessage(error),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** Options of the key helpers. */
export interface KeyCallOptions {
  /** Query string without "?" (e.g. "prev=a", "stale=true"). */
  query?: string;
  clientId?: string;
  seq?: number;
  timeoutMs?: number;
}

function keyUrl(base: string, key: string, suffix: string, query?: string): string {
  return `${base}/v1/kv/${encodeURIComponent(key)}${suffix}${query ? `?${query}` : ""}`;
}

function sessionHeaders(options: KeyCallOptions): Record<string, string> {
  if (options.clientId === undefined) return {};
  return { "x-client-id": options.clientId, "x-request-seq": String(options.seq) };
}

/** PUT /v1/kv/{key}. */
export function put(
  base: string,
  key: string,
  value: string,
  options: KeyCallOptions = {},
): Promise<HttpResult> {
  return call(keyUrl(base, key, "", options.query), {
    method: "PUT",
    body: value,
    headers: sessionHeaders(options),
  }, options.timeoutMs);
}

/** POST /v1/kv/{key}/append. */
export function append(
  base: string,
  key: string,
  value: string,
  options: KeyCallOptions = {},
): Promise<HttpResult> {
  return call(keyUrl(base, key, "/append", options.query), {
    method: "POST",
    body: value,
    headers: sessionHeaders(options),
  }, options.timeoutMs);
}

/** DELETE /v1/kv/{key}. */
export function del(base: string, key: string, options: KeyCallOptions = {}) {
  return call(keyUrl(base, key, "", options.query), {
    method: "DELETE",
    headers: sessionHeaders(options),
  }, options.timeoutMs);
}

/** GET /v1/kv/{key} (linearizable unless options.query is "stale=true"). */
export function get(base: string, key: string, options: KeyCallOptions = {}) {
  return call(keyUrl(base, key, "", options.query), {}, options.timeoutMs);
}

/**
 * The least time poll() keeps trying, whatever its attempt count: on a machine at load 20+ a
 * probe that fails at once (connection refused, 503 during an election) would use up its
 * attempts long before a starting node or an election is done. Only a broken run waits this long.
 */
const MIN_POLL_MS = 60_000;

/**
 * Polls `probe` until it returns a non-undefined value; throws with `describe()` after
 * `attempts` tries and at least MIN_POLL_MS. No timing assertion: the bound only stops a broken
 * run from hanging.
 */
export async function poll<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  describe: () => string,
  attempts = 200,
  pauseMs = 50,
): Promise<T> {
  const floor = performance.now() + MIN_POLL_MS;
  for (let i = 0; i < attempts || performance.now() < floor; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(pauseMs);
  }
  throw new Error(`Gave up waiting: ${describe()}`);
}

/**
 * Retries a request until it gets a definitive answer (not 0/5xx), e.g. across a failover or a
 * spurious election on a loaded machine. Only for requests that are safe to repeat: reads, puts,
 * and writes that carry a (client id, seq).
 */
export async function untilDefinitive(
  attempt: () => Promise<HttpResult>,
  cluster: ProcessCluster,
  what: string,
  attempts = 60,
): Promise<HttpResult> {
  let last: HttpResult | undefined;
  return await poll(
    async () => {
      last = await attempt();
      return last.status === 0 || last.status >= 500 ? undefined : last;
    },
    () => `${what}: last answer ${JSON.stringify(last)}\n${cluster.dump()}`,
    attempts,
    100,
  );
}

/**
 * Waits until every running node's local (stale) read of each key equals `expected` (null =
 * absent): all replicas applied the same data.
 */
export async function waitConverged(
  cluster: ProcessCluster,
  expected: Map<string, string | null>,
  attempts = 300,
): Promise<void> {
  let mismatch = "";
  await poll(
    async () => {
      for (const id of cluster.running) {
        for (const [key, value] of expected) {
          const r = await get(cluster.url(id), key, { query: "stale=true" });
          const found = r.status === 200
            ? r.body
            : r.status === 404
            ? null
            : `<status ${r.status}>`;
          if (found !== value) {
            mismatch = `node ${id} key ${key}: ${JSON.stringify(found)} != ${
              JSON.stringify(value)
            }`;
            return undefined;
          }
        }
      }
      return true;
    },
    () => `${mismatch}\n${cluster.dump()}`,
    attempts,
    50,
  );
}

/** Picks a random running node's base URL. */
export function randomNode(cluster: ProcessCluster): string {
  const running = cluster.running;
  if (running.length === 0) throw new Error("No node is running");
  return cluster.url(running[Math.floor(Math.random() * running.length)]);
}

/**
 * A client that issues writes one at a time with its own (client id, seq) and retries each
 * write, with the same seq, until it gets a definitive answer: the classic-lab clerk over HTTP.
 * Each write goes to the given node, or to a random running node per attempt when `node` is
 * undefined. Every write it reports as done was applied exactly once.
 */
export class Clerk {
  readonly clientId: string;
  readonly #cluster: ProcessCluster;
  #seq = 0;

  constructor(cluster: ProcessCluster, clientId = `clerk-${crypto.randomUUID()}`) {
    this.#cluster = cluster;
    this.clientId = clientId;
  }

  /** PUT (with an optional cas/create-only query) until definitive. */
  put(node: number | undefined, key: string, value: string, query?: string) {
    return this.#run(node, `put ${key}`, (base, s) => put(base, key, value, { ...s, query }));
  }

  /** Append until definitive. */
  append(node: number | undefined, key: string, value: string) {
    return this.#run(node, `append ${key}`, (base, s) => append(base, key, value, s));
  }

  /** DELETE until definitive. */
  del(node: number | undefined, key: string) {
    return this.#run(node, `del ${key}`, (base, s) => del(base, key, s));
  }

  async #run(
    node: number | undefined,
    what: string,
    send: (base: string, session: KeyCallOptions) => Promise<HttpResult>,
  ): Promise<HttpResult> {
    const session = { clientId: this.clientId, seq: ++this.#seq };
    return await untilDefinitive(
      () => send(node === undefined ? randomNode(this.#cluster) : this.#cluster.url(node), session),
      this.#cluster,
      `${this.clientId} ${what} seq ${session.seq}`,
      300,
    );
  }
}

/** A linearizable GET retried until definitive (200 or 404). */
export function read(cluster: ProcessCluster, id: number, key: string): Promise<HttpResult> {
  return untilDefinitive(() => get(cluster.url(id), key), cluster, `get ${key} on node ${id}`);
}
