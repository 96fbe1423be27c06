/**
 * Cluster identity on real processes (issue 12): a node whose data directory was wiped, started
 * again without --join, is refused by the others and refuses them (so it can neither vote nor
 * be counted), and a node started on another cluster's data directory is refused with both
 * cluster ids in the log; the cluster goes on serving meanwhile.
 */
import assert from "node:assert/strict";
import { ProcessCluster } from "../lib/cluster.ts";
import { call, poll, SERVE_ARGS } from "./daemon_helpers.ts";

async function clusterId(cluster: ProcessCluster, id: number): Promise<string> {
  return await poll(
    async () => {
      const s = await cluster.status(id).catch(() => undefined);
      return typeof s?.clusterId === "string" ? s.clusterId : undefined;
    },
    () => `no cluster id on node ${id}\n${cluster.dump()}`,
    400,
    50,
  );
}

async function putOk(cluster: ProcessCluster, id: number, key: string, value: string) {
  const r = await poll(
    async () => {
      const res = await call(`${cluster.url(id)}/v1/kv/${key}`, { method: "PUT", body: value });
      return res.status === 200 ? res : undefined;
    },
    () => cluster.dump(),
    200,
    100,
  );
  assert.equal(r.status, 200);
}

Deno.test("daemon identity: a wiped node and another cluster's data are refused", async () => {
  const a = await ProcessCluster.start({ nodes: 3, extraArgs: SERVE_ARGS });
  const b = await ProcessCluster.start({ nodes: 3, extraArgs: SERVE_ARGS });
  try {
    const idA = await clusterId(a, 1);
    const idB = await clusterId(b, 1);
    assert.notEqual(idA, idB);
    await putOk(a, 1, "k", "before");

    // Node 3's data directory is wiped; it comes back without --join.
    await a.kill(3);
    await Deno.remove(a.node(3).dataDir, { recursive: true });
    a.startNode(3);
    await a.waitForHttp(3);
    await putOk(a, 1, "k", "during");
    // Node 1 may learn that the write committed only from the leader's next message: wait until
    // it has applied it, so the stale read at the end can expect it whoever is killed meanwhile.
    await poll(
      async () => (await call(`${a.url(1)}/v1/kv/k?stale=true`)).body === "during" || undefined,
      () => `node 1 never applied the write\n${a.dump()}`,
      400,
      50,
    );
    await poll(
      () =>
        /empty data directory/.test(a.node(1).output.join("") + a.node(2).output.join(""))
          ? true
          : undefined,
      () => `no refusal logged\n${a.dump()}`,
      400,
      50,
    );
    const wiped = await poll(() => a.status(3).catch(() => undefined), () => a.dump(), 200, 100);
    assert.equal(wiped.leader, 0, "the wiped node must not know (or be) a leader");
    assert.equal(wiped.commit, 0, "the wiped node must not receive the log");

    // Node 2 starts on the data directory of cluster B's node 2 (same ids, other cluster).
    await a.kill(2);
    await b.kill(2);
    await Deno.remove(a.node(2).dataDir, { recursive: true });
    await Deno.rename(b.node(2).dataDir, a.node(2).dataDir);
    a.startNode(2);
    await a.waitForHttp(2);
    await poll(
      () => {
        const text = a.node(1).output.join("") + a.node(2).output.join("");
        return text.includes(idA) && text.includes(idB) && /Cluster id mismatch/.test(text)
          ? true
          : undefined;
      },
      () => `no mismatch logged\n${a.dump()}`,
      // Refusals are logged at most once per 10 s (the wiped node's fill that window first).
      1000,
      50,
    );
    // Node 1 alone is no quorum: nothing can be acknowledged now, and nothing was by the
    // strangers; the value is still the one written before.
    const s2 = await poll(() => a.status(2).catch(() => undefined), () => a.dump(), 200, 100);
    assert.notEqual(s2.role, "leader");
    // Alone, node 1 steps down (CheckQuorum) if it led.
    await poll(
      async () => {
        const s1 = await a.status(1).catch(() => undefined);
        return s1 && s1.role !== "leader" ? true : undefined;
      },
      () => a.dump(),
      400,
      50,
    );
    const r = await call(`${a.url(1)}/v1/kv/k?stale=true`);
    assert.equal(r.body, "during");
  } finally {
    await a.stop();
    await b.stop();
  }
});
