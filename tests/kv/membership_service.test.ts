/**
 * The membership service on a leader of the simulated cluster: a change asked for while another
 * one is still pending is refused at once with a 409 that names the pending change, rather than
 * retried until the request timeout.
 */
import assert from "node:assert/strict";
import { ConflictError } from "../../kv/members_api.ts";
import { MembershipService } from "../../kv/membership_service.ts";
import type { ConfChange } from "../../raft/membership.ts";
import type { RaftNode } from "../../raft/node.ts";
import { cmd, withCluster } from "../sim/cluster.ts";

Deno.test("Membership service: a second change while one is pending is refused at once, naming it", async () => {
  await withCluster("membership service pending", { n: 3 }, async (c) => {
    await c.one(cmd("a"), 3, false);
    const leader = await c.checkOneLeader();
    // The followers are cut off: the leader's change is appended but can never commit.
    for (const id of c.ids) if (id !== leader) c.disconnect(id);
    const node = c.node(leader)!;
    const stuck = node.changeMembership({ type: "addLearner", id: 4, addr: "h:4" });
    stuck.catch(() => {});
    await c.run(50);
    const pending = node.membership()!.confIndex;
    assert.ok(pending > node.status().commit, "the first change is pending");
    // Count what the service asks the node: a refusal it retried would show as many attempts.
    let attempts = 0;
    const counted = new Proxy(node, {
      get(target, prop) {
        if (prop === "changeMembership") {
          return (ch: ConfChange) => {
            attempts++;
            return target.changeMembership(ch);
          };
        }
        const v = Reflect.get(target, prop, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    }) as RaftNode;
    const service = new MembershipService({
      id: leader,
      node: counted,
      client: () => undefined,
      addressOf: () => "",
      // Long enough that a retried refusal would outlast the test's patience by far; the
      // answer must not depend on it.
      requestTimeoutMs: 3_000,
      stopping: () => false,
      log: () => {},
    });
    const err = await service.members({ op: "add", id: 5, peerAddr: "h:5", learner: true })
      .then(() => undefined, (e) => e);
    assert.ok(err instanceof ConflictError, `a 409, got ${err}`);
    assert.match(
      err.message,
      new RegExp(`already in progress: added node 4 \\(h:4\\) as a learner at index ${pending}`),
    );
    assert.equal(attempts, 1, "refused on the first attempt, not retried until the timeout");
    // The pending change is still pending: the refusal did not wait for it.
    assert.ok(node.membership()!.confIndex > node.status().commit);
    // Once it commits (the followers are back), the next change goes through.
    for (const id of c.ids) c.connect(id);
    await c.run(1000);
    assert.ok(node.status().commit >= pending);
    const done = service.members({ op: "add", id: 5, peerAddr: "h:5", learner: true });
    let view: unknown;
    done.then((v) => view = v, (e) => view = e);
    for (let i = 0; i < 200 && view === undefined; i++) await c.run(20);
    assert.ok(
      view !== undefined && !(view instanceof Error),
      `the second change is accepted: ${view}`,
    );
  });
});
