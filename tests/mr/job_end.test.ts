/**
 * The end of an `mr run` job: when the command exits, the outputs are whole, its job directory
 * (the workers' data, the token file) is gone, and none of its worker processes is left.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { app, CONFIG, MAIN, mergedOutput, reference, withTempDir, writeInputs } from "./helpers.ts";
import { spawn } from "../lib/roles.ts";

for (const flags of [[], ["--processes"]]) {
  Deno.test(`${["mr run", ...flags].join(" ")}: once it exits the outputs are whole, its job directory is gone, no worker is left`, async () => {
    await withTempDir(async (dir) => {
      const tmp = join(dir, "tmp");
      await Deno.mkdir(tmp);
      const files = await writeInputs(dir, 3, 200);
      const run = spawn(
        Deno.execPath(),
        ["run", "-A", "--config", CONFIG, MAIN, "mr", "run", "--app", app("wc"), "--workers", "2"]
          .concat(["--reduce", "3", ...flags, ...files]),
        { cwd: dir, env: { TMPDIR: tmp } },
      );
      assert.equal(await run.exited, 0, run.stderr());
      const left: string[] = [];
      for await (const entry of Deno.readDir(tmp)) left.push(entry.name);
      assert.deepEqual(left, [], "the job directory is removed");
      assert.deepEqual(await mergedOutput(dir), await reference("wc", dir, files));
      // pgrep -f matches the workers' command lines, which name the job directory.
      const workers = await new Deno.Command("pgrep", { args: ["-f", tmp], stdout: "null" })
        .output();
      assert.equal(workers.code, 1, "no worker process is left");
    });
  });
}
