/**
 * `deno task bundle` makes one file that runs every command offline. main.ts loads each
 * command's modules only when the command runs (cli/command_table.ts), so the bundle must still
 * carry them: its --help, and `mr run`, whose workers are the bundle again (`raftmr worker`).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { withTempDir } from "../lib/run.ts";
import { ROOT, spawn, taskFlags } from "../lib/roles.ts";

const WC = join(ROOT, "mr/apps/wc.ts");

/** The bundle task's command from deno.json, writing to `output` instead of dist/. */
async function bundleArgs(output: string): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  const words: string[] = config.tasks.bundle.command.split(" ");
  assert.deepEqual(words.slice(0, 2), ["deno", "bundle"], "the bundle task runs deno bundle");
  const at = words.indexOf("--output");
  assert.ok(at > 0, "the bundle task names its --output");
  words[at + 1] = output;
  return words.slice(1);
}

Deno.test("bundle: one file whose --help lists every command and whose mr run counts words", async () => {
  await withTempDir("raftmr-bundle-", async (dir) => {
    const bundle = join(dir, "raftmr.js");
    const build = spawn(Deno.execPath(), await bundleArgs(bundle), { cwd: ROOT });
    assert.equal(await build.exited, 0, build.stderr());

    const run = (args: string[]) =>
      spawn(Deno.execPath(), ["run", ...taskFlags("start"), bundle, ...args], { cwd: dir });
    const help = run(["--help"]);
    assert.equal(await help.exited, 0, help.stderr());
    for (const name of ["serve", "worker", "mr run", "certs"]) {
      assert.match(help.stdout(), new RegExp(`^  ${name} `, "m"));
    }
    const workerHelp = run(["worker", "--help"]);
    assert.equal(await workerHelp.exited, 0, workerHelp.stderr());
    assert.match(workerHelp.stdout(), /^Usage: raftmr worker/m);

    await Deno.writeTextFile(join(dir, "a.txt"), "one two two\nthree three three\n");
    await Deno.writeTextFile(join(dir, "b.txt"), "two three\n");
    const job = run([
      "mr",
      "run",
      "--app",
      WC,
      "--workers",
      "2",
      "--reduce",
      "2",
      "a.txt",
      "b.txt",
    ]);
    assert.equal(await job.exited, 0, job.stderr());
    const counts = new Map<string, string>();
    for (const r of [0, 1]) {
      for (const line of (await Deno.readTextFile(join(dir, `mr-out-${r}`))).split("\n")) {
        if (line !== "") counts.set(line.split(" ")[0], line.split(" ")[1]);
      }
    }
    assert.deepEqual(Object.fromEntries(counts), { one: "1", two: "3", three: "4" });
  });
});
