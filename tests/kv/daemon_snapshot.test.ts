/**
 * Snapshots on real `raftmr serve` processes, after the classic lab's 3B scenarios
 * (spec/classic-lab-scenarios.md §3): a follower cut off while the leader compacts catches up
 * through InstallSnapshot (SnapshotRPC3B), repeated writes to two keys keep the snapshot and the
 * data directory small (SnapshotSize3B), kill -9 of every node after several snapshots loses
 * nothing (SnapshotRecover3B), and a slow, flaky network with snapshots under way still yields a
 * linearizable history (SnapshotUnreliable3B).
 *
 * Size bounds are derived from the WAL record layout (persist/wal.ts): a save batch of one entry
 * is an entries record (8-byte header + 1 type byte + 12 bytes first index and count, then 12
 * bytes term and length per entry, then the command) plus a hard-state record (8 + 1 + 24 bytes).
 * WAL segments are 64 MiB (persist/wal.ts DEFAULT_SEGMENT_BYTES) and `serve` has no flag to
 * change that, and compaction never deletes the active segment: with small values the WAL is one
 * growing segment, so for small writes the meaningful checks are that snapshots are taken, the
 * log kept after the snapshot point is bounded, the WAL holds nothing beyond the entries written,
 * and snap/ keeps at most two small files. The large-value test writes more than two segments'
 * worth so that segment deletion is actually exercised.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DEFAULT_PREALLOCATE_BYTES } from "../../persist/wal.ts";
import { type NodeStatus, ProcessCluster, type TestNode } from "../lib/cluster.ts";
import { sleep } from "../../util/sleep.ts";
import { checkLinearizability, type KvHistoryOp } from "../lib/linearizability.ts";
import {
  append,
  Clerk,
  get,
  type HttpResult,
  poll,
  put,
  read,
  SERVE_ARGS,
  waitConverged,
} from "./daemon_helpers.ts";

/** WAL segment size that serve uses (not configurable from the CLI). */
const SEGMENT_BYTES = 64 * 1024 * 1024;
/** Framing of one single-entry save batch: entries record (8+1+12+12) and hard state (8+1+24). */
const BATCH_FRAMING_BYTES = 33 + 33;
/**
 * msgpack framing of one KV command around its key, value and client id (op tag, seq, array and
 * string headers): about 20 bytes, rounded up.
 */
const COMMAND_FRAMING_BYTES = 48;
/** Snapshot file header (magic, version, index, term, membership, crc): 57 bytes for 3 peers. */
const SNAPSHOT_HEADER_BYTES = 64;

/** Upper bound on the WAL bytes one entry can cost, written alone in its own save batch. */
function entryRecordBound(key: string, value: string, clientId = ""): number {
  return BATCH_FRAMING_BYTES + COMMAND_FRAMING_BYTES + key.length + value.length +
    clientId.length;
}

interface Counters {
  snapshotsTaken: number;
  snapshotsInstalled: number;
}

function counters(status: NodeStatus): Counters {
  return status.counters as Counters;
}

/** Total bytes of the regular files under `dir`, walked recursively. */
async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) total += await dirBytes(path);
    else if (entry.isFile) total += (await sizeOf(path)) ?? 0;
  }
  return total;
}

