/**
 * Scenario bodies shared by the in-memory and the on-disk simulator tests: the same steps must
 * hold whatever storage sits under the nodes.
 */
import { type Cluster, cmd } from "./cluster.ts";

/** Persist1 (2C): restarts of all nodes, of the leader and of a follower. */
export async function persist1(c: Cluster): Promise<void> {
  await c.one(cmd(11), 3, true);
  for (const id of c.ids) await c.restart(id);
  await c.one(cmd(12), 3, true);
  const leader1 = await c.checkOneLeader();
  await c.restart(leader1);
  await c.one(cmd(13), 3, true);
  const leader2 = await c.checkOneLeader();
  c.disconnect(leader2);
  await c.one(cmd(14), 2, true);
  await c.restart(leader2);
  c.connect(leader2);
  await c.wait(5, 3, -1); // no-op + 11 + 12 + 13 + 14 (plus one no-op per new term)
  const leader3 = await c.checkOneLeader();
  const f = (leader3 % 3) + 1;
  c.disconnect(f);
  await c.one(cmd(15), 2, true);
  await c.restart(f);
  c.connect(f);
  await c.one(cmd(16), 3, true);
}

/** Persist3 (2C): the old leader holding the newest entry must lead after crashes. */
export async function persist3(c: Cluster): Promise<void> {
  await c.one(cmd(101), 3, false);
  const leader = await c.checkOneLeader();
  const other = (leader % 3) + 1;
  const third = (other % 3) + 1;
  c.disconnect(third);
  await c.one(cmd(102), 2, false);
  await c.crash(leader);
  await c.crash(other);
  c.connect(third);
  await c.restart(leader);
  await c.one(cmd(103), 2, true);
  await c.restart(other);
  await c.one(cmd(104), 3, true);
}

/** Figure 8 (2C): leaders crash (or, unreliable, disconnect) right after Start. */
export async function figure8(c: Cluster, iterations: number, unreliable: boolean): Promise<void> {
  if (unreliable) c.reliable = false;
  await c.one(cmd(c.rand()), 1, true);
  let nup = c.n;
  for (let iters = 0; iters < iterations; iters++) {
    if (unreliable && iters === 200) c.longReordering = true;
    let leader = -1;
    for (const id of c.ids) {
      if (unreliable || c.isAlive(id)) {
        const r = await c.start1(id, cmd(Math.floor(c.rand() * 1e9)));
        if (r.isLeader) leader = id;
      }
    }
    if (c.rand() < 0.1) await c.run(c.rand() * 500);
    else await c.run(c.rand() * 13);
    if (unreliable) {
      if (leader !== -1 && c.rand() < 0.5) c.disconnect(leader);
      if (c.ids.filter((id) => c.isConnected(id)).length < Math.ceil((c.n + 1) / 2)) {
        c.connect(c.ids[Math.floor(c.rand() * c.n)]);
      }
    } else {
      if (leader !== -1) {
        await c.crash(leader);
        nup--;
      }
      if (nup < 3) {
        const s = c.ids[Math.floor(c.rand() * c.n)];
        if (!c.isAlive(s)) {
          await c.restart(s);
          nup++;
        }
      }
    }
  }
  c.longReordering = false;
  for (const id of c.ids) {
    if (!c.isAlive(id)) await c.restart(id);
    c.connect(id);
  }
  if (unreliable) c.reliable = true;
  await c.one(cmd(Math.floor(c.rand() * 1e9)), c.n, true);
}
