/**
 * `deno task compile`: builds a single executable with `deno compile`. That needs the denort
 * runtime from Deno's download servers; where they cannot be reached this says so in one line
 * and points at `deno task bundle`, which works offline.
 *
 * The executable carries the permissions of every role together (cli/permissions.ts), never
 * --allow-all: one binary runs every subcommand, and each subcommand drops what it does not use.
 */
import { ALL_ROLES_PERMISSIONS } from "./permissions.ts";

const output = "dist/raftmr";

if (import.meta.main) {
  const result = await new Deno.Command(Deno.execPath(), {
    args: [
      "compile",
      "--v8-flags=--expose-gc",
      ...ALL_ROLES_PERMISSIONS,
      "--output",
      output,
      "main.ts",
    ],
    stdout: "inherit",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(result.stderr);
  if (result.success) {
    console.log(`Built ${output}`);
    Deno.exit(0);
  }
  const offline = /dns error|lookup address|download|connect|network|Name or service/i.test(stderr);
  if (offline) {
    console.error(
      "raftmr: deno compile could not download the denort runtime from Deno's servers; " +
        "use `deno task bundle` (offline) to build dist/raftmr.js and run it with `deno run` and the " +
        "flags README.md lists",
    );
  } else {
    console.error(stderr.trimEnd());
    console.error("raftmr: deno compile failed; `deno task bundle` is the offline alternative");
  }
  Deno.exit(1);
}
