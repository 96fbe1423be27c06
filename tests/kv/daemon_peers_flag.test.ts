/**
 * A wrong --peers on restart (issue 12, finding 2) on real processes: a node restarted with
 * `--peers 3=itself` takes its membership from its log, so it rejoins its cluster instead of
 * electing itself, and alone it acknowledges no write; a node restarted with a --peers entry its
 * stored configuration does not have refuses to start and names the difference.
 */
import assert from "node:assert/strict";
import { ProcessCluster } from "../lib/cluster.ts";
import { call, poll, SERVE_ARGS } from "./daemon_helpers.ts";

/**
 * Waits until node `id` knows the entry that records the cluster's membership and id as
 * committed on its disk: the configuration comes from the log from then on. A write can be
 * acknowledged before that entry commits, and a node saves the commit index with the entries it
 * applies, so: the entry applied, then one more write applied after it.
 */
async function membershipRecorded(cluster: ProcessCluster, id: number): Promise<void> {
  await poll(
    async () => {
      const s = await cluster.status(id).catch(() => undefined);
      return typeof s?.clusterId === "string" ? true : undefined;
    },
    () => `node ${id} never recorded the membership\n${cluster.dump()}`,
    400,
    50,
  );
  await putOk(cluster, "after-membership", "x");
  await poll(
    async () =>
      (await call(`${cluster.url(id)}/v1/kv/after-membership?stale=true`)).body === "x" ||
      undefined,
    () => `node ${id} never applied the write after the membership entry\n${cluster.dump()}`,
    400,
    50,
  );
}

async function putOk(cluster: ProcessCluster, key: string, value: string): Promise<void> {
  await poll(
    async () => {
      for (const id of cluster.running) {
        const res = await call(`${cluster.url(id)}/v1/kv/${key}`, { method: "PUT", body: value })
          .catch(() => undefined);
        if (res?.status === 200) return true;
      }
      return undefined;
    },
    () => `no write of ${key} acknowledged\n${cluster.dump()}`,
    400,
    100,
  );
}

Deno.test("daemon: a node restarted with --peers naming only itself rejoins; alone it acknowledges nothing", async () => {
  const cluster = await ProcessCluster.start({ nodes: 3, extraArgs: SERVE_ARGS });
  try {
    await putOk(cluster, "k", "before");
    await membershipRecorded(cluster, 3);
    // kill -9, the harsh case: the commit index on disk may lag the configuration entry (a
    // commit-only change is saved lazily), and the node must still know its peers at start.
    await cluster.kill(3);
    cluster.setPeers(3, [3]);
    cluster.startNode(3);
    await cluster.waitForHttp(3);
    // The cluster goes on, and node 3 applies what it commits: it is in the cluster, not its own.
    await putOk(cluster, "k", "during");
    await poll(
      async () =>
        (await call(`${cluster.url(3)}/v1/kv/k?stale=true`)).body === "during" || undefined,
      () => `node 3 never applied the cluster's write\n${cluster.dump()}`,
      400,
      50,
    );
    // Alone, node 3 is a minority of its stored configuration: no write is acknowledged.
    await cluster.kill(1);
    await cluster.kill(2);
    for (let attempt = 0; attempt < 3; attempt++) {
      const res = await call(`${cluster.url(3)}/v1/kv/k`, { method: "PUT", body: "minority" })
        .catch(() => undefined);
      assert.notEqual(res?.status, 200, `a minority acknowledged a write: ${res?.body}`);
    }
    const r = await call(`${cluster.url(3)}/v1/kv/k?stale=true`);
    assert.equal(r.body, "during");
    assert.ok(cluster.node(3).child, "node 3 exited");
  } finally {
    await cluster.stop();
  }
});

Deno.test("daemon: a node restarted with a --peers entry its log does not have refuses to start", async () => {
  const cluster = await ProcessCluster.start({ nodes: 3, extraArgs: SERVE_ARGS });
  try {
    await putOk(cluster, "k", "v");
    await membershipRecorded(cluster, 3);
    // An operator's restart: SIGTERM, which saves the commit index (the refusal judges the
    // committed configuration; after kill -9 that can be older than the log's newest).
    assert.equal(await cluster.terminate(3), 0);
    // Node 4 is never started: it only gives --peers an address for a stranger.
    cluster.addNode();
    cluster.setPeers(3, [1, 2, 3, 4]);
    cluster.startNode(3);
    let code: number | undefined;
    cluster.node(3).exited!.then((status) => (code = status.code));
    await poll(() => code, () => `node 3 did not refuse to start\n${cluster.dump()}`, 600, 100);
    cluster.node(3).child = undefined;
    assert.notEqual(code, 0);
    const output = cluster.node(3).output.join("");
    assert.match(output, /Stored membership disagrees with --peers: --peers lists 4/);
    assert.match(output, /members: 1, 2, 3/);
  } finally {
    await cluster.stop();
  }
});
