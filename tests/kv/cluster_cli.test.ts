/**
 * `raftmr cluster` as a person runs it (`deno task start cluster`, the task's permissions, its
 * own process group as in a terminal): it says "Started" only once a leader is elected, Ctrl-C
 * (SIGINT to the whole group, then its own SIGTERM to the nodes) stops every node cleanly with
 * the data intact, and a port that is taken stops it before anything starts, naming the port.
 */
import assert from "node:assert/strict";
import { clusterPermissions } from "../../cli/permissions.ts";
import { freePort } from "../lib/cluster.ts";
import { withTempDir } from "../lib/run.ts";
import { CONFIG, MAIN, type Running, spawn, taskFlags, waitUntil } from "../lib/roles.ts";

/**
 * `deno task start cluster ...` (or `cluster` with other permission flags) in its own session
 * and process group, as a shell's job.
 */
function startCluster(args: string[], permissions = taskFlags("start")): Running {
  return spawn("setsid", [
    Deno.execPath(),
    "run",
    "--config",
    CONFIG,
    ...permissions,
    MAIN,
    "cluster",
    ...args,
  ]);
}

/** The flags of a cluster on these base ports and data directory. */
function clusterArgs(peerBase: number, httpBase: number, dir: string): string[] {
  return ["--base-port", `${peerBase}`, "--http-base-port", `${httpBase}`, "--data-dir", dir];
}

/** Kills a started cluster's whole process group (after a failed assertion). */
function killGroup(run: Running): void {
  if (run.done()) return;
  try {
    Deno.kill(-run.child.pid, "SIGKILL");
  } catch {
    // Gone meanwhile.
  }
}

/** Consecutive free ports for a cluster's base port (node i uses base+i-1). */
function freeRun(count: number): number {
  for (let attempt = 0; attempt < 100; attempt++) {
    const base = freePort();
    const listeners: Deno.Listener[] = [];
    try {
      for (let i = 0; i < count; i++) {
        listeners.push(Deno.listen({ hostname: "127.0.0.1", port: base + i }));
      }
      return base;
    } catch {
      // One of them is taken: try another base.
    } finally {
      for (const listener of listeners) listener.close();
    }
  }
  throw new Error("No run of free ports found");
}

Deno.test("cluster: Ctrl-C on the process group stops every node cleanly, data intact", async () => {
  await withTempDir("raftmr-cluster-cli-", async (dir) => {
    const peerBase = freeRun(3);
    const httpBase = freeRun(3);
    const args = clusterArgs(peerBase, httpBase, dir);
    const first = startCluster(args);
    let second: Running | undefined;
    try {
      await waitUntil(
        () => /^Started 3 nodes: node \d leads/m.test(first.stdout()) || first.done(),
        () => `Never started:\n${first.stdout()}\n${first.stderr()}`,
      );
      assert.ok(!first.done(), first.stderr());
      // "Started" promises a leader: a write succeeds at once, through any node. The cluster is
      // secure by default: clients send the token it made in DATA-DIR/credentials.
      const token = (await Deno.readTextFile(`${dir}/credentials/token`)).trim();
      const auth = { authorization: `Bearer ${token}` };
      const put = await fetch(`http://127.0.0.1:${httpBase + 2}/v1/kv/kept`, {
        method: "PUT",
        body: "safe",
        headers: auth,
      });
      assert.equal(put.status, 200, await put.text());
      assert.match(first.stdout(), /^Try: raftmr kv put hello world --endpoints 127\.0\.0\.1:/m);

      // A terminal's Ctrl-C: SIGINT to every process of the group (deno, cluster, the nodes).
      Deno.kill(-first.child.pid, "SIGINT");
      assert.equal(await first.exited, 0, first.stderr());
      assert.match(first.stdout(), /^Stopped 3 nodes$/m);
      for (const id of [1, 2, 3]) {
        assert.match(first.stderr(), new RegExp(`node ${id}: Stopped$`, "m"), first.stderr());
      }
      // Peers may log a lost connection (WARN) while they all stop; nothing may fail.
      assert.doesNotMatch(first.stderr(), /exited with status| ERROR |Fatal/);

      // The data survived: the same cluster comes back with the write, and a plain SIGTERM to
      // the cluster process alone (as a supervisor sends it) stops the nodes too. This time the
      // cluster itself runs with only its role's permissions.
      second = startCluster(args, clusterPermissions(dir, Deno.execPath()));
      await waitUntil(
        () => /^Started 3 nodes/m.test(second!.stdout()) || second!.done(),
        () => `Never restarted:\n${second!.stdout()}\n${second!.stderr()}`,
      );
      const got = await fetch(`http://127.0.0.1:${httpBase}/v1/kv/kept`, { headers: auth });
      assert.equal(await got.text(), "safe");
      const restarted = second;
      restarted.child.kill("SIGTERM");
      assert.equal(await restarted.exited, 0, restarted.stderr());
      assert.match(restarted.stdout(), /^Stopped 3 nodes$/m);
    } finally {
      killGroup(first);
      if (second) killGroup(second);
      await first.exited;
      await second?.exited;
    }
  });
});

Deno.test("cluster: a port in use stops it before any node starts, naming the port", async () => {
  await withTempDir("raftmr-cluster-taken-", async (dir) => {
    const peerBase = freeRun(3);
    const httpBase = freeRun(3);
    const taken = Deno.listen({ hostname: "127.0.0.1", port: peerBase + 1 });
    try {
      const out = startCluster(clusterArgs(peerBase, httpBase, dir));
      assert.equal(await out.exited, 1, out.stderr());
      assert.match(
        out.stderr(),
        new RegExp(
          `cannot start: 127\\.0\\.0\\.1:${peerBase + 1} \\(node 2's peer port\\): address in use`,
        ),
      );
      assert.doesNotMatch(out.stdout(), /Started/);
    } finally {
      taken.close();
    }
  });
});
