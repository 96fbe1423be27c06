/**
 * `raftmr kv` when the cluster is not there: every endpoint refusing is reported at once (not
 * after --timeout), naming each endpoint and how to start a cluster, with the "unavailable"
 * exit status 3 (a missing key is 1); an endpoint that accepts but never answers ends in one
 * line that does not repeat the operation.
 */
import assert from "node:assert/strict";
import { freePort } from "../lib/cluster.ts";
import { MAIN, spawn, taskFlags } from "../lib/roles.ts";

function kv(args: string[]) {
  return spawn(Deno.execPath(), ["run", ...taskFlags("start"), MAIN, "kv", ...args]);
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
