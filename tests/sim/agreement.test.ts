/**
 * Raft 2B scenarios (agreement), in the simulator on virtual time. Our leader appends a no-op at
 * the start of each term (Raft §8), so the first client command lands at index 2, not 1.
 */
import assert from "node:assert/strict";
import { cmd, withCluster } from "./cluster.ts";

Deno.test("BasicAgree: nothing committed before Start, then each command commits in order", async () => {
  await withCluster("BasicAgree", { n: 3 }, async (c) => {
    await c.checkOneLeader();
    for (let i = 1; i <= 3; i++) {
      const noop = 1;
      const { count } = c.nCommitted(noop + i);
      assert.equal(count, 0, "some have committed before Start()");
      const index = await c.one(cmd(i * 100), 3, false);
      assert.equal(index, noop + i);
    }
  });
});

Deno.test("RPCBytes: each 5000-byte command reaches each follower about once", async () => {
  await withCluster("RPCBytes", { n: 3 }, async (c) => {
    await c.one(cmd(99), 3, false);
    const bytes0 = c.bytes;
    let sent = 0;
    for (let i = 0; i < 10; i++) {
      const s = Array.from({ length: 5000 }, () => "abcdefghij"[Math.floor(c.rand() * 10)]);
      const data = cmd(s.join(""));
      const index = await c.one(data, 3, false);
      assert.equal(index, i + 3);
      sent += data.length;
    }
    // Each command goes to 2 followers: 100,000 bytes, plus the lab's 50,000 allowance.
    const got = c.bytes - bytes0;
    assert.ok(got <= 2 * sent + 50_000, `too many bytes: ${got} for ${sent} of commands`);
  });
});

Deno.test("FailAgree: a disconnected follower catches up after reconnecting", async () => {
  await withCluster("FailAgree", { n: 3 }, async (c) => {
    await c.one(cmd(101), 3, false);
    const leader = await c.checkOneLeader();
    const follower = (leader % 3) + 1;
    c.disconnect(follower);
    await c.one(cmd(102), 2, false);
    await c.one(cmd(103), 2, false);
    await c.run(1000);
    await c.one(cmd(104), 2, false);
    await c.one(cmd(105), 2, false);
    c.connect(follower);
    await c.one(cmd(106), 3, true);
    await c.run(1000);
    await c.one(cmd(107), 3, true);
  });
});

Deno.test("FailNoAgree: no commit without a majority, then recovery", async () => {
  await withCluster("FailNoAgree", { n: 5 }, async (c) => {
    await c.one(cmd(10), 5, false);
    const leader = await c.checkOneLeader();
    for (let k = 1; k <= 3; k++) c.disconnect(((leader - 1 + k) % 5) + 1);
    const r = await c.start1(leader, cmd(20));
    assert.ok(r.isLeader, "leader rejected Start()");
    assert.equal(r.index, 3, "expected index 3 (no-op, 10, 20)");
    await c.run(2000);
    assert.equal(c.nCommitted(r.index).count, 0, "committed without a majority");
    for (let k = 1; k <= 3; k++) c.connect(((leader - 1 + k) % 5) + 1);
    const leader2 = await c.checkOneLeader();
    const r2 = await c.start1(leader2, cmd(30));
    assert.ok(r2.isLeader);
    assert.ok(r2.index >= 3 && r2.index <= 5, `unexpected index ${r2.index}`);
    await c.one(cmd(1000), 5, true);
  });
});

Deno.test("ConcurrentStarts: five Starts in one turn all commit in one term", async () => {
  await withCluster("ConcurrentStarts", { n: 3 }, async (c) => {
    let success = false;
    for (let attempt = 0; attempt < 5 && !success; attempt++) {
      if (attempt > 0) await c.run(3000);
      const leader = await c.checkOneLeader();
      const first = await c.start1(leader, cmd(1));
      if (!first.isLeader) continue;
      const node = c.node(leader)!;
      const subs: { index: number; term: number }[] = [];
      let ok = true;
      // Five proposals in the same turn: one Ready, one append per follower (group commit).
      for (let i = 0; i < 5; i++) {
        try {
          const s = node.submit(cmd(100 + i));
          s.done.catch(() => {});
          subs.push(s);
        } catch {
          ok = false;
        }
      }
      if (!ok || subs.some((s) => s.term !== first.term)) continue;
      const cmds: string[] = [];
      for (const s of subs) {
        const data = await c.wait(s.index, 3, first.term);
        if (data === undefined) {
          ok = false;
          break;
        }
        cmds.push(new TextDecoder().decode(data));
      }
      if (!ok) continue;
      assert.deepEqual(cmds.sort(), ["100", "101", "102", "103", "104"]);
      success = true;
    }
    assert.ok(success, "term changed too often");
  });
});

