/**
 * How `mr run` runs its workers (mr/local_workers.ts): as task threads of its own process, each
 * with a worker's paths and nothing else, or with --processes as worker processes; either way a
 * worker whose app ends its thread is carried on, and a job stopped by Ctrl-C leaves nothing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  listDir,
  mergedOutput,
  raftmr,
  reference,
  startMrRun,
  withTempDir,
  writeInputs,
} from "./helpers.ts";
import { waitUntil } from "../lib/roles.ts";

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}.ts`, import.meta.url));

/** The job's output as key -> value (one line per key). */
async function outputMap(dir: string): Promise<Map<string, string>> {
  const lines = await mergedOutput(dir);
  return new Map(lines.map((line) => line.split(" ") as [string, string]));
}

for (const mode of ["threads", "processes"] as const) {
  const flags = mode === "processes" ? ["--processes"] : [];

  Deno.test(`mr run (${mode}): where the app runs and what it may do`, async () => {
    await withTempDir(async (dir) => {
      const files = await writeInputs(dir, 4, 20);
      const run = raftmr(
        ["mr", "run", "--app", fixture("capability_probe"), "--workers", "2", ...flags]
          .concat(["--reduce", "1", ...files]),
        dir,
      );
      const out = await run.done;
      assert.equal(out.code, 0, out.stderr);
      const seen = await outputMap(dir);
      const pids = seen.get("pid")!.split(",").map(Number);
      if (mode === "threads") {
        // Every map ran in the mr run process itself.
        assert.deepEqual(pids, [run.child.pid]);
      } else {
        assert.ok(pids.length >= 1 && !pids.includes(run.child.pid), seen.get("pid"));
      }
      // mr run itself has every permission here (-A): what its workers' code may do is the
      // worker's set, not its own. A worker process needs the network for its RPC; a task
      // thread of mr run does not get it.
      assert.deepEqual(Object.fromEntries([...seen].filter(([key]) => key !== "pid")), {
        "read-input": "granted",
        "read-root": "refused",
        "write-input": "refused",
        net: mode === "threads" ? "refused" : "granted",
        run: "refused",
        env: "refused",
      });
    });
  });

  Deno.test(`mr run (${mode}): an app that ends its task thread at random still counts right`, async () => {
    await withTempDir(async (dir) => {
      // Half the map calls exit: with 12 files, the chance that none does is 1 in 4,096.
      const files = await writeInputs(dir, 12, 100);
      const out = await raftmr(
        ["mr", "run", "--app", fixture("exit_sometimes"), "--workers", "2", ...flags]
          .concat(["--reduce", "3", ...files]),
        dir,
      ).done;
      assert.equal(out.code, 0, out.stderr);
      assert.match(out.stderr, /task \d+ failed: TaskExitedError: The app ended its task thread/);
      assert.deepEqual(await mergedOutput(dir), await reference("wc", dir, files));
    });
  });

  // slow_map: two seconds per map, the job is still mapping when it is interrupted; hang_on_load:
  // the workers' task threads never finish importing the app.
  for (const app of ["slow_map", "hang_on_load"]) {
    Deno.test(`mr run (${mode}, ${app}): Ctrl-C stops the job at once and leaves no job directory`, async () => {
      await withTempDir(async (dir) => {
        const tmp = join(dir, "tmp");
        await Deno.mkdir(tmp);
        const files = await writeInputs(dir, 4, 20);
        const run = startMrRun(dir, tmp, [
          "--app",
          fixture(app),
          "--workers",
          "2",
          ...flags,
          ...files,
        ]);
        await waitUntil(() => /input files in/.test(run.stderr()), () => run.stderr());
        run.child.kill("SIGINT");
        assert.equal(await run.exited, 130, run.stderr());
        assert.match(run.stderr(), /Interrupted by SIGINT/);
        assert.deepEqual(await listDir(tmp, /^/), [], "the job directory is removed");
        assert.deepEqual(await listDir(dir, /^\.raftmr-/), [], "no staging directory is left");
      });
    });
  }
}
