/**
 * How to start another copy of this program (for `cluster` and `mr run`), whether it runs as
 * `deno run main.ts`, as the bundled dist/raftmr.js, or as a compiled executable.
 */
import { fileURLToPath } from "node:url";

/**
 * The argv (program first) that runs this program with `args` and the Deno `permissions` of the
 * child's role (cli/permissions.ts). The program is always the real Deno executable
 * (Deno.execPath()), never a `deno` found on PATH: npm's `deno` is a Node shim that does not
 * forward SIGTERM, so a child started through it could not be stopped cleanly. A compiled
 * executable is its own program and carries the permissions baked in at compile time.
 */
export function selfCommand(
  args: string[],
  permissions: readonly string[],
): { program: string; args: string[] } {
  const main = Deno.mainModule;
  // A compiled executable's main module is not a real file.
  if (!main.startsWith("file:") || Deno.build.standalone) {
    return { program: Deno.execPath(), args };
  }
  return { program: Deno.execPath(), args: ["run", ...permissions, fileURLToPath(main), ...args] };
}
