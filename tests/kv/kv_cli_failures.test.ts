/**
 * `raftmr kv` when the cluster is not there: every endpoint refusing is reported at once (not
 * after --timeout), naming each endpoint and how to start a cluster, with the "unavailable"
 * exit status 3 (a missing key is 1); an endpoint that accepts but never answers ends in one
 * line that does not repeat the operation. And a value ends with a newline on a terminal only.
 * Every kv process runs with the kv role's permissions: the network only.
 */
import assert from "node:assert/strict";
import { freePort } from "../lib/cluster.ts";
import { kvPermissions, servePermissions } from "../../cli/permissions.ts";
import { withTempDir } from "../lib/run.ts";
import { CONFIG, MAIN, spawn, startSingleNode, waitUntil } from "../lib/roles.ts";

/** `raftmr kv ARGS` with the kv role's permissions (the network only). */
function kv(args: string[]) {
  return spawn(Deno.execPath(), [
    "run",
    "--config",
    CONFIG,
    ...kvPermissions(),
    MAIN,
    "kv",
    ...args,
  ]);
}

Deno.test("kv: nothing listening on any endpoint fails at once, naming every endpoint", async () => {
  const endpoints = [`127.0.0.1:${freePort()}`, `127.0.0.1:${freePort()}`];
  const run = kv(["get", "greeting", "--endpoints", endpoints.join(",")]);
  assert.equal(await run.exited, 3, run.stderr());
  const lines = run.stderr().trim().split("\n");
  assert.equal(lines.length, 1, run.stderr());
  assert.match(lines[0], /^raftmr kv get: No node reachable: connection refused at /);
  for (const endpoint of endpoints) assert.ok(lines[0].includes(endpoint), lines[0]);
  assert.match(lines[0], /raftmr cluster/);
  // The refusal, not the 10 s deadline, ended it.
  assert.doesNotMatch(lines[0], /No answer/);
  assert.equal(run.stdout(), "");
});

Deno.test("kv: a node that never answers ends in one line without a doubled prefix", async () => {
  // Accepts connections and reads nothing: every call times out.
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of silent) held.push(conn);
    } catch {
      // Closed below.
    }
  })();
  try {
    const endpoint = `127.0.0.1:${(silent.addr as Deno.NetAddr).port}`;
    const run = kv(["put", "k", "v", "--endpoints", endpoint, "--timeout", "1s"]);
    assert.equal(await run.exited, 3, run.stderr());
    const lines = run.stderr().trim().split("\n");
    assert.equal(lines.length, 1, run.stderr());
    assert.match(lines[0], new RegExp(`^raftmr kv put: No answer from ${endpoint} within 1000 ms`));
    assert.match(lines[0], /outcome is unknown/);
    assert.doesNotMatch(lines[0], /kv put: KV put/i);
  } finally {
    silent.close();
    for (const conn of held) conn.close();
    await accepting;
  }
});

/** Whether util-linux `script` (runs a command on a pseudo-terminal) is installed. */
function hasScript(): boolean {
  try {
    return new Deno.Command("script", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

Deno.test({
  name: "kv: a value printed to a terminal ends with a newline, to a pipe it is exact",
  ignore: !hasScript(),
  fn: async () => {
    await withTempDir("raftmr-kv-tty-", async (dir) => {
      const data = `${dir}/data`;
      const { node } = startSingleNode(servePermissions(data), data);
      try {
        await waitUntil(
          () => /leader is node 1/.test(node.stderr()) || node.done(),
          () => `No leader:\n${node.stderr()}`,
        );
        const endpoint = /serving peers on (\S+),/.exec(node.stderr())![1];
        const put = kv(["put", "k", "no newline", "--endpoints", endpoint]);
        assert.equal(await put.exited, 0, put.stderr());
        const piped = kv(["get", "k", "--endpoints", endpoint]);
        assert.equal(await piped.exited, 0, piped.stderr());
        assert.equal(piped.stdout(), "no newline");
        // `script` runs the same command with a pseudo-terminal as its stdout.
        const onTerminal = async (key: string) => {
          const command = [Deno.execPath(), "run", "--config", CONFIG, ...kvPermissions(), MAIN]
            .concat(["kv", "get", key, "--endpoints", endpoint]).join(" ");
          const tty = spawn("script", ["-qec", command, "/dev/null"]);
          assert.equal(await tty.exited, 0, tty.stderr());
          return tty.stdout().replaceAll("\r", "");
        };
        assert.equal(await onTerminal("k"), "no newline\n");
        // A value that ends with a newline gets no second one.
        const line = kv(["put", "line", "one line\n", "--endpoints", endpoint]);
        assert.equal(await line.exited, 0, line.stderr());
        assert.equal(await onTerminal("line"), "one line\n");
      } finally {
        node.child.kill("SIGTERM");
        await node.exited;
      }
    });
  },
});
