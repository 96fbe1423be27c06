/**
 * Partition tests on real `raftmr serve` processes whose peer links all go through
 * fault-injecting TCP proxies (tests/lib/tcp_proxy.ts). The minority side can neither commit nor
 * serve a linearizable read; the majority keeps going; healing converges. The last test is the
 * classic lab's OnePartition scenario (spec/classic-lab-scenarios.md §3.4).
 */
import assert from "node:assert/strict";
import { ProcessCluster } from "../lib/cluster.ts";
import {
  call,
  Clerk,
  get,
  type HttpResult,
  poll,
  put,
  read,
  SERVE_ARGS,
  untilDefinitive,
  waitConverged,
} from "./daemon_helpers.ts";

Deno.test("daemon: a minority partition can neither commit nor read; healing converges", async () => {
  const cluster = await ProcessCluster.start({ nodes: 3, proxies: true, extraArgs: SERVE_ARGS });
  try {
    const old = await cluster.waitForLeader();
    assert.equal((await new Clerk(cluster).put(old, "a", "1")).status, 200);
    const majority = cluster.ids.filter((id) => id !== old);
    // The old leader alone on one side: the hardest minority, as it believes it leads at first.
    cluster.partition([old], majority);

    const next = await cluster.waitForLeader(majority);
    assert.ok(majority.includes(next));
    // The majority keeps going, through either of its nodes.
    for (const id of majority) {
      const r = await untilDefinitive(() => put(cluster.url(id), "a", `2-${id}`), cluster, "put a");
      assert.equal(r.status, 200, r.body);
    }
    const b = await untilDefinitive(
      () => put(cluster.url(majority[0]), "b", "2"),
      cluster,
      "put b",
    );
    assert.equal(b.status, 200);

    // The minority cannot commit: the write fails (no leader / outcome unknown), never 200.
    const lost = await put(cluster.url(old), "minority", "lost");
    assert.ok(lost.status === 0 || lost.status >= 500, `minority write: ${JSON.stringify(lost)}`);
    // Nor serve a linearizable read (which would return the stale "1").
    const linRead = await get(cluster.url(old), "a");
    assert.ok(
      linRead.status === 0 || linRead.status >= 500,
      `minority read: ${JSON.stringify(linRead)}`,
    );
    // A stale read is served from the local state, which still has the old value.
    const stale = await get(cluster.url(old), "a", { query: "stale=true" });
    assert.equal(stale.status, 200, stale.body);
    assert.equal(stale.body, "1");
    // Cut off from the majority, it eventually knows no leader.
    await poll(
      async () => ((await call(`${cluster.url(old)}/healthz`)).status === 503 ? true : undefined),
      () => `isolated node ${old} still reports a leader\n${cluster.dump()}`,
    );

    cluster.heal();
    const expected = new Map<string, string | null>([
      ["a", `2-${majority[1]}`],
      ["b", "2"],
      ["minority", null], // Never committed, and nobody retried it.
    ]);
    await waitConverged(cluster, expected);
    // Linearizable reads work again through the former minority.
    const healed = await untilDefinitive(() => get(cluster.url(old), "b"), cluster, "get b");
    assert.equal(healed.body, "2");
    assert.equal((await read(cluster, old, "minority")).status, 404);
  } finally {
    await cluster.stop();
  }
});

Deno.test("daemon: OnePartition: minority writes complete only after healing", async () => {
  const cluster = await ProcessCluster.start({ nodes: 5, proxies: true, extraArgs: SERVE_ARGS });
  let finished = false; // Ends the background clerk if an assertion fails first.
  try {
    assert.equal((await new Clerk(cluster).put(1, "1", "13")).status, 200);
    const old = await cluster.waitForLeader();
    const minority = [old, cluster.ids.find((id) => id !== old)!];
    const majority = cluster.ids.filter((id) => !minority.includes(id));
    cluster.partition(minority, majority);

    // Majority: put 14 and read it back.
    const p14 = await untilDefinitive(
      () => put(cluster.url(majority[0]), "1", "14"),
      cluster,
      "14",
    );
    assert.equal(p14.status, 200);
    assert.equal((await read(cluster, majority[1], "1")).body, "14");

    // Minority clients: a put of 15 retried (same client id and seq) through minority nodes
    // until it succeeds, and a get. Neither may complete while the partition lasts.
    // A holder object: the background loop sets it, which TypeScript's narrowing cannot see.
    const done: { put?: HttpResult } = {};
    let attempts = 0;
    const session = { clientId: "minority-clerk", seq: 1 };
    const pending = (async (): Promise<HttpResult> => {
      while (done.put === undefined && !finished) {
        const r = await put(cluster.url(minority[attempts++ % 2]), "1", "15", session);
        if (r.status === 200) done.put = r;
        else if (attempts > 400) throw new Error(`put 15 never completed: ${JSON.stringify(r)}`);
        else await new Promise((resolve) => setTimeout(resolve, 50));
      }
      if (done.put === undefined) throw new Error("The test ended first");
      return done.put;
    })();
    pending.catch(() => {}); // Awaited below; this only keeps an early failure "handled".
    const minorityGet = await get(cluster.url(minority[1]), "1");
    assert.ok(minorityGet.status === 0 || minorityGet.status >= 500, minorityGet.body);

    // Meanwhile the majority reads 14, writes 16 and reads 16.
    assert.equal((await read(cluster, majority[2], "1")).body, "14");
    const p16 = await untilDefinitive(
      () => put(cluster.url(majority[1]), "1", "16"),
      cluster,
      "16",
    );
    assert.equal(p16.status, 200);
    assert.equal((await read(cluster, majority[0], "1")).body, "16");
    // Let the minority clerk retry a few times (one attempt lasts a request timeout).
    await poll(() => (attempts >= 3 ? true : undefined), () => "no retries", 400);
    assert.equal(done.put, undefined, "a minority write completed while partitioned");
    for (const id of minority) {
      const stale = await get(cluster.url(id), "1", { query: "stale=true" });
      assert.notEqual(stale.body, "15", `node ${id} applied the minority write`);
    }

    cluster.heal();
    const completed = await pending; // The retried put completes now.
    assert.equal(completed.status, 200);
    for (const id of cluster.ids) {
      const r = await untilDefinitive(() => get(cluster.url(id), "1"), cluster, `get on ${id}`);
      assert.equal(r.body, "15", `node ${id}`);
    }
    await waitConverged(cluster, new Map([["1", "15"]]));
  } finally {
    finished = true;
    await cluster.stop();
  }
});
