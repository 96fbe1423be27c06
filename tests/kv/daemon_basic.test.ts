/**
 * Daemon tests on a healthy three-node cluster of real `raftmr serve` processes: every operation
 * of the HTTP API through any node is visible through every node, retried writes apply once, and
 * SIGTERM is a clean stop that keeps the data.
 */
import assert from "node:assert/strict";
import { ProcessCluster } from "../lib/cluster.ts";
import {
  append,
  Clerk,
  type HttpResult,
  put,
  read,
  SERVE_ARGS,
  untilDefinitive,
  waitConverged,
} from "./daemon_helpers.ts";

Deno.test("daemon: writes through any node are readable through every node", async () => {
  const cluster = await ProcessCluster.start({ nodes: 3, extraArgs: SERVE_ARGS });
  try {
    // Writes carry a session and are retried until definitive: a spurious election on a loaded
    // machine must not fail the test, and must not apply a write twice either.
    const clerk = new Clerk(cluster);
    const readAll = async (key: string) => {
      const out: [number, string][] = [];
      for (const id of cluster.ids) {
        const r = await read(cluster, id, key);
        out.push([r.status, r.body]);
      }
      return out;
    };
    const expectEverywhere = async (key: string, value: string | null) => {
      const want = value === null ? 404 : 200;
      for (const [id, [status, body]] of (await readAll(key)).entries()) {
        assert.equal(status, want, `node ${id + 1} ${key}: ${body}\n${cluster.dump()}`);
        if (value !== null) assert.equal(body, value, `node ${id + 1} ${key}`);
      }
    };

    // Plain put through each node in turn (followers forward to the leader).
    for (const [i, node] of [1, 2, 3].entries()) {
      const r = await clerk.put(node, `k${i}`, `v${i}`);
      assert.equal(r.status, 200, r.body);
      assert.ok(JSON.parse(r.body).index > 0);
    }
    for (let i = 0; i < 3; i++) await expectEverywhere(`k${i}`, `v${i}`);

    // Append to an existing key and to a missing one (acts as empty).
    assert.equal((await clerk.append(2, "k0", "+a")).status, 200);
    assert.equal((await clerk.append(3, "k0", "+b")).status, 200);
    assert.equal((await clerk.append(1, "fresh", "x")).status, 200);
    await expectEverywhere("k0", "v0+a+b");
    await expectEverywhere("fresh", "x");

    // Compare-and-set: a mismatch is 412 and carries the current value.
    const miss = await clerk.put(3, "k1", "new", "prev=wrong");
    assert.equal(miss.status, 412, miss.body);
    assert.equal(JSON.parse(miss.body).value, "v1");
    const hit = await clerk.put(2, "k1", "new", "prev=v1");
    assert.equal(hit.status, 200, hit.body);
    await expectEverywhere("k1", "new");

    // Create-only: 412 with the current value when the key exists, 200 when it does not.
    const exists = await clerk.put(1, "k2", "other", "prevExist=false");
    assert.equal(exists.status, 412, exists.body);
    assert.equal(JSON.parse(exists.body).value, "v2");
    const created = await clerk.put(3, "created", "c", "prevExist=false");
    assert.equal(created.status, 200, created.body);
    await expectEverywhere("created", "c");
    await expectEverywhere("k2", "v2");
    // cas against an absent key reports value null.
    const absent = await clerk.put(2, "nothing", "x", "prev=y");
    assert.equal(absent.status, 412, absent.body);
    assert.equal(JSON.parse(absent.body).value, null);

    // Delete: 200, then 404 everywhere, and a second delete is 404.
    assert.equal((await clerk.del(3, "k2")).status, 200);
    await expectEverywhere("k2", null);
    assert.equal((await clerk.del(1, "k2")).status, 404);
    await expectEverywhere("nothing", null);

    // Every replica applied the same data (local reads, no leader involved).
    await waitConverged(
      cluster,
      new Map<string, string | null>([
        ["k0", "v0+a+b"],
        ["k1", "new"],
        ["k2", null],
        ["fresh", "x"],
        ["created", "c"],
      ]),
    );
  } finally {
    await cluster.stop();
  }
});

Deno.test("daemon: a retried append with the same client id and seq applies once", async () => {
  const cluster = await ProcessCluster.start({ nodes: 3, extraArgs: SERVE_ARGS });
  try {
    // Each request is itself retried until definitive (same session, so that is safe too).
    const send = (id: number, r: () => Promise<HttpResult>) =>
      untilDefinitive(r, cluster, `request to node ${id}`);
    const s = (seq: number) => ({ clientId: "retry-client", seq });
    const start = await send(1, () => put(cluster.url(1), "log", "start", s(1)));
    assert.equal(start.status, 200, start.body);
    // The same request twice, through two different nodes, as a client retrying elsewhere would.
    const first = await send(2, () => append(cluster.url(2), "log", "|once", s(2)));
    const second = await send(3, () => append(cluster.url(3), "log", "|once", s(2)));
    assert.equal(first.status, 200, first.body);
    assert.equal(second.status, 200, second.body);
    // (The duplicate travels in a log entry of its own, so its index may differ; the value below
    // shows it changed nothing.)
    // The next sequence number applies normally; an older one is refused, not applied.
    const third = await send(1, () => append(cluster.url(1), "log", "|next", s(3)));
    assert.equal(third.status, 200, third.body);
    const old = await send(1, () => append(cluster.url(1), "log", "|old", s(2)));
    assert.equal(old.status, 409, old.body);
    for (const id of cluster.ids) {
      const r = await read(cluster, id, "log");
      assert.equal(r.status, 200, r.body);
      assert.equal(r.body, "start|once|next", `node ${id}`);
    }
  } finally {
    await cluster.stop();
  }
});

Deno.test("daemon: SIGTERM stops a node with exit code 0 and it restarts with its data", async () => {
  const cluster = await ProcessCluster.start({ nodes: 3, extraArgs: SERVE_ARGS });
  try {
    const clerk = new Clerk(cluster);
    for (let i = 0; i < 5; i++) {
      assert.equal((await clerk.put(1 + (i % 3), `t${i}`, `v${i}`)).status, 200);
    }
    // The leader first: the hardest case (it has followers to let go of and requests in flight).
    const leader = await cluster.waitForLeader();
    const inFlight = put(cluster.url(leader), "in-flight", "maybe");
    assert.equal(await cluster.terminate(leader), 0, cluster.dump());
    assert.match(cluster.node(leader).output.join(""), /Stopped/);
    // The request in flight got an answer or a closed connection, never a hang.
    const answer = await inFlight;
    assert.ok([0, 200, 503, 504].includes(answer.status), JSON.stringify(answer));

    // The others go on without it.
    const rest = cluster.ids.filter((id) => id !== leader);
    await cluster.waitForLeader(rest);
    const more = await clerk.put(rest[0], "t5", "v5");
    assert.equal(more.status, 200, more.body);

    // Then everyone stops cleanly, and comes back with every acknowledged write.
    for (const id of rest) assert.equal(await cluster.terminate(id), 0, cluster.dump());
    for (const id of cluster.ids) cluster.startNode(id);
    await cluster.waitForLeader();
    const expected = new Map(Array.from({ length: 6 }, (_, i) => [`t${i}`, `v${i}`] as const));
    await waitConverged(cluster, expected);
    for (const id of cluster.ids) {
      for (const [key, value] of expected) {
        assert.equal((await read(cluster, id, key)).body, value);
      }
    }
  } finally {
    await cluster.stop();
  }
});
