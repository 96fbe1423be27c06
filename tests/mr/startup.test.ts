/**
 * `mr run` starts its workers before its coordinator (mr/cli.ts runLocalJob): what must not
 * change with that order. A broken app or a missing input is reported once and starts no
 * worker; a coordinator that cannot start after the workers were spawned stops them and leaves
 * nothing behind.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { app, listDir, startMrRun, withTempDir, writeInputs } from "./helpers.ts";

/** Runs `raftmr mr run ARGS` in `dir` with TMPDIR `tmp` to its end. */
async function mrRun(dir: string, tmp: string, args: string[]) {
  const run = startMrRun(dir, tmp, args);
  const code = await run.exited;
  return { code, stderr: run.stderr() };
}

/** Every name in `dir`. */
const entries = (dir: string) => listDir(dir, /^/);

/** Whether a process whose command line contains `text` is running (pgrep -f). */
async function running(text: string): Promise<boolean> {
  const out = await new Deno.Command("pgrep", { args: ["-f", text], stdout: "null" }).output();
  return out.code === 0;
}

Deno.test("mr run: a broken app or a missing input is one line, exit 1, and starts no worker", async () => {
  await withTempDir(async (dir) => {
    const tmp = join(dir, "tmp");
    await Deno.mkdir(tmp);
    const files = await writeInputs(dir, 2, 20);
    await Deno.writeTextFile(join(dir, "half.ts"), "export function map() { return []; }\n");
    const cases: [string[], RegExp][] = [
      [["--app", "half.ts", ...files], /mr run: App module half\.ts does not export reduce/],
      [["--app", "nope.ts", ...files], /mr run: Cannot import app module nope\.ts/],
      [["--app", app("wc"), files[0], "missing.txt"], /mr run: Cannot read input file: missing/],
    ];
    for (const [args, message] of cases) {
      const out = await mrRun(dir, tmp, ["--workers", "2", ...args]);
      assert.equal(out.code, 1, out.stderr);
      const lines = out.stderr.trim().split("\n");
      // One line: no worker was started to fail on it too.
      assert.equal(lines.length, 1, out.stderr);
      assert.match(lines[0], message);
      assert.deepEqual(await entries(tmp), [], "no job directory was made");
    }
  });
});

for (const flags of [[], ["--processes"]]) {
  Deno.test(`${["mr run", ...flags].join(" ")}: a coordinator that cannot start stops the workers started for it`, async () => {
    await withTempDir(async (dir) => {
      const tmp = join(dir, "tmp");
      await Deno.mkdir(tmp);
      const files = await writeInputs(dir, 2, 20);
      // The status page's address is taken: the coordinator fails after the workers were spawned.
      const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      try {
        const http = `127.0.0.1:${taken.addr.port}`;
        const out = await mrRun(dir, tmp, ["--app", app("wc"), "--http", http, ...flags, ...files]);
        assert.equal(out.code, 1, out.stderr);
        const lines = out.stderr.trim().split("\n");
        const errors = lines.filter((line) => /Cannot listen/.test(line));
        assert.equal(errors.length, 1, out.stderr);
        assert.match(errors[0], new RegExp(`mr run: Cannot listen on ${http}`));
        // The workers were stopped before they could fail on their own (a missing job directory).
        assert.deepEqual(lines.filter((line) => /worker/.test(line)), [], out.stderr);
        assert.deepEqual(await entries(tmp), [], `the job directory is removed: ${out.stderr}`);
        assert.equal(await running(tmp), false, "no worker process is left");
      } finally {
        taken.close();
      }
    });
  });
}
