/**
 * `raftmr worker` against a coordinator address where nothing runs (a mistyped --coordinator):
 * it exits 1 with one line naming the address, instead of reporting success; and the bundled
 * app is found by its bare name from any directory.
 */
import assert from "node:assert/strict";
import { freePort } from "../lib/cluster.ts";
import { withTempDir } from "../lib/run.ts";
import { MAIN, spawn, taskFlags } from "../lib/roles.ts";

Deno.test("worker: a coordinator that never answered is a failure naming its address", async () => {
  await withTempDir("raftmr-worker-cli-", async (dir) => {
    const address = `127.0.0.1:${freePort()}`;
    // Run from an empty directory: "wc.ts" is not a file here, so it names the bundled app.
    const run = spawn(
      Deno.execPath(),
      ["run", ...taskFlags("start"), MAIN, "worker", "--app", "wc.ts", "--coordinator", address],
      { cwd: dir },
    );
    assert.equal(await run.exited, 1, run.stderr());
    const lines = run.stderr().trim().split("\n");
    assert.equal(lines.length, 1, run.stderr());
    assert.match(lines[0], new RegExp(`Cannot reach the coordinator at ${address}`));
    assert.match(lines[0], /--coordinator/);
    assert.doesNotMatch(run.stderr(), /Cannot import app module/);
  });
});
