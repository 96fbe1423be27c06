/**
 * The linearizability workload of the daemon tests: several concurrent HTTP clients doing
 * get/put/append/cas/del on a few keys through random running nodes, recording a history that
 * checkHistory() verifies with the Wing-Gong checker; see daemon_linearizability.test.ts for how
 * outcomes are classified.
 */
import assert from "node:assert/strict";
import type { ProcessCluster } from "../lib/cluster.ts";
import { sleep } from "../../util/sleep.ts";
import {
  checkLinearizability,
  type KvHistoryOp,
  type KvHistoryOpKind,
} from "../lib/linearizability.ts";
import { call, type HttpResult, untilDefinitive, waitConverged } from "./daemon_helpers.ts";

/** The keys the workload uses. */
export const KEYS = ["x", "y", "z"];
const CLIENTS = 5;
const RUN_MS = 6_000;
/** Completed operations a history needs for its check to mean something (not a timing bound). */
const ENOUGH_OPS = 30;
/**
 * A run lasts its time and until ENOUGH_OPS operations completed: on a loaded machine (or with
 * nodes down) a few seconds may not hold enough. Past this bound it stops anyway, and
 * checkHistory() says how few completed.
 */
const MAX_RUN_MS = 180_000;
/** Client-side bound on one attempt: above the servers' 2 s request timeout. */
const ATTEMPT_TIMEOUT_MS = 4_000;

interface Workload {
  history: KvHistoryOp[];
  /** Operations with a definitive outcome so far. */
  completed: number;
  stopped: () => boolean;
}

/** A random element. */
export function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)];
}

/** One attempt of `op` over HTTP against `base`. */
function attempt(
  base: string,
  op: KvHistoryOp,
  session: { clientId: string; seq: number },
): Promise<HttpResult> {
  const url = `${base}/v1/kv/${op.key}`;
  const headers = { "x-client-id": session.clientId, "x-request-seq": String(session.seq) };
  switch (op.op) {
    case "get":
      return call(url, {}, ATTEMPT_TIMEOUT_MS);
    case "put":
      return call(url, { method: "PUT", body: op.value, headers }, ATTEMPT_TIMEOUT_MS);
    case "append":
      return call(`${url}/append`, { method: "POST", body: op.value, headers }, ATTEMPT_TIMEOUT_MS);
    case "del":
      return call(url, { method: "DELETE", headers }, ATTEMPT_TIMEOUT_MS);
    case "cas": {
      const query = op.expect === null
        ? "prevExist=false"
        : `prev=${encodeURIComponent(op.expect!)}`;
      return call(
        `${url}?${query}`,
        { method: "PUT", body: op.value, headers },
        ATTEMPT_TIMEOUT_MS,
      );
    }
  }
}

/** Fills in `op.output` from a definitive answer; returns false when the outcome is unknown. */
function settle(op: KvHistoryOp, r: HttpResult): boolean {
  switch (op.op) {
    case "get":
      if (r.status === 200) op.output = { value: r.body };
      else if (r.status === 404) op.output = { value: null };
      else return false;
      return true;
    case "put":
    case "append":
      if (r.status !== 200) return false;
      op.output = {};
      return true;
    case "del":
      if (r.status !== 200 && r.status !== 404) return false;
      op.output = { existed: r.status === 200 };
      return true;
    case "cas":
      if (r.status === 200) op.output = { ok: true };
      else if (r.status === 412) op.output = { ok: false, current: JSON.parse(r.body).value };
      else return false;
      return true;
  }
}

