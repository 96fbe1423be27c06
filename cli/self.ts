/**
 * How to start another copy of this program (for `cluster` and `mr run`), whether it runs as
 * `deno run main.ts`, as the bundled dist/raftmr.js, or as a compiled executable.
 */
import { fileURLToPath } from "node:url";

/** The argv (program first) that runs this program with `args`. */
export function selfCommand(args: string[]): { program: string; args: string[] } {
  const main = Deno.mainModule;
  // A compiled executable is its own program: its main module is not a real file.
  if (!main.startsWith("file:") || Deno.build.standalone) {
    return { program: Deno.execPath(), args };
  }
  return { program: Deno.execPath(), args: ["run", "--allow-all", fileURLToPath(main), ...args] };
}
