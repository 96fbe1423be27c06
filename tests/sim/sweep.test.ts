/**
 * Randomized sweep: many seeds of mixed faults (crashes, restarts, partitions, one-way cuts,
 * loss, duplication, long reordering, stale messages from dead incarnations, snapshots with
 * chunked installs, membership changes and leadership transfers) against a stream of
 * proposals, with every invariant checked after every step and liveness checked at the end.
 * SWEEP_SEEDS=n runs more seeds; SEED=n replays one; SWEEP_STORAGE=disk runs them on DiskStorage.
 * A few seeds always run on DiskStorage with membership changes, so a configuration is also
 * rebuilt from snapshot files and the WAL after crashes. A third sweep runs with PreVote off
 * and membership changes in every seed (SWEEP_NOPREVOTE_SEEDS=n for more).
 */
import assert from "node:assert/strict";
import { ChangeRefusedError } from "../../raft/errors.ts";
import type { ConfChange } from "../../raft/membership.ts";
import type { NodeId } from "../../raft/types.ts";
import { type Cluster, cmd, prng, shuffled, withCluster } from "./cluster.ts";
import { diskFactory } from "./disk_factory.ts";

let reads = 0;
const membership = { accepted: 0, refused: 0, added: 0, transfers: 0 };

/**
 * One random membership operation on whichever node leads now: add a learner (a new node that
 * then starts with --join), promote a learner, remove any member (the leader included), or
 * hand leadership over. Refusals (a change pending, a lagging learner, no quorum reachable)
 * are expected; the invariants must hold whatever commits.
 */
async function membershipOp(c: Cluster, rand: () => number, nextId: { id: number }) {
  const leader = c.ids.find((id) => c.isAlive(id) && c.getState(id).isLeader);
  if (leader === undefined) return;
  const node = c.node(leader)!;
  const conf = node.membership()!.conf;
  const learners = conf.learners ?? [];
  const members = [...conf.peers, ...learners];
  const r = rand();
  let ch: ConfChange | undefined;
  if (r < 0.3 && nextId.id <= c.ids[0] + 7) {
    ch = { type: "addLearner", id: nextId.id, addr: `sim:${nextId.id}` };
  } else if (r < 0.55 && learners.length > 0) {
    ch = { type: "promote", id: learners[Math.floor(rand() * learners.length)] };
  } else if (r < 0.8 && members.length > 1) {
    ch = { type: "remove", id: members[Math.floor(rand() * members.length)] };
  }
  if (ch === undefined) {
    membership.transfers++;
    const to: NodeId = rand() < 0.5 ? 0 : conf.peers[Math.floor(rand() * conf.peers.length)];
    node.transferLeadership(to).catch(() => {});
    return;
  }
  let refused = false;
  node.changeMembership(ch).catch((e) => refused = e instanceof ChangeRefusedError);
  await Promise.resolve();
  if (refused) {
    membership.refused++;
    return;
  }
  membership.accepted++;
  if (ch.type === "addLearner") {
    nextId.id++;
    membership.added++;
    await c.addNode(ch.id);
  }
}

