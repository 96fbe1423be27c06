/**
 * Randomized sweep: many seeds of mixed faults (crashes, restarts, partitions, one-way cuts,
 * loss, duplication, long reordering, stale messages from dead incarnations, snapshots with
 * chunked installs) against a stream of proposals, with every invariant checked after every
 * step and liveness checked at the end. SWEEP_SEEDS=n runs more seeds; SEED=n replays one.
 */
import assert from "node:assert/strict";
import { type Cluster, cmd, prng, withCluster } from "./cluster.ts";

let reads = 0;

async function chaos(c: Cluster, rand: () => number): Promise<void> {
  const pick = () => c.ids[Math.floor(rand() * c.n)];
  let proposed = 0;
  const staleReads: string[] = [];
  for (let step = 0; step < 60; step++) {
    const r = rand();
    if (r < 0.04) await c.crash(pick());
    else if (r < 0.12) await c.restart(pick());
    else if (r < 0.17) c.disconnect(pick());
    else if (r < 0.27) c.connect(pick());
    else if (r < 0.30) {
      const ids = [...c.ids].sort(() => rand() - 0.5);
      const k = 1 + Math.floor(rand() * (c.n - 1));
      c.partition(ids.slice(0, k), ids.slice(k));
    } else if (r < 0.35) c.heal();
    else if (r < 0.38) c.setLink(pick(), pick(), false);
    else if (r < 0.43) c.reliable = !c.reliable;
    else if (r < 0.45) c.longReordering = !c.longReordering;
    // Linearizable reads: a read started now must return an index covering everything any node
    // has applied (so every acknowledged write). A deposed leader must never confirm one.
    if (rand() < 0.3) {
      for (const id of c.ids) {
        const node = c.node(id);
        if (!node || node.status().role !== "leader") continue;
        const floor = c.oracle.maxApplied;
        node.readIndex().then((index) => {
          reads++;
          if (index < floor) staleReads.push(`node ${id}: read index ${index} < applied ${floor}`);
        }, () => {});
      }
    }
    if (staleReads.length > 0) throw new Error(`Stale read: ${staleReads[0]}`);
    // Proposals on every live node: only leaders accept them.
    const burst = Math.floor(rand() * 4);
    for (let k = 0; k < burst; k++) {
      for (const id of c.ids) {
        if (c.isAlive(id)) await c.start1(id, cmd(`p${proposed++}`));
      }
    }
    await c.run(rand() < 0.1 ? rand() * 600 : rand() * 60);
  }
  // Heal everything: a leader must emerge and commit on every node (liveness).
  c.reliable = true;
  c.longReordering = false;
  c.heal();
  for (const id of c.ids) {
    if (!c.isAlive(id)) await c.restart(id);
    c.connect(id);
  }
  await c.one(cmd("final"), c.n, true);
  if (staleReads.length > 0) throw new Error(`Stale read: ${staleReads[0]}`);
}

Deno.test("Randomized sweep: mixed faults over many seeds, invariants checked throughout", async () => {
  const only = Deno.env.get("SEED");
  const count = Number(Deno.env.get("SWEEP_SEEDS") ?? 300);
  const seeds = only !== undefined
    ? [Number(only)]
    : Array.from({ length: count }, (_, i) => i + 1);
  const sum = { leaders: 0, crashes: 0, snapshotsInstalled: 0, snapshotsSent: 0, applied: 0 };
  for (const seed of seeds) {
    const rand = prng(seed * 7919);
    const n = rand() < 0.6 ? 3 : 5;
    const snapshotEntries = [5, 20, 1e12][Math.floor(rand() * 3)];
    await withCluster(`Sweep`, {
      seed,
      n,
      dropStale: rand() < 0.5,
      snapshotPadding: Math.floor(rand() * 3000),
      config: {
        snapshotEntries,
        snapshotChunkBytes: 512,
        // Tight flow control sometimes, so pipelining limits and probing get exercised too.
        maxInflightMsgs: rand() < 0.3 ? 2 : 256,
        maxMsgBytes: rand() < 0.3 ? 64 : 1 << 20,
      },
    }, async (c) => {
      await chaos(c, rand);
      const t = c.totals();
      sum.leaders += t.leaders;
      sum.crashes += t.crashes;
      sum.snapshotsInstalled += t.snapshotsInstalled;
      sum.snapshotsSent += t.snapshotsSent;
      sum.applied += c.oracle.maxApplied;
    });
  }
  if (seeds.length >= 100) {
    // The sweep must actually exercise elections, crashes and InstallSnapshot.
    assert.ok(sum.leaders > 2 * seeds.length, `only ${sum.leaders} leaders elected`);
    assert.ok(sum.crashes > seeds.length, `only ${sum.crashes} crashes`);
    assert.ok(
      sum.snapshotsInstalled > seeds.length / 10,
      `only ${sum.snapshotsInstalled} installs`,
    );
  }
  console.log(`sweep: ${seeds.length} seeds, ${JSON.stringify({ ...sum, reads })}`);
});
