/**
 * The permission sets of the entry points: the tasks that run any subcommand and the compiled
 * binary share one list, none of them is --allow-all, and every task says what it does.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  ALL_ROLES_PERMISSIONS,
  servePermissions,
  workerPermissions,
} from "../../cli/permissions.ts";
import { withTempDir } from "../lib/run.ts";
import { CONFIG, taskFlags } from "../lib/roles.ts";

Deno.test("permissions: start and install carry the every-role set, never --allow-all", () => {
  // Besides the permissions, V8's gc for the workers' heap trims (mr/cli.ts runLocalJob).
  assert.deepEqual(taskFlags("start"), ["--v8-flags=--expose-gc", ...ALL_ROLES_PERMISSIONS]);
  const config = JSON.parse(Deno.readTextFileSync(CONFIG));
  const install: string = config.tasks.install.command;
  assert.ok(install.includes(`--v8-flags=--expose-gc ${ALL_ROLES_PERMISSIONS.join(" ")}`), install);
  for (const [name, task] of Object.entries(config.tasks) as [string, { command: string }][]) {
    assert.doesNotMatch(task.command, /--allow-all|(^|\s)-A(\s|$)/, `task ${name}`);
  }
});

Deno.test("permissions: every deno task has a description", () => {
  const config = JSON.parse(Deno.readTextFileSync(CONFIG));
  for (const [name, task] of Object.entries(config.tasks)) {
    assert.equal(typeof task, "object", `task ${name} is a bare string`);
    const { description } = task as { description?: string };
    assert.ok(typeof description === "string" && description.length > 10, `task ${name}`);
  }
});

Deno.test("permissions: a peer gets its data directory only, a worker no --allow-run", () => {
  const serve = servePermissions("/d/node-1");
  assert.ok(serve.includes("--allow-read=/d/node-1") && serve.includes("--allow-write=/d/node-1"));
  assert.ok(!serve.some((flag) => /^--allow-(run|ffi|sys|all)/.test(flag)), serve.join(" "));
  const worker = workerPermissions("/apps/wc.ts", "/job");
  // The program's own tree too: the worker's task thread loads its modules from it.
  const program = fileURLToPath(new URL("../../", import.meta.url)).replace(/\/$/, "");
  assert.ok(worker.includes(`--allow-read=/apps,/job,${program}`), worker.join(" "));
  assert.ok(worker.includes("--allow-write=/job"), worker.join(" "));
  assert.ok(!worker.some((flag) => /^--allow-(run|ffi|all)/.test(flag)), worker.join(" "));
});

Deno.test("permissions: a subcommand started with the every-role set drops what it does not use", async () => {
  await withTempDir("raftmr-drop-", async (dir) => {
    const script = `${dir}/probe.ts`;
    const permissions = new URL("../../cli/permissions.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { dropPermissions } from "${permissions}";\n` +
        `dropPermissions(Deno.args[0]);\n` +
        `const probes: Deno.PermissionDescriptor[] = [{ name: "net" }, { name: "read" }, ` +
        `{ name: "write" }, { name: "run" }, { name: "sys", kind: "hostname" }];\n` +
        `console.log(probes.filter((p) => Deno.permissions.querySync(p).state === "granted")` +
        `.map((p) => p.name).join(","));\n`,
    );
    const kept = async (command: string) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", ...taskFlags("start"), script, command],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
      return new TextDecoder().decode(out.stdout).trim();
    };
    // kv reads the CA and token files it is given (--ca, --token-file).
    assert.equal(await kept("kv"), "net,read");
    assert.equal(await kept("serve"), "net,read,write");
    assert.equal(await kept("worker"), "net,read,write,sys");
    assert.equal(await kept("cluster"), "net,read,write,run");
    // Cluster clients read the CA and token they are given (--ca, --token-file).
    assert.equal(await kept("member list"), "net,read");
    assert.equal(await kept("mr status"), "net,read");
  });
});