/** A file's size, or undefined when it vanished since it was listed (compaction deletes). */
async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await Deno.stat(path)).size;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/** Names and sizes of the files directly in `dir`, sorted by name. */
async function listFiles(dir: string): Promise<{ name: string; size: number }[]> {
  const files: { name: string; size: number }[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const size = entry.isFile ? await sizeOf(join(dir, entry.name)) : undefined;
    if (size !== undefined) files.push({ name: entry.name, size });
  }
  return files.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * The node's finished snapshot files once pruning has left at most two. Snapshots are written
 * in the background, so in-progress .tmp files are skipped and pruning gets a moment.
 */
async function prunedSnapshots(node: TestNode): Promise<{ name: string; size: number }[]> {
  let snaps: { name: string; size: number }[] = [];
  await poll(
    async () => {
      snaps = (await listFiles(join(node.dataDir, "snap"))).filter((f) => f.name.endsWith(".snap"));
      return snaps.length <= 2 ? true : undefined;
    },
    () => `node ${node.id} snap/ keeps ${JSON.stringify(snaps)}`,
  );
  return snaps;
}

/** Polls node `id`'s /status until `ok` accepts it (a loaded node may miss a probe); returns it. */
async function waitForStatus(
  cluster: ProcessCluster,
  id: number,
  ok: (s: NodeStatus) => boolean,
  what: string,
): Promise<NodeStatus> {
  let last: NodeStatus | undefined;
  return await poll(
    async () => {
      last = await cluster.status(id).catch(() => undefined);
      return last && ok(last) ? last : undefined;
    },
    () => `node ${id} never ${what}: ${JSON.stringify(last)}\n${cluster.dump()}`,
    400,
  );
}

/** Waits until every running node has applied at least the leader's current commit index. */
async function waitCaughtUp(cluster: ProcessCluster, leader: number): Promise<void> {
  const target = (await cluster.answeredStatus(leader)).commit;
  let last = "";
  await poll(
    async () => {
      const statuses = await cluster.statuses();
      last = JSON.stringify([...statuses].map(([id, s]) => [id, s?.applied]));
      for (const s of statuses.values()) if (!s || s.applied < target) return undefined;
      return true;
    },
    () => `nodes never applied ${target}: ${last}\n${cluster.dump()}`,
    400,
  );
}

Deno.test("daemon: a follower cut off while the leader compacts catches up through InstallSnapshot", async () => {
  const N = 50;
  const KEYS = 300;
  const cluster = await ProcessCluster.start({
    nodes: 3,
    proxies: true,
    extraArgs: [...SERVE_ARGS, "--snapshot-entries", String(N)],
  });
  try {
    const clerk = new Clerk(cluster, `rpc-${crypto.randomUUID()}`);
    const expected = new Map<string, string | null>();
    assert.equal((await clerk.put(undefined, "a", "A")).status, 200);
    expected.set("a", "A");

    const leader = await cluster.waitForLeader();
    const [lagger, other] = cluster.ids.filter((id) => id !== leader);
    cluster.partition([leader, other], [lagger]);
    for (let i = 0; i < KEYS; i++) {
      const r = await clerk.put(leader, `k${i}`, `v${i}`);
      assert.equal(r.status, 200, r.body);
      expected.set(`k${i}`, `v${i}`);
    }
    assert.equal((await clerk.put(leader, "b", "B")).status, 200);
    expected.set("b", "B");

    // The majority compacted while the lagger was away.
    const s = await cluster.answeredStatus(leader);
    const taken = counters(s).snapshotsTaken;
    assert.ok(taken >= 2, `leader took ${taken} snapshots\n${JSON.stringify(s)}`);
    const snapshotIndex = s.snapshotIndex as number;
    const lastIndex = s.lastIndex as number;
    // The leader may defer a snapshot up to 2N entries for an active follower just behind.
    assert.ok(
      lastIndex - snapshotIndex <= 2 * N,
      `log after the snapshot point: ${lastIndex} - ${snapshotIndex} > ${2 * N}`,
    );
    // The WAL holds nothing beyond the entries written (it is one segment here, see the header).
    const walBound = lastIndex * entryRecordBound(`k${KEYS}`, `v${KEYS}`, clerk.clientId);
    assert.ok(
      (s.walBytes as number) <= walBound,
      `leader WAL ${s.walBytes} bytes > ${walBound} for ${lastIndex} entries`,
    );
    const behind = await cluster.answeredStatus(lagger);
    assert.ok(behind.applied < snapshotIndex, `lagger already has ${behind.applied}`);

    cluster.heal();
    // The entries the lagger misses are gone from the leader's log: only a snapshot can help.
    let lag: NodeStatus | undefined;
    await poll(
      async () => {
        lag = await cluster.status(lagger).catch(() => undefined);
        return lag && counters(lag).snapshotsInstalled > 0 && lag.applied >= lastIndex
          ? true
          : undefined;
      },
      () => `node ${lagger} never installed a snapshot: ${JSON.stringify(lag)}\n${cluster.dump()}`,
      400,
    );
    // Every key is served from the lagger's own state.
    for (const [key, value] of expected) {
      const r = await get(cluster.url(lagger), key, { query: "stale=true" });
      assert.equal(r.status, 200, `node ${lagger} ${key}: ${r.status} ${r.body}`);
      assert.equal(r.body, value, `node ${lagger} ${key}`);
    }

    // Writes go on, through the former lagger too, and every node agrees.
    for (const [key, node] of [["c", lagger], ["d", other], ["e", leader]] as const) {
      assert.equal((await clerk.put(node, key, key.toUpperCase())).status, 200);
      expected.set(key, key.toUpperCase());
    }
    for (const key of ["a", "b", "c", "e", "k1", `k${KEYS - 1}`]) {
      const r = await read(cluster, lagger, key);
      assert.equal(r.body, expected.get(key), `linearizable ${key} on node ${lagger}`);
    }
    await waitConverged(cluster, expected);
  } finally {
    await cluster.stop();
  }
});

Deno.test("daemon: repeated puts of two keys keep snapshots small and snap/ pruned", async () => {
  const N = 20;
  const ROUNDS = 200;
  const cluster = await ProcessCluster.start({
    nodes: 3,
    extraArgs: [...SERVE_ARGS, "--snapshot-entries", String(N)],
  });
  try {
    const leader = await cluster.waitForLeader();
    const clerk = new Clerk(cluster, `size-${crypto.randomUUID()}`);
    for (let i = 0; i < ROUNDS; i++) {
      for (const key of ["x", "y"]) {
        const value = String(i % 2);
        assert.equal((await clerk.put(leader, key, value)).status, 200);
        const r = await read(cluster, leader, key);
        assert.equal(r.body, value, `round ${i} ${key}`);
      }
    }
    await waitCaughtUp(cluster, leader);

    // Live state: two one-byte values and one session. Classic SnapshotSize3B allows 500 bytes.
    const SNAPSHOT_FILE_BOUND = 500;
    for (const node of cluster.nodes) {
      const s = await cluster.answeredStatus(node.id);
      assert.ok(
        counters(s).snapshotsTaken >= 2,
        `node ${node.id} took ${counters(s).snapshotsTaken} snapshots`,
      );
      const snaps = await prunedSnapshots(node);
      assert.ok(snaps.length >= 1, `node ${node.id} has no snapshot file`);
      for (const f of snaps) {
        assert.ok(f.size <= SNAPSHOT_FILE_BOUND, `node ${node.id} ${f.name}: ${f.size} bytes`);
      }
      // The whole directory: the WAL (one segment, bounded by the entries written) and the
      // snapshots. 2·ROUNDS puts plus a no-op per leader term.
      const lastIndex = s.lastIndex as number;
      const bound = lastIndex * entryRecordBound("x", "0", clerk.clientId) +
        2 * SNAPSHOT_FILE_BOUND;
      // The WAL's preallocated zeros (one run at most, ahead of the records) are not data.
      const preallocated = (s.walAllocatedBytes as number) - (s.walBytes as number);
      assert.ok(
        preallocated >= 0 && preallocated <= DEFAULT_PREALLOCATE_BYTES,
        `node ${node.id}: ${preallocated} bytes preallocated`,
      );
      const total = await dirBytes(node.dataDir) - preallocated;
      assert.ok(total <= bound, `node ${node.id} data dir ${total} bytes > ${bound}`);
      assert.ok(
        lastIndex - (s.snapshotIndex as number) <= 2 * N,
        `node ${node.id} keeps ${lastIndex - (s.snapshotIndex as number)} entries`,
      );
    }
  } finally {
    await cluster.stop();
  }
});

Deno.test("daemon: compaction deletes covered WAL segments under large repeated writes", async () => {
  // 1,000,000-byte values (under the 1 MiB limit) so the WAL fills more than two 64 MiB segments.
  const N = 5;
  const VALUE_BYTES = 1_000_000;
  const ROUNDS = 75;
  const cluster = await ProcessCluster.start({
    nodes: 3,
    extraArgs: [...SERVE_ARGS, "--snapshot-entries", String(N)],
  });
  try {
    const leader = await cluster.waitForLeader();
    const clerk = new Clerk(cluster, `big-${crypto.randomUUID()}`);
    const expected = new Map<string, string | null>();
    for (let i = 0; i < ROUNDS; i++) {
      for (const key of ["x", "y"]) {
        const value = String(i % 10).repeat(VALUE_BYTES);
        assert.equal((await clerk.put(leader, key, value)).status, 200);
        expected.set(key, value);
      }
    }
    const written = 2 * ROUNDS * VALUE_BYTES;
    await waitCaughtUp(cluster, leader);

    // What survives: the WAL from the oldest of the two kept snapshots on (at most two
    // snapshot intervals, each ≤ 2N entries when the leader defers, plus a batch or two of
    // slack), the segment it starts in (≤ 64 MiB + one record), the zeros preallocated ahead
    // of the records (one run), and two snapshots.
    const entry = entryRecordBound("x", "0".repeat(VALUE_BYTES), clerk.clientId);
    const snapshotBound = SNAPSHOT_HEADER_BYTES + 2 * (VALUE_BYTES + 64) + 256;
    const bound = SEGMENT_BYTES + DEFAULT_PREALLOCATE_BYTES + entry + (4 * N + 4) * entry +
      2 * snapshotBound;
    // Without segment deletion each node's WAL alone would hold everything written.
    assert.ok(written > bound, `the workload (${written} bytes) must outgrow the bound ${bound}`);
    for (const node of cluster.nodes) {
      let total = 0;
      let wal: { name: string; size: number }[] = [];
      // Segment deletion is queued behind the snapshot write: poll rather than race it.
      await poll(
        async () => {
          total = await dirBytes(node.dataDir);
          wal = await listFiles(join(node.dataDir, "wal"));
          return total <= bound ? true : undefined;
        },
        () =>
          `node ${node.id} data dir ${total} bytes > ${bound} after writing ${written}: ` +
          `wal ${JSON.stringify(wal)}\n${cluster.dump()}`,
      );
      assert.ok(
        !wal.some((f) => f.name === "0000000000000000.wal"),
        `node ${node.id} still has the first segment: ${JSON.stringify(wal)}`,
      );
      await prunedSnapshots(node);
    }
    await waitConverged(cluster, expected);
  } finally {
    await cluster.stop();
  }
});

Deno.test("daemon: kill -9 of every node after several snapshots, then restart: all data is back", async () => {
  const N = 20;
  const cluster = await ProcessCluster.start({
    nodes: 3,
    extraArgs: [...SERVE_ARGS, "--snapshot-entries", String(N)],
  });
  try {
    const acked = new Map<string, string>();
    // Three clerks, each putting fresh keys and appending to its own log key.
    await Promise.all(Array.from({ length: 3 }, async (_, c) => {
      const clerk = new Clerk(cluster, `recover-${c}-${crypto.randomUUID()}`);
      let log = "";
      for (let i = 0; i < 50; i++) {
        assert.equal((await clerk.put(undefined, `r${c}-${i}`, `v${c}.${i}`)).status, 200);
        acked.set(`r${c}-${i}`, `v${c}.${i}`);
        assert.equal((await clerk.append(undefined, `log-${c}`, `|${i}`)).status, 200);
        log += `|${i}`;
        acked.set(`log-${c}`, log);
      }
    }));
    // Every node has compacted more than once, so recovery must start from a snapshot. A
    // follower applies (and counts a snapshot once it is durable) a little after the leader
    // acknowledged, and a loaded node may miss one /status probe: wait for each node.
    for (const id of cluster.ids) {
      await waitForStatus(
        cluster,
        id,
        (s) => counters(s).snapshotsTaken >= 2,
        "took two snapshots",
      );
    }

    await Promise.all(cluster.ids.map((id) => cluster.kill(id)));
    for (const id of cluster.ids) cluster.startNode(id);
    await cluster.waitForLeader();
    // A leader needs only a majority: the third node may still be starting. Its status is
    // read once it answers (the snapshot index is loaded before the HTTP port opens), and
    // asserted as it first comes: a restart never moves it back to 0.
    for (const id of cluster.ids) {
      await cluster.waitForHttp(id);
      const s = await waitForStatus(cluster, id, () => true, "answered /status");
      assert.ok(
        (s.snapshotIndex as number) > 0,
        `node ${id} restarted without a snapshot: ${JSON.stringify(s)}`,
      );
    }
    for (const id of cluster.ids) {
      for (const [key, value] of acked) {
        const r = await read(cluster, id, key);
        assert.equal(r.status, 200, `node ${id} ${key}: ${r.status} ${r.body}\n${cluster.dump()}`);
        assert.equal(r.body, value, `node ${id} ${key}`);
      }
    }
    await waitConverged(cluster, acked);
    assert.equal((await new Clerk(cluster).put(1, "after-restart", "yes")).status, 200);
  } finally {
    await cluster.stop();
  }
});

/** Client-side bound on one attempt: above the servers' 2 s request timeout. */
const ATTEMPT_TIMEOUT_MS = 4_000;

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)];
}

