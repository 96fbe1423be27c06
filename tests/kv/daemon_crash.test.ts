/**
 * Crash tests on real `raftmr serve` processes: kill -9 of the leader while several clients
 * write, kill -9 of every node, and the native client's exactly-once retries across a leader
 * crash. What counts is what clients were told: every acknowledged write must be there after.
 */
import assert from "node:assert/strict";
import { KvClient } from "../../kv/client.ts";
import { ProcessCluster } from "../lib/cluster.ts";
import { sleep } from "../../util/sleep.ts";
import { Clerk, poll, put, read, SERVE_ARGS, waitConverged } from "./daemon_helpers.ts";

/** Reads every key linearizably through every running node and compares with `expected`. */
async function assertEverywhere(cluster: ProcessCluster, expected: Map<string, string>) {
  for (const id of cluster.running) {
    for (const [key, value] of expected) {
      const r = await read(cluster, id, key);
      assert.equal(r.status, 200, `node ${id} ${key}: ${r.status} ${r.body}\n${cluster.dump()}`);
      assert.equal(r.body, value, `node ${id} ${key}`);
    }
  }
}

/**
 * Runs `clients` SessionWriters until `stop()` resolves: each alternates a put of a fresh key
 * with an append to its own log key. Returns what was acknowledged.
 */
async function writeConcurrently(
  cluster: ProcessCluster,
  clients: number,
  stop: Promise<void>,
): Promise<Map<string, string>> {
  const acked = new Map<string, string>();
  let stopped = false;
  stop.then(() => stopped = true);
  await Promise.all(Array.from({ length: clients }, async (_, c) => {
    const writer = new Clerk(cluster, `writer-${c}-${crypto.randomUUID()}`);
    let log = "";
    for (let i = 0; !stopped; i++) {
      const key = `w${c}-${i}`;
      const r = await writer.put(undefined, key, `value-${c}-${i}`);
      assert.equal(r.status, 200, r.body);
      acked.set(key, `value-${c}-${i}`);
      const a = await writer.append(undefined, `log-${c}`, `|${i}`);
      assert.equal(a.status, 200, a.body);
      log += `|${i}`;
      acked.set(`log-${c}`, log);
    }
  }));
  return acked;
}

Deno.test("daemon: kill -9 of the leader during concurrent writes loses no acknowledged write", async () => {
  const cluster = await ProcessCluster.start({ nodes: 3, extraArgs: SERVE_ARGS });
  try {
    const leader = await cluster.waitForLeader();
    let ackedBefore = 0;
    const started = (await cluster.answeredStatus(leader)).applied;
    const scenario = (async () => {
      // Let the writers get going (entries applied, not a fixed time: a loaded machine may
      // need seconds for the first), then crash the leader mid-stream.
      await poll(
        async () => {
          const s = await cluster.status(leader).catch(() => undefined);
          return s && s.applied >= started + 12 ? true : undefined;
        },
        () => `the writers made no progress on leader ${leader}\n${cluster.dump()}`,
      );
      ackedBefore = (await cluster.answeredStatus(leader)).applied;
      await cluster.kill(leader);
      const next = await cluster.waitForLeader();
      assert.notEqual(next, leader);
      // Keep writing under the new leader for a while.
      await poll(
        async () => ((await cluster.answeredStatus(next)).applied > ackedBefore + 40
          ? true
          : undefined),
        () => `the new leader ${next} made no progress\n${cluster.dump()}`,
        400,
      );
    })();
    const acked = await writeConcurrently(cluster, 4, scenario.catch(() => {}));
    await scenario;
    assert.ok(acked.size > 8, `only ${acked.size} writes were acknowledged`);
    await assertEverywhere(cluster, acked);
    // The crashed node comes back and catches up with everything.
    cluster.startNode(leader);
    await waitConverged(cluster, acked);
    await assertEverywhere(cluster, acked);
  } finally {
    await cluster.stop();
  }
});

Deno.test("daemon: kill -9 of every node, then restart: all acknowledged data is back", async () => {
  const cluster = await ProcessCluster.start({ nodes: 3, extraArgs: SERVE_ARGS });
  try {
    // Writes in flight while every process dies at once: the acknowledged ones must survive.
    // The crash comes once some writes were acknowledged (a loaded machine may need seconds
    // for the first), not after a fixed time.
    const acked = new Map<string, string>();
    const crash = (async () => {
      await poll(
        () => (acked.size > 10 ? true : undefined),
        () => `only ${acked.size} writes were acknowledged\n${cluster.dump()}`,
        400,
        20,
      );
      await Promise.all(cluster.ids.map((id) => cluster.kill(id)));
    })();
    let stopped = false;
    crash.then(() => stopped = true, () => stopped = true);
    await Promise.all(Array.from({ length: 4 }, async (_, c) => {
      for (let i = 0; !stopped; i++) {
        const running = cluster.running;
        if (running.length === 0) break;
        const key = `crash-${c}-${i}`;
        const node = running[Math.floor(Math.random() * running.length)];
        const r = await put(cluster.url(node), key, `v${i}`, { timeoutMs: 3000 });
        if (r.status === 200) acked.set(key, `v${i}`);
        else if (r.status !== 0) await sleep(20); // e.g. 503 during startup: pause, go on.
      }
    }));
    await crash;
    assert.ok(acked.size > 5, `only ${acked.size} writes were acknowledged`);

    for (const id of cluster.ids) cluster.startNode(id);
    await cluster.waitForLeader();
    await assertEverywhere(cluster, acked);
    await waitConverged(cluster, acked);

    // And the restarted cluster takes new writes.
    const r = await new Clerk(cluster).put(2, "after-restart", "yes");
    assert.equal(r.status, 200, r.body);
  } finally {
    await cluster.stop();
  }
});

Deno.test("daemon: the native client's retries across a leader crash apply each write once", async () => {
  const cluster = await ProcessCluster.start({ nodes: 3, extraArgs: SERVE_ARGS });
  const client = new KvClient(cluster.ids.map((id) => cluster.peerAddress(id)), {
    ...cluster.clientOptions(),
    timeoutMs: 60_000, // Generous: a failover on a loaded machine must not turn into "unknown".
  });
  try {
    const leader = await cluster.waitForLeader();
    let expected = "";
    // Appends in flight when the leader dies are retried with the same (client id, seq): the
    // log must hold each suffix exactly once, in order.
    const writes = (async () => {
      for (let i = 0; i < 60; i++) {
        await client.append("native-log", `<${i}>`);
        expected += `<${i}>`;
      }
    })();
    await poll(
      () => (expected.length > 20 ? true : undefined),
      () => "no append completed",
      400,
      10,
    );
    await cluster.kill(leader);
    await writes;
    const { value } = await client.get("native-log");
    assert.equal(new TextDecoder().decode(value!), expected);
    cluster.startNode(leader);
    await waitConverged(cluster, new Map([["native-log", expected]]));
  } finally {
    client.close();
    await cluster.stop();
  }
});