async function chaos(c: Cluster, rand: () => number, alwaysMembership: boolean): Promise<void> {
  const pick = () => c.ids[Math.floor(rand() * c.n)];
  const nextId = { id: c.n + 1 };
  // Drawn whatever `alwaysMembership` says, so a seed replays the same run either way.
  const withMembership = rand() < 0.5 || alwaysMembership;
  let proposed = 0;
  const staleReads: string[] = [];
  for (let step = 0; step < 60; step++) {
    const r = rand();
    if (r < 0.04) await c.crash(pick());
    else if (r < 0.12) await c.restart(pick());
    else if (r < 0.17) c.disconnect(pick());
    else if (r < 0.27) c.connect(pick());
    else if (r < 0.30) {
      const ids = shuffled(c.ids, rand);
      const k = 1 + Math.floor(rand() * (c.n - 1));
      c.partition(ids.slice(0, k), ids.slice(k));
    } else if (r < 0.35) c.heal();
    else if (r < 0.38) c.setLink(pick(), pick(), false);
    else if (r < 0.43) c.reliable = !c.reliable;
    else if (r < 0.45) c.longReordering = !c.longReordering;
    else if (withMembership && r < 0.55) await membershipOp(c, rand, nextId);
    // The membership-focused runs change membership more often (and draw more: other seeds).
    if (alwaysMembership && rand() < 0.2) await membershipOp(c, rand, nextId);
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
  // Every member of the leader's configuration applies the final command (removed nodes, and
  // nodes whose addition was overwritten, do not).
  await c.run(1000);
  const leader = await c.checkOneLeader();
  const conf = c.node(leader)!.membership()!.conf;
  await c.one(cmd("final"), conf.peers.length + (conf.learners ?? []).length, true);
  if (staleReads.length > 0) throw new Error(`Stale read: ${staleReads[0]}`);
}

interface SweepSums {
  leaders: number;
  crashes: number;
  snapshotsInstalled: number;
  snapshotsSent: number;
  applied: number;
}

/** One seed of the sweep, adding its figures to `sum`. */
async function sweepSeed(
  seed: number,
  sum: SweepSums,
  opts: { disk: boolean; alwaysMembership: boolean; preVote?: boolean },
): Promise<void> {
  const rand = prng(seed * 7919);
  const n = rand() < 0.6 ? 3 : 5;
  const snapshotEntries = [5, 20, 1e12][Math.floor(rand() * 3)];
  await withCluster(opts.disk ? "Sweep on disk" : "Sweep", {
    seed,
    n,
    storage: opts.disk ? diskFactory() : undefined,
    dropStale: rand() < 0.5,
    snapshotPadding: Math.floor(rand() * 3000),
    config: {
      preVote: opts.preVote ?? true,
      snapshotEntries,
      snapshotChunkBytes: 512,
      // Tight flow control sometimes, so pipelining limits and probing get exercised too.
      maxInflightMsgs: rand() < 0.3 ? 2 : 256,
      maxMsgBytes: rand() < 0.3 ? 64 : 1 << 20,
    },
  }, async (c) => {
    await chaos(c, rand, opts.alwaysMembership);
    const t = c.totals();
    sum.leaders += t.leaders;
    sum.crashes += t.crashes;
    sum.snapshotsInstalled += t.snapshotsInstalled;
    sum.snapshotsSent += t.snapshotsSent;
    sum.applied += c.oracle.maxApplied;
  });
}

Deno.test("Randomized sweep: mixed faults over many seeds, invariants checked throughout", async () => {
  const only = Deno.env.get("SEED");
  const count = Number(Deno.env.get("SWEEP_SEEDS") ?? 300);
  const disk = Deno.env.get("SWEEP_STORAGE") === "disk";
  const seeds = only !== undefined
    ? [Number(only)]
    : Array.from({ length: count }, (_, i) => i + 1);
  const sum = { leaders: 0, crashes: 0, snapshotsInstalled: 0, snapshotsSent: 0, applied: 0 };
  for (const seed of seeds) await sweepSeed(seed, sum, { disk, alwaysMembership: false });
  if (seeds.length >= 100) {
    // The sweep must actually exercise elections, crashes and InstallSnapshot.
    assert.ok(sum.leaders > 2 * seeds.length, `only ${sum.leaders} leaders elected`);
    assert.ok(sum.crashes > seeds.length, `only ${sum.crashes} crashes`);
    assert.ok(
      sum.snapshotsInstalled > seeds.length / 10,
      `only ${sum.snapshotsInstalled} installs`,
    );
  }
  if (seeds.length >= 100) {
    // Membership changes must really happen: added nodes, accepted changes, transfers.
    assert.ok(membership.added > seeds.length / 10, `only ${membership.added} nodes added`);
    assert.ok(membership.accepted > seeds.length / 4, `only ${membership.accepted} changes`);
  }
  console.log(
    `sweep: ${seeds.length} seeds, ${JSON.stringify({ ...sum, reads, membership })}`,
  );
});

Deno.test("Randomized sweep on DiskStorage: membership changes among crashes and restarts from disk", async () => {
  // Few seeds (disk is slow); SWEEP_DISK_SEEDS=n runs more, SEED=n replays one ("Sweep on disk
  // failed with SEED=n": add --filter DiskStorage). Every seed changes membership.
  const only = Deno.env.get("SEED");
  const count = Number(Deno.env.get("SWEEP_DISK_SEEDS") ?? 6);
  const seeds = only !== undefined
    ? [Number(only)]
    : Array.from({ length: count }, (_, i) => i + 1);
  const sum = { leaders: 0, crashes: 0, snapshotsInstalled: 0, snapshotsSent: 0, applied: 0 };
  const before = { ...membership };
  for (const seed of seeds) await sweepSeed(seed, sum, { disk: true, alwaysMembership: true });
  if (only === undefined) {
    assert.ok(sum.crashes > 0, "no crash, so nothing was rebuilt from disk");
    assert.ok(membership.accepted > before.accepted, "no membership change was accepted");
  }
  const changes = {
    accepted: membership.accepted - before.accepted,
    refused: membership.refused - before.refused,
    added: membership.added - before.added,
    transfers: membership.transfers - before.transfers,
  };
  console.log(`disk sweep: ${seeds.length} seeds, ${JSON.stringify({ ...sum, changes })}`);
});

/**
 * Seeds of the no-PreVote sweep that found a bug, run every time. They were found before
 * partitions were drawn with shuffled(), so they now take other courses; the schedules they
 * found are pinned in tests/raft/membership_core.test.ts.
 */
const NO_PREVOTE_FOUND = [
  // A node whose removal was pending asked for votes; a voter holding the removal ignored it
  // and stayed a term behind, asking only in terms already granted to that node: a livelock.
  1209,
  // Node 1 asked only the voters of its newest configuration for votes, so node 3 (being
  // removed, the only one able to win) never heard its terms and stayed one behind: a livelock.
  2469,
];

Deno.test("Randomized sweep without PreVote: membership-heavy, elections with bare RequestVote", async () => {
  // PreVote off (the zero value of etcd-io/raft's Config.PreVote): a removed or lagging node's
  // elections bump terms for real, so liveness rests on the vote rules alone. Every seed
  // changes membership often. SWEEP_NOPREVOTE_SEEDS=n runs n seeds from SWEEP_FIRST_SEED (1);
  // SWEEP_KEEP_GOING=1 runs them all and lists the failures at the end; SEED=n replays one.
  const only = Deno.env.get("SEED");
  const count = Number(Deno.env.get("SWEEP_NOPREVOTE_SEEDS") ?? 40);
  const first = Number(Deno.env.get("SWEEP_FIRST_SEED") ?? 1);
  const seeds = only !== undefined ? [Number(only)] : [
    ...NO_PREVOTE_FOUND,
    ...Array.from({ length: count }, (_, i) => i + first),
  ];
  const sum = { leaders: 0, crashes: 0, snapshotsInstalled: 0, snapshotsSent: 0, applied: 0 };
  const before = { ...membership };
  const failed: number[] = [];
  for (const seed of seeds) {
    try {
      await sweepSeed(seed, sum, { disk: false, alwaysMembership: true, preVote: false });
    } catch (e) {
      if (Deno.env.get("SWEEP_KEEP_GOING") === undefined) throw e;
      failed.push(seed);
    }
  }
  console.log(
    `no-prevote sweep: ${seeds.length} seeds, failed ${JSON.stringify(failed)}, ${
      JSON.stringify({ ...sum, accepted: membership.accepted - before.accepted })
    }`,
  );
  assert.deepEqual(failed, [], `seeds that failed (replay one with SEED=n)`);
  if (only === undefined) {
    // The sweep must really elect, crash and change membership.
    assert.ok(sum.leaders > seeds.length, `only ${sum.leaders} leaders elected`);
    assert.ok(membership.accepted > before.accepted, "no membership change was accepted");
  }
});
