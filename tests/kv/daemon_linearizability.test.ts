/**
 * Linearizability of the real daemon: several concurrent HTTP clients do get/put/append/cas/del
 * on a few keys through random nodes while the cluster is left alone, or crashed (kill -9 and
 * restart) and partitioned (through the peer-link proxies); the recorded history is checked with
 * the Wing-Gong checker (tests/lib/linearizability.ts), as the classic lab does with Porcupine.
 *
 * Outcomes: 200/404/412 are definitive. Anything else (no answer, 503, 504, 500) is treated as
 * unknown: a 503 may follow a proposal that was dropped locally yet still commits (the server
 * retries a session write after losing leadership), so even "no leader" is not proof that a
 * write did nothing. Patient clients (even ids) retry an unknown write with the same (client id,
 * seq) while the run lasts, so the server applies it at most once and the history keeps one
 * operation whose call is the first attempt. Impatient clients (odd ids) give up at once: the
 * write stays in the history with an unknown outcome and the client moves on to the next seq
 * (the session then refuses the abandoned one if it arrives late, so it may apply or not, which
 * is exactly what "unknown" allows).
 */
import { ProcessCluster } from "../lib/cluster.ts";
import { sleep } from "../../util/sleep.ts";
import { SERVE_ARGS } from "./daemon_helpers.ts";
import { checkConverged, checkHistory, pick, record } from "./lin_workload.ts";

Deno.test("daemon: concurrent clients without faults see a linearizable history", async () => {
  const cluster = await ProcessCluster.start({ nodes: 3, extraArgs: SERVE_ARGS });
  try {
    const history = await record(cluster, async () => {});
    checkHistory(cluster, history);
    await checkConverged(cluster);
  } finally {
    await cluster.stop();
  }
});

Deno.test("daemon: the history stays linearizable under kill -9, restarts and partitions", async () => {
  const cluster = await ProcessCluster.start({ nodes: 3, proxies: true, extraArgs: SERVE_ARGS });
  try {
    const history = await record(cluster, async (stopped) => {
      const faults = [
        // Cut the leader off from both followers, then heal.
        async () => {
          const leader = (await cluster.leaders())[0] ?? pick(cluster.ids);
          cluster.partition([leader], cluster.ids.filter((id) => id !== leader));
          await sleep(1200);
          cluster.heal();
        },
        // Crash the leader and bring it back on the same data.
        async () => {
          const leader = (await cluster.leaders())[0] ?? pick(cluster.ids);
          await cluster.kill(leader);
          await sleep(800);
          cluster.startNode(leader);
        },
        // Crash a random node (often a follower).
        async () => {
          const victim = pick(cluster.ids);
          await cluster.kill(victim);
          await sleep(500);
          cluster.startNode(victim);
        },
        // Black-hole a random node's links (bytes held, then delivered late on healing).
        async () => {
          const victim = pick(cluster.ids);
          cluster.partitionWith("stall", [victim], cluster.ids.filter((id) => id !== victim));
          await sleep(1000);
          cluster.heal();
        },
      ];
      for (let i = 0; !stopped(); i++) {
        await sleep(400);
        if (!stopped()) await faults[i % faults.length]();
      }
    });
    cluster.heal();
    for (const node of cluster.nodes) if (!node.child) cluster.startNode(node.id);
    checkHistory(cluster, history);
    await cluster.waitForLeader();
    await checkConverged(cluster);
  } finally {
    await cluster.stop();
  }
});