/**
 * One clerk of the unreliable run: random get/put/append on a few keys through random nodes.
 * A write keeps its (client id, seq) across retries until a definitive answer or the end of the
 * run; one still unanswered then stays in the history with an unknown outcome.
 */
async function unreliableClient(
  cluster: ProcessCluster,
  c: number,
  keys: string[],
  history: KvHistoryOp[],
  stopped: () => boolean,
): Promise<void> {
  const clientId = `unrel-${c}-${crypto.randomUUID()}`;
  let seq = 0;
  for (let n = 0; !stopped(); n++) {
    const roll = Math.random();
    const kind = roll < 0.4 ? "get" : roll < 0.6 ? "put" : "append";
    const op: KvHistoryOp = {
      clientId: c,
      op: kind,
      key: pick(keys),
      call: performance.now(),
      return: undefined,
    };
    if (kind !== "get") op.value = kind === "put" ? `${c}.${n}` : `+${c}.${n}`;
    const session = { clientId, seq: kind === "get" ? 0 : ++seq, timeoutMs: ATTEMPT_TIMEOUT_MS };
    history.push(op);
    while (!stopped()) {
      const base = cluster.url(pick(cluster.running));
      let r: HttpResult;
      if (kind === "get") r = await get(base, op.key, { timeoutMs: ATTEMPT_TIMEOUT_MS });
      else if (kind === "put") r = await put(base, op.key, op.value!, session);
      else r = await append(base, op.key, op.value!, session);
      if (kind === "get" && (r.status === 200 || r.status === 404)) {
        op.output = { value: r.status === 200 ? r.body : null };
        op.return = performance.now();
        break;
      }
      if (kind !== "get" && r.status === 200) {
        op.output = {};
        op.return = performance.now();
        break;
      }
      // A get with no answer constrains nothing: retry it as a fresh read.
      if (kind === "get") op.call = performance.now();
      await sleep(20);
    }
  }
}

