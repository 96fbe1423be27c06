/**
 * Crash/restart scenarios from the simulator with real DiskStorage on temporary directories: a
 * crash closes the node's storage and a restart recovers it from the WAL and snapshot files, so
 * these runs check that what Raft relies on survives a restart from disk, including snapshots
 * installed from the leader and compaction under load.
 */
import assert from "node:assert/strict";
import { type Cluster, cmd, withCluster } from "./cluster.ts";
import { type DiskFactory, diskFactory, SEGMENT_BYTES } from "./disk_factory.ts";
import { figure8, persist1, persist3 } from "./scenarios.ts";

Deno.test("Disk Persist1: restarts of all, of the leader and of a follower recover from disk", async () => {
  await withCluster("DiskPersist1", { n: 3, storage: diskFactory() }, persist1);
});

Deno.test("Disk Persist3: the old leader holding the newest entry must lead after crashes", async () => {
  await withCluster("DiskPersist3", { n: 3, storage: diskFactory() }, persist3);
});

Deno.test("Disk Figure8: leaders crash right after Start, restarting from disk", async () => {
  await withCluster("DiskFigure8", { n: 5, storage: diskFactory() }, (c) => figure8(c, 300, false));
});

async function checkBounded(c: Cluster, f: DiskFactory, bound: number): Promise<void> {
  for (const id of c.ids) {
    const s = f.current(id);
    if (!s) continue;
    assert.ok(s.walBytes() <= bound, `node ${id}: WAL ${s.walBytes()} bytes > ${bound}`);
    assert.ok(s.snapshotCount() <= 2, `node ${id}: ${s.snapshotCount()} snapshot files`);
  }
  await c.run(0);
}

Deno.test("Disk SnapshotInstallCrash: snapshots install on lagging followers across crashes", async () => {
  const f = diskFactory();
  const config = { snapshotEntries: 10 };
  await withCluster("DiskSnapshotInstallCrash", { n: 3, storage: f, config }, async (c) => {
    await c.one(cmd("first"), 3, true);
    // Bound on each node's WAL: two snapshot intervals of tiny commands plus hard states per
    // save stay far below one segment; allow the active segment and one sealed one on top.
    const bound = 3 * SEGMENT_BYTES;
    for (let i = 0; i < 30; i++) {
      const leader = await c.checkOneLeader();
      const victim = i % 2 === 0 ? ((leader + i) % 3) + 1 : leader;
      if (victim === leader) {
        await c.crash(victim);
      } else {
        c.disconnect(victim);
      }
      // Enough commands that the others compact past everything the victim has.
      for (let k = 0; k < 11; k++) await c.one(cmd(`${i}-${k}`), 2, true);
      if (c.isAlive(victim)) await c.crash(victim);
      await c.restart(victim);
      c.connect(victim);
      await c.one(cmd(`${i}-sync`), 3, true);
      await checkBounded(c, f, bound);
    }
    assert.ok((c.byType.get("snap") ?? 0) > 0, "followers received InstallSnapshot");
    // A last full restart from disk: every node comes back from snapshot + WAL.
    for (const id of c.ids) await c.restart(id);
    await c.one(cmd("last"), 3, true);
  });
});

Deno.test("Disk SnapshotAllCrash: all nodes crash and restart from snapshots", async () => {
  const f = diskFactory();
  const config = { snapshotEntries: 10 };
  await withCluster("DiskSnapshotAllCrash", { n: 3, storage: f, config }, async (c) => {
    for (let i = 0; i < 8; i++) {
      for (let k = 0; k < 13; k++) await c.one(cmd(`${i}-${k}`), 3, true);
      for (const id of c.ids) await c.crash(id);
      for (const id of c.ids) await c.restart(id);
      const index = await c.one(cmd(`${i}-after`), 3, true);
      assert.ok(index > (i + 1) * 13);
      for (const id of c.ids) {
        const s = f.current(id)!;
        assert.ok(s.firstIndex() > 1, `node ${id} has compacted`);
        assert.ok(s.walBytes() <= 3 * SEGMENT_BYTES);
      }
    }
  });
});

Deno.test("Disk SnapshotInstallUnCrash: chunked installs and crashes on a lossy network, on disk", async () => {
  const f = diskFactory();
  const opts = { config: { snapshotEntries: 10, snapshotChunkBytes: 1024 }, snapshotPadding: 3000 };
  await withCluster("DiskSnapshotInstallUnCrash", { n: 3, storage: f, ...opts }, async (c) => {
    const rnd = () => cmd(Math.floor(c.rand() * 1e9));
    c.reliable = false;
    await c.one(rnd(), c.n, true);
    let leader = await c.checkOneLeader();
    // WAL bound per node: the entries since the older kept snapshot (~40 small entries with
    // their per-save framing, well under one segment) plus the active and one sealed segment.
    const bound = 3 * SEGMENT_BYTES;
    for (let i = 0; i < 20; i++) {
      let victim = (leader % c.n) + 1;
      let sender = leader;
      if (i % 3 === 1) [sender, victim] = [victim, leader];
      await c.crash(victim);
      await c.one(rnd(), c.n - 1, true);
      const nn = Math.floor(c.n / 2) + 1 + Math.floor(c.rand() * 10);
      for (let k = 0; k < nn; k++) await c.start1(sender, rnd());
      await c.one(rnd(), c.n - 1, true);
      await checkBounded(c, f, bound);
      await c.restart(victim);
      await c.one(rnd(), c.n, true);
      leader = await c.checkOneLeader();
    }
    c.reliable = true;
    for (const id of c.ids) await c.restart(id);
    await c.one(rnd(), c.n, true);
  });
});
