/**
 * A MapReduce job whose processes run exactly with their roles' permissions: the coordinator
 * with coordinatorPermissions (its inputs and its output directory), two workers as
 * deploy/raftmr-worker@.service starts them (the unit's ExecStart with test paths: the apps
 * directory and each worker's own data directory, no other file access, no --allow-run).
 */
import assert from "node:assert/strict";
import { coordinatorPermissions } from "../../cli/permissions.ts";
import { freePort } from "../lib/cluster.ts";
import { withTempDir } from "../lib/run.ts";
import { CONFIG, MAIN, ROOT, spawn, unitExecStart } from "../lib/roles.ts";

Deno.test("narrow roles: coordinator and unit-started workers finish a job", async () => {
  await withTempDir("raftmr-narrow-", async (dir) => {
    const jobDir = `${dir}/job`;
    await Deno.mkdir(jobDir);
    const inputs = [`${jobDir}/in-1.txt`, `${jobDir}/in-2.txt`];
    await Deno.writeTextFile(inputs[0], "one two two\nthree three three\n");
    await Deno.writeTextFile(inputs[1], "two three\nfour\n");
    const rpc = `127.0.0.1:${freePort()}`;
    const coordinator = spawn(Deno.execPath(), [
      "run",
      "--config",
      CONFIG,
      ...coordinatorPermissions(jobDir, inputs),
      MAIN,
      "coordinator",
      "--listen",
      rpc,
      "--http",
      `127.0.0.1:${freePort()}`,
      "--reduce",
      "2",
      ...inputs,
    ], { cwd: jobDir });
    const workers = [1, 2].map((i) => {
      const home = `${dir}/worker-${i}`;
      Deno.mkdirSync(`${home}/data`, { recursive: true });
      const listen = `127.0.0.1:${freePort()}`;
      const argv = unitExecStart("raftmr-worker@.service", {
        "/opt/raftmr/deno": Deno.execPath(),
        "/opt/raftmr/raftmr.js": MAIN,
        "/opt/raftmr/apps": `${ROOT}mr/apps`,
        "/var/lib/raftmr-worker/%i": home,
        "${RAFTMR_COORDINATOR}": rpc,
        "${RAFTMR_APP}": "wc.ts",
        "${RAFTMR_LISTEN}": listen,
        "${RAFTMR_ADVERTISE}": listen,
      });
      assert.ok(!argv.some((a) => /^--allow-(all|run|ffi)|^-A$/.test(a)), argv.join(" "));
      return spawn(argv[0], [argv[1], "--config", CONFIG, ...argv.slice(2)], { cwd: home });
    });
    const codes = await Promise.all([coordinator.exited, ...workers.map((w) => w.exited)]);
    const output = [coordinator, ...workers].map((p) => p.stderr()).join("\n---\n");
    assert.deepEqual(codes, [0, 0, 0], output);
    const lines: string[] = [];
    for (const r of [0, 1]) {
      lines.push(...(await Deno.readTextFile(`${jobDir}/mr-out-${r}`)).split("\n").filter(Boolean));
    }
    assert.deepEqual(lines.sort(), ["four 1", "one 1", "three 4", "two 3"]);
  });
});