/** One client: a loop of random operations, each retried until definitive or the run ends. */
async function runClient(cluster: ProcessCluster, c: number, work: Workload): Promise<void> {
  const clientId = `lin-${c}-${crypto.randomUUID()}`;
  let seq = 0;
  const seen = new Map<string, string | null>();
  for (let n = 0; !work.stopped(); n++) {
    const key = pick(KEYS);
    const roll = Math.random();
    const kind: KvHistoryOpKind = roll < 0.35
      ? "get"
      : roll < 0.55
      ? "put"
      : roll < 0.8
      ? "append"
      : roll < 0.95
      ? "cas"
      : "del";
    const op: KvHistoryOp = { clientId: c, op: kind, key, call: 0, return: undefined };
    if (kind === "put" || kind === "cas") op.value = `${c}.${n}`;
    if (kind === "append") op.value = `+${c}.${n}`;
    // A cas expects what this client last saw, so it succeeds often enough to matter.
    if (kind === "cas") op.expect = seen.has(key) ? seen.get(key)! : null;
    const session = { clientId, seq: kind === "get" ? 0 : ++seq };
    op.call = performance.now();
    work.history.push(op);
    while (!work.stopped()) {
      const running = cluster.running;
      if (running.length === 0) {
        await sleep(50);
        continue;
      }
      const r = await attempt(cluster.url(pick(running)), op, session);
      if (settle(op, r)) {
        op.return = performance.now();
        work.completed++;
        break;
      }
      // An unknown read is simply retried as a new read (an unknown get constrains nothing).
      if (kind === "get") op.call = performance.now();
      else if (c % 2 === 1) break;
      await sleep(20);
    }
    if (op.return === undefined) {
      // Unknown outcome: keep it (the checker lets it take effect any time after its call).
      op.output = undefined;
      seen.delete(key);
      continue;
    }
    if (kind === "get") seen.set(key, op.output!.value ?? null);
    else if (kind === "put") seen.set(key, op.value!);
    else if (kind === "cas" && op.output!.ok) seen.set(key, op.value!);
    else if (kind === "cas") seen.set(key, op.output!.current ?? null);
    else if (kind === "del") seen.set(key, null);
    else seen.delete(key); // After an append this client does not know the whole value.
  }
}

/**
 * Runs the workload for `runMs`, and until enough operations completed, while `faults` runs;
 * returns the history once both are done.
 */
export async function record(
  cluster: ProcessCluster,
  faults: (stopped: () => boolean) => Promise<void>,
  runMs = RUN_MS,
): Promise<KvHistoryOp[]> {
  const started = performance.now();
  const work: Workload = {
    history: [],
    completed: 0,
    stopped: () => {
      const elapsed = performance.now() - started;
      return elapsed > MAX_RUN_MS || (elapsed > runMs && work.completed > ENOUGH_OPS);
    },
  };
  await Promise.all([
    ...Array.from({ length: CLIENTS }, (_, c) => runClient(cluster, c, work)),
    faults(work.stopped),
  ]);
  return work.history;
}

/** Asserts the history is linearizable (and long enough to mean something). */
export function checkHistory(cluster: ProcessCluster, history: KvHistoryOp[]): void {
  const completed = history.filter((o) => o.return !== undefined).length;
  // Enough completed operations that the check means something (not a timing bound).
  assert.ok(completed > ENOUGH_OPS, `only ${completed} operations completed\n${cluster.dump()}`);
  const result = checkLinearizability(history);
  if (!result.ok) {
    const key = result.key;
    const ops = history.filter((o) => o.key === key).sort((a, b) => a.call - b.call);
    const lines = ops.map((o) =>
      `${o.clientId} ${o.op} ${JSON.stringify(o.expect ?? "")} ${JSON.stringify(o.value ?? "")} ` +
      `[${o.call.toFixed(1)}, ${o.return?.toFixed(1) ?? "?"}] ${JSON.stringify(o.output)}`
    );
    assert.fail(`${result.explanation}\n${lines.join("\n")}\n${cluster.dump()}`);
  }
}

/** Every node ends with the same value for every key (after healing and restarts). */
export async function checkConverged(cluster: ProcessCluster): Promise<void> {
  const expected = new Map<string, string | null>();
  for (const key of KEYS) {
    const r = await untilDefinitive(() => call(`${cluster.url(1)}/v1/kv/${key}`), cluster, key);
    expected.set(key, r.status === 200 ? r.body : null);
  }
  await waitConverged(cluster, expected);
}
