/**
 * Terms and indexes past the bound (raft/bounds.ts) written straight onto a node's peer port, as
 * anyone who can reach it could: every such message is dropped with a log line, nothing of it is
 * saved (a kill -9 and restart shows the term the node had), and the cluster keeps serving.
 */
import assert from "node:assert/strict";
import { encodeFrame } from "../../net/frame.ts";
import { peerHello } from "../../net/handshake.ts";
import { MAX_TERM_OR_INDEX } from "../../raft/bounds.ts";
import { ProcessCluster } from "../lib/cluster.ts";
import { Clerk, poll, read, SERVE_ARGS } from "./daemon_helpers.ts";

/** The RPC frame kind of a one-way notification (net/rpc.ts). */
const NOTIFY = 3;

Deno.test("daemon: forged huge terms on the peer port are dropped and never saved", async () => {
  // Insecure, and the forger says it is the leader: this tests the bound behind the handshake
  // (a secure port refuses such a connection before any frame; see daemon_security.test.ts).
  const cluster = await ProcessCluster.start({ nodes: 3, extraArgs: SERVE_ARGS, insecure: true });
  try {
    const leader = await cluster.waitForLeader();
    const termBefore = (await cluster.answeredStatus(leader)).term;
    const target = cluster.ids.find((id) => id !== leader)!;
    const batch = [Number.MAX_SAFE_INTEGER, MAX_TERM_OR_INDEX + 1].flatMap((term) => [
      { type: "heartbeat", from: leader, to: target, term, commit: 0, ctx: 0 },
      { type: "vote", from: leader, to: target, term, index: term, logTerm: term },
    ]);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: cluster.node(target).peerPort });
    try {
      await conn.write(encodeFrame(peerHello(leader)));
      await conn.write(encodeFrame([NOTIFY, "raft", batch]));
      const dropped = () => cluster.node(target).output.join("").split("past the bound").length - 1;
      await poll(
        () => (dropped() >= batch.length ? true : undefined),
        () => `node ${target} did not log ${batch.length} drops\n${cluster.dump()}`,
      );
    } finally {
      conn.close();
    }
    // Restarted from its data directory, the node has a term of this cluster, not the forged one.
    await cluster.kill(target);
    cluster.startNode(target);
    await cluster.waitForHttp(target);
    const term = (await cluster.answeredStatus(target)).term;
    assert.ok(term >= termBefore && term < termBefore + 100, `term ${term} after the forgery`);
    const w = await new Clerk(cluster).put(target, "after-forgery", "ok");
    assert.equal(w.status, 200, `write after the forgery: ${w.body}\n${cluster.dump()}`);
    const r = await read(cluster, target, "after-forgery");
    assert.equal(r.body, "ok");
  } finally {
    await cluster.stop();
  }
});
