/**
 * Messages carrying a term or index past the bound (raft/bounds.ts), as an attacker on the peer
 * port could send them, are dropped by every node: term, log and leader stay, nothing of them is
 * saved, and the cluster keeps electing and committing afterwards.
 */
import assert from "node:assert/strict";
import { MAX_TERM_OR_INDEX } from "../../raft/bounds.ts";
import type { Message } from "../../raft/types.ts";
import { cmd, withCluster } from "./cluster.ts";

Deno.test("Forged huge terms and indexes change nothing in a running cluster", async () => {
  await withCluster("ForgedTerms", { n: 3 }, async (c) => {
    await c.one(cmd("before"), 3, true);
    const leader = await c.checkOneLeader();
    const snapshot = () =>
      c.ids.map((id) => {
        const s = c.node(id)!.status();
        return [s.term, s.leader, s.lastIndex, c.persistedHardState(id)!.term];
      });
    const was = snapshot();
    for (const term of [Number.MAX_SAFE_INTEGER, MAX_TERM_OR_INDEX + 1]) {
      for (const to of c.ids) {
        const from = (to % 3) + 1;
        const forged: Message[] = [
          { type: "heartbeat", from, to, term, commit: 0, ctx: 0 },
          { type: "vote", from, to, term, index: term, logTerm: term },
          {
            type: "app",
            from,
            to,
            term: 1,
            index: term - 1,
            logTerm: 1,
            entries: [{ index: term, term: 1, data: cmd("forged") }],
            commit: term,
          },
        ];
        for (const m of forged) c.node(to)!.step(m);
      }
    }
    await c.run(1000);
    assert.deepEqual(snapshot(), was, "term, leader, log or saved term moved");
    for (const id of c.ids) assert.equal(c.node(id)!.metrics.messagesDropped, 6);
    assert.equal(await c.checkOneLeader(), leader);
    await c.one(cmd("after"), 3, true);
  });
});
