/**
 * Raft 2C scenarios (persistence: crash = lose volatile state, keep storage), in the simulator
 * on virtual time, including Figure 8 and the churn tests on reliable and unreliable networks.
 */
import assert from "node:assert/strict";
import { type Cluster, cmd, uncmd, withCluster } from "./cluster.ts";
import { figure8, persist1, persist3 } from "./scenarios.ts";

Deno.test("Persist1: restarts of all, of the leader, and of a follower", async () => {
  await withCluster("Persist1", { n: 3 }, persist1);
});

Deno.test("Persist2: stale restarted nodes cannot lead; an up-to-date one must", async () => {
  await withCluster("Persist2", { n: 5 }, async (c) => {
    let index = 1;
    for (let iters = 0; iters < 5; iters++) {
      await c.one(cmd(10 + index++), 5, true);
      const leader1 = await c.checkOneLeader();
      const o = (k: number) => ((leader1 - 1 + k) % 5) + 1;
      c.disconnect(o(1));
      c.disconnect(o(2));
      await c.one(cmd(10 + index++), 3, true);
      c.disconnect(o(0));
      c.disconnect(o(3));
      c.disconnect(o(4));
      await c.restart(o(1));
      c.connect(o(1));
      await c.restart(o(2));
      c.connect(o(2));
      await c.run(1000);
      await c.restart(o(3));
      c.connect(o(3));
      await c.one(cmd(10 + index++), 3, true);
      c.connect(o(4));
      c.connect(o(0));
    }
    await c.one(cmd(1000), 5, true);
  });
});

Deno.test("Persist3: the old leader holding the newest entry must lead after crashes", async () => {
  await withCluster("Persist3", { n: 3 }, persist3);
});

Deno.test("Figure8: leaders crash right after Start; old-term entries never count", async () => {
  await withCluster("Figure8", { n: 5 }, (c) => figure8(c, 1000, false));
});

Deno.test("UnreliableAgree: concurrent agreement over a lossy, reordering network", async () => {
  await withCluster("UnreliableAgree", { n: 5 }, async (c) => {
    c.reliable = false;
    for (let iters = 1; iters < 50; iters++) {
      // The lab runs four one() calls concurrently; oneAll() interleaves them on virtual time.
      const batch = [0, 1, 2, 3].map((j) => cmd(100 * iters + j));
      await c.oneAll(batch, 1);
      await c.one(cmd(iters), 1, true);
    }
    c.reliable = true;
    await c.one(cmd(100), 5, true);
  });
});

Deno.test("Figure8Unreliable: Figure 8 with disconnections and long reordering", async () => {
  await withCluster("Figure8Unreliable", { n: 5 }, (c) => figure8(c, 1000, true));
});

interface ChurnClient {
  value: string;
  index: number;
  polls: number;
  wakeAt: number;
}

async function churn(c: Cluster, unreliable: boolean): Promise<void> {
  if (unreliable) c.reliable = false;
  const recorded: string[] = [];
  let seq = 0;
  // Three clients, each proposing random values on every peer and recording those that commit
  // (polling for up to ~380 ms). They are stepped from this one loop every 10 virtual ms.
  const clients: ChurnClient[] = [0, 1, 2].map(() => ({
    value: "",
    index: -1,
    polls: 0,
    wakeAt: 0,
  }));
  const stepClient = async (cl: ChurnClient, me: number) => {
    if (c.now < cl.wakeAt) return;
    if (cl.index < 0) {
      cl.value = `c${me}-${seq++}-${Math.floor(c.rand() * 1e6)}`;
      for (const id of c.ids) {
        if (!c.isAlive(id)) continue;
        const r = await c.start1(id, cmd(cl.value));
        if (r.isLeader) cl.index = r.index;
      }
      cl.polls = 0;
      if (cl.index < 0) cl.wakeAt = c.now + 79 + me * 17;
      return;
    }
    const { count, data } = c.nCommitted(cl.index);
    if (count > 0 && data) {
      if (uncmd(data) === cl.value) recorded.push(cl.value);
      cl.index = -1;
    } else if (++cl.polls > 38) {
      cl.index = -1;
    }
  };
  const runWithClients = async (ms: number) => {
    for (let t = 0; t < ms; t += 10) {
      for (let i = 0; i < clients.length; i++) await stepClient(clients[i], i);
      await c.run(10);
    }
  };
  for (let iters = 0; iters < 20; iters++) {
    if (c.rand() < 0.2) c.disconnect(c.ids[Math.floor(c.rand() * c.n)]);
    if (c.rand() < 0.5) {
      const i = c.ids[Math.floor(c.rand() * c.n)];
      if (!c.isAlive(i)) await c.restart(i);
      c.connect(i);
    }
    if (c.rand() < 0.2) {
      const i = c.ids[Math.floor(c.rand() * c.n)];
      if (c.isAlive(i)) await c.crash(i);
    }
    await runWithClients(700);
  }
  await runWithClients(1000);
  c.reliable = true;
  for (const id of c.ids) {
    if (!c.isAlive(id)) await c.restart(id);
    c.connect(id);
  }
  await runWithClients(400);
  await c.run(1000);
  const last = await c.one(cmd("last"), c.n, true);
  const all = new Set<string>();
  for (let i = 1; i <= last; i++) {
    const data = await c.wait(i, c.n, -1);
    if (data) all.add(uncmd(data));
  }
  assert.ok(recorded.length > 10, `only ${recorded.length} values committed under churn`);
  for (const v of recorded) assert.ok(all.has(v), `committed value ${v} is missing from the log`);
}

Deno.test("ReliableChurn: crashes, restarts and disconnections under load", async () => {
  await withCluster("ReliableChurn", { n: 5 }, (c) => churn(c, false));
});

Deno.test("UnreliableChurn: churn over a lossy network", async () => {
  await withCluster("UnreliableChurn", { n: 5 }, (c) => churn(c, true));
});