Deno.test("Rejoin: a partitioned leader's stale entries are overwritten", async () => {
  await withCluster("Rejoin", { n: 3 }, async (c) => {
    await c.one(cmd(101), 3, true);
    const leader1 = await c.checkOneLeader();
    c.disconnect(leader1);
    await c.start1(leader1, cmd(102));
    await c.start1(leader1, cmd(103));
    await c.start1(leader1, cmd(104));
    await c.one(cmd(103), 2, true);
    const leader2 = await c.checkOneLeader();
    c.disconnect(leader2);
    c.connect(leader1);
    await c.one(cmd(104), 2, true);
    c.connect(leader2);
    await c.one(cmd(105), 3, true);
  });
});

Deno.test("Backup: 50-entry divergent suffixes are replaced quickly", async () => {
  await withCluster("Backup", { n: 5 }, async (c) => {
    const rnd = () => cmd(Math.floor(c.rand() * 1e9));
    await c.one(rnd(), 5, true);
    const leader1 = await c.checkOneLeader();
    const o = (k: number) => ((leader1 - 1 + k) % 5) + 1;
    c.disconnect(o(2));
    c.disconnect(o(3));
    c.disconnect(o(4));
    for (let i = 0; i < 50; i++) await c.start1(leader1, rnd());
    await c.run(500);
    c.disconnect(o(0));
    c.disconnect(o(1));
    c.connect(o(2));
    c.connect(o(3));
    c.connect(o(4));
    for (let i = 0; i < 50; i++) await c.one(rnd(), 3, true);
    const leader2 = await c.checkOneLeader();
    let other = o(2);
    if (leader2 === other) other = o(3);
    c.disconnect(other);
    for (let i = 0; i < 50; i++) await c.start1(leader2, rnd());
    await c.run(500);
    for (const id of c.ids) c.disconnect(id);
    c.connect(o(0));
    c.connect(o(1));
    c.connect(other);
    for (let i = 0; i < 50; i++) await c.one(rnd(), 3, true);
    for (const id of c.ids) c.connect(id);
    await c.one(rnd(), 5, true);
  });
});

Deno.test("Count: messages to elect, to commit 10 commands, and while idle", async () => {
  await withCluster("Count", { n: 3 }, async (c) => {
    // We count every delivered message (requests and replies), not RPCs: bounds are doubled.
    // Electing: 2 pre-votes + 2 votes + replies = 8, plus heartbeats before checkOneLeader looks.
    const leader = await c.checkOneLeader();
    const elect = c.delivered;
    assert.ok(elect >= 8 && elect <= 60, `too many or too few messages to elect: ${elect}`);
    let success = false;
    for (let attempt = 0; attempt < 5 && !success; attempt++) {
      if (attempt > 0) await c.run(3000);
      const l = await c.checkOneLeader();
      const total1 = c.delivered;
      const t1 = c.now;
      const first = await c.start1(l, cmd(1));
      if (!first.isLeader) continue;
      let ok = true;
      for (let i = 1; i <= 10; i++) {
        const r = await c.start1(l, cmd(100 + i));
        if (!r.isLeader || r.term !== first.term) ok = false;
        if (!ok) break;
        const data = await c.wait(r.index, 3, first.term);
        if (data === undefined) ok = false;
        if (!ok) break;
      }
      if (!ok) continue;
      const used = c.delivered - total1;
      const heartbeats = Math.ceil((c.now - t1) / 50) + 1;
      // 11 commands x (2 appends + 2 replies), plus 4 messages per 50 ms heartbeat round that
      // elapsed while waiting (followers learn the commit index from the next heartbeat), plus
      // one empty append + reply when a heartbeat reply finds an entry still in flight.
      const bound = 11 * 4 + heartbeats * 4 + 2 * 11 + 8;
      assert.ok(used <= bound, `too many messages (${used} > ${bound}) for 11 entries`);
      success = true;
    }
    assert.ok(success, "term changed too often");
    void leader;
    const idle0 = c.delivered;
    await c.run(1000);
    const idle = c.delivered - idle0;
    // One heartbeat + reply per follower every 50 ms: 80 per second for 3 nodes.
    assert.ok(idle <= 4 * 20 + 8, `too many messages (${idle}) in 1 s of idleness`);
  });
});
