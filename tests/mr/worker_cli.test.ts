/**
 * `raftmr worker` against a coordinator address where nothing runs (a mistyped --coordinator):
 * it exits 1 with one line naming the address, instead of reporting success; and the bundled
 * app is found by its bare name from any directory.
 */
import assert from "node:assert/strict";
import { freePort } from "../lib/cluster.ts";
import { withTempDir } from "../lib/run.ts";
import { MAIN, spawn, taskFlags, waitUntil } from "../lib/roles.ts";

const SLOW_MAP = new URL("./fixtures/slow_map.ts", import.meta.url).pathname;

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

Deno.test("mr run: Ctrl-C on its process group stops the job, exit 130, nothing left behind", async () => {
  await withTempDir("raftmr-mr-int-", async (dir) => {
    const tmp = `${dir}/tmp`;
    await Deno.mkdir(tmp);
    for (const name of ["a", "b", "c", "d"]) {
      await Deno.writeTextFile(`${dir}/${name}.txt`, `${name} words here\n`);
    }
    // slow_map spends two seconds in every map (and, unlike mtiming, writes no marker file in
    // the working directory, which mr run's workers may not write): the job is still running
    // when the signal comes.
    const run = spawn("setsid", [
      Deno.execPath(),
      "run",
      ...taskFlags("start"),
      MAIN,
      "mr",
      "run",
      "--app",
      SLOW_MAP,
      "--workers",
      "2",
      "a.txt",
      "b.txt",
      "c.txt",
      "d.txt",
    ], { cwd: dir, env: { TMPDIR: tmp } });
    try {
      await waitUntil(async () => {
        if (run.done()) return true;
        for await (const job of Deno.readDir(tmp)) {
          for await (const entry of Deno.readDir(`${tmp}/${job.name}`)) {
            if (entry.name.startsWith("worker-")) return true;
          }
        }
        return false;
      }, () => `The job never started its workers:\n${run.stderr()}`);
      assert.ok(!run.done(), run.stderr());
      Deno.kill(-run.child.pid, "SIGINT");
      assert.equal(await run.exited, 130, run.stderr());
      assert.match(run.stderr(), /Interrupted by SIGINT/);
      const left = [];
      for await (const entry of Deno.readDir(tmp)) left.push(entry.name);
      assert.deepEqual(left, [], "the job's temporary directories are removed");
    } finally {
      if (!run.done()) Deno.kill(-run.child.pid, "SIGKILL");
      await run.exited;
    }
  });
});
