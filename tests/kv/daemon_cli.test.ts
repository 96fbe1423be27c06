/**
 * The command line against real processes: `raftmr kv put/get/append/cas/del` over the native
 * protocol against a running cluster, and `raftmr serve` refusing a bad --peers value with exit
 * code 2 and one clear line.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { ProcessCluster } from "../lib/cluster.ts";
import { runScript, withTempDir } from "../lib/run.ts";
import { get, SERVE_ARGS } from "./daemon_helpers.ts";

const MAIN = fileURLToPath(new URL("../../main.ts", import.meta.url));

/** Runs `raftmr ARGS...` to completion. */
const raftmr = (args: string[]) => runScript(MAIN, args);

Deno.test("cli: raftmr kv commands against a running cluster", async () => {
  const cluster = await ProcessCluster.start({ nodes: 3, extraArgs: SERVE_ARGS });
  try {
    const endpoints = [
      "--endpoints",
      cluster.ids.map((id) => cluster.peerAddress(id)).join(","),
      ...cluster.kvArgs(),
    ];
    const kv = (...args: string[]) => raftmr(["kv", ...args, ...endpoints]);

    const put = await kv("put", "greeting", "hello");
    assert.equal(put.code, 0, put.stderr);
    assert.match(put.stdout, /^OK \(index \d+\)/);
    const got = await kv("get", "greeting");
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, "hello"); // Exactly the bytes (stdout is not a terminal).
    assert.equal((await kv("append", "greeting", ", world")).code, 0);
    // The HTTP API sees what the CLI wrote.
    assert.equal((await get(cluster.url(3), "greeting")).body, "hello, world");

    const failedCas = await kv("cas", "greeting", "hi", "--expect", "nope");
    assert.equal(failedCas.code, 1);
    assert.match(failedCas.stderr, /Compare failed: the current value is "hello, world"/);
    assert.equal((await kv("cas", "greeting", "hi", "--expect", "hello, world")).code, 0);
    assert.equal((await kv("get", "greeting")).stdout, "hi");
    assert.equal((await kv("del", "greeting")).code, 0);
    const missing = await kv("get", "greeting");
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /Key not found: greeting/);

    // One endpoint is enough (followers forward), and a dead one in the list is skipped.
    const leader = await cluster.waitForLeader();
    const follower = cluster.ids.find((id) => id !== leader)!;
    const viaOne = await raftmr([
      "kv",
      "put",
      "one",
      "1",
      "--endpoints",
      cluster.peerAddress(follower),
      ...cluster.kvArgs(),
    ]);
    assert.equal(viaOne.code, 0, viaOne.stderr);
    await cluster.kill(follower);
    const afterKill = await kv("get", "one");
    assert.equal(afterKill.code, 0, afterKill.stderr);
    assert.equal(afterKill.stdout, "1");
  } finally {
    await cluster.stop();
  }
});

Deno.test("cli: raftmr serve with a bad --peers value exits 2 with one clear line", async () => {
  await withTempDir("raftmr-cli-", async (dir) => {
    const bad = [
      "1=127.0.0.1:7001,2",
      "1=127.0.0.1:notaport",
      "0=127.0.0.1:7001",
      "1=127.0.0.1:7001,1=127.0.0.1:7002",
    ];
    for (const peers of bad) {
      const out = await raftmr(["serve", "--id", "1", "--peers", peers, "--data-dir", dir]);
      assert.equal(out.code, 2, `--peers ${peers}: ${out.stderr}`);
      const lines = out.stderr.trim().split("\n");
      assert.equal(lines.length, 1, `--peers ${peers}: ${out.stderr}`);
      assert.match(lines[0], /^raftmr: .*--peers/, peers);
      assert.equal(out.stdout, "");
    }
    // An --id missing from --peers is a usage error too.
    const noSelf = await raftmr([
      "serve",
      "--id",
      "3",
      "--peers",
      "1=127.0.0.1:7001,2=127.0.0.1:7002",
      "--data-dir",
      dir,
    ]);
    assert.equal(noSelf.code, 2, noSelf.stderr);
    assert.equal(noSelf.stderr.trim().split("\n").length, 1, noSelf.stderr);
  });
});