Deno.test("daemon: snapshots under a slow, flaky network keep the history linearizable", async () => {
  const RUN_MS = 6_000;
  // The run lasts RUN_MS and until the checks below have something to check; on a loaded
  // machine six seconds may hold too few operations for a snapshot (every 30 entries). Past
  // this bound it stops anyway and the assertions say what was missing.
  const MAX_RUN_MS = 180_000;
  const KEYS = ["a", "b", "c"];
  const cluster = await ProcessCluster.start({
    nodes: 3,
    proxies: true,
    extraArgs: [...SERVE_ARGS, "--snapshot-entries", "30"],
  });
  try {
    const started = performance.now();
    let enough = false;
    const stopped = () => {
      const elapsed = performance.now() - started;
      return elapsed > MAX_RUN_MS || (elapsed > RUN_MS && enough);
    };
    const history: KvHistoryOp[] = [];
    const completedOps = () => history.filter((o) => o.return !== undefined).length;
    const snapshotsTaken = async () => {
      const statuses = await cluster.statuses();
      const taken = [...statuses.values()].reduce(
        (n, s) => n + (s ? counters(s).snapshotsTaken : 0),
        0,
      );
      return { taken, statuses };
    };
    // Enough: more operations than the history check needs and a snapshot taken under way.
    const watch = async () => {
      while (!stopped()) {
        if (completedOps() > 30 && (await snapshotsTaken()).taken > 0) enough = true;
        await sleep(200);
      }
    };
    const pairs = [[1, 2], [1, 3], [2, 3]];
    // The classic unreliable profile, on TCP: 0–26 ms delay per link, re-drawn often, and
    // now and then a link reset for a moment (dropped connections instead of dropped RPCs).
    const faults = async () => {
      while (!stopped()) {
        for (const [a, b] of pairs) cluster.setLinkDelay(a, b, Math.floor(Math.random() * 27));
        if (Math.random() < 0.3) {
          const [a, b] = pick(pairs);
          cluster.setLink(a, b, false);
          await sleep(50 + Math.random() * 200);
          cluster.setLink(a, b, true);
        }
        await sleep(150);
      }
      for (const [a, b] of pairs) cluster.setLinkDelay(a, b, 0);
      cluster.heal();
    };
    await Promise.all([
      faults(),
      watch(),
      ...Array.from(
        { length: 5 },
        (_, c) => unreliableClient(cluster, c, KEYS, history, stopped),
      ),
    ]);

    const completed = completedOps();
    // Enough operations that the check means something (not a timing bound).
    assert.ok(completed > 30, `only ${completed} operations completed\n${cluster.dump()}`);
    const result = checkLinearizability(history);
    if (!result.ok) {
      const ops = history.filter((o) => o.key === result.key).sort((x, y) => x.call - y.call);
      const lines = ops.map((o) =>
        `${o.clientId} ${o.op} ${JSON.stringify(o.value ?? "")} ` +
        `[${o.call.toFixed(1)}, ${o.return?.toFixed(1) ?? "?"}] ${JSON.stringify(o.output)}`
      );
      assert.fail(`${result.explanation}\n${lines.join("\n")}\n${cluster.dump()}`);
    }

    // Snapshots really happened during the run, and the replicas converge afterwards. (A
    // loaded node may miss one /status probe: asked a few times; counters never go down.)
    let seen = await snapshotsTaken();
    for (let i = 0; i < 20 && seen.taken === 0; i++) {
      await sleep(100);
      seen = await snapshotsTaken();
    }
    assert.ok(seen.taken > 0, `no snapshot was taken: ${JSON.stringify([...seen.statuses])}`);
    const expected = new Map<string, string | null>();
    for (const key of KEYS) {
      const r = await read(cluster, 1, key);
      expected.set(key, r.status === 200 ? r.body : null);
    }
    await waitConverged(cluster, expected);
  } finally {
    await cluster.stop();
  }
});
