/**
 * The end of an `mr run` job: when the command exits, the outputs are whole, its job directory
 * (the workers' data, the token file) is gone, and none of its worker processes is left.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  app,
  listDir,
  mergedOutput,
  reference,
  startMrRun,
  withTempDir,
  writeInputs,
} from "./helpers.ts";

for (const flags of [[], ["--processes"]]) {
  Deno.test(`${["mr run", ...flags].join(" ")}: once it exits the outputs are whole, its job directory is gone, no worker is left`, async () => {
    await withTempDir(async (dir) => {
      const tmp = join(dir, "tmp");
      await Deno.mkdir(tmp);
      const files = await writeInputs(dir, 3, 200);
      const run = startMrRun(
        dir,
        tmp,
        ["--app", app("wc"), "--workers", "2", "--reduce", "3", ...flags, ...files],
      );
      assert.equal(await run.exited, 0, run.stderr());
      assert.deepEqual(await listDir(tmp, /^/), [], "the job directory is removed");
      assert.deepEqual(await mergedOutput(dir), await reference("wc", dir, files));
      // pgrep -f matches the workers' command lines, which name the job directory.
      const workers = await new Deno.Command("pgrep", { args: ["-f", tmp], stdout: "null" })
        .output();
      assert.equal(workers.code, 1, "no worker process is left");
    });
  });
}
