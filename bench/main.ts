/**
 * Benchmark runner: `deno task bench <name> [args]` runs bench/<name>.ts, whose exported main()
 * prints its figures as a table. Benchmarks report numbers; they never pass or fail on timing.
 */
import { parseArgs } from "node:util";
import { UsageError } from "../cli/command.ts";
import { errorMessage } from "../util/errors.ts";
import { benchHelp, BENCHMARKS as SPECS } from "./flags.ts";

const BENCHMARKS = ["rpc", "wal", "mr", "kv", "raft"];

if (import.meta.main) {
  const [name, ...rest] = Deno.args;
  if (!name || !BENCHMARKS.includes(name)) {
    console.error(`Usage: deno task bench <${BENCHMARKS.join("|")}> [args]`);
    Deno.exit(2);
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(benchHelp(name));
    Deno.exit(0);
  }
  // Every benchmark's command line is checked here against its declared flags, before it
  // starts: one that parses its own flags loosely must not run for minutes on a typo.
  const options: Record<string, { type: "string" | "boolean" }> = {};
  for (const [flag, spec] of Object.entries(SPECS[name].flags)) options[flag] = { type: spec.type };
  try {
    parseArgs({ args: rest, options, strict: true, allowPositionals: false });
  } catch (err) {
    console.error(`bench ${name}: ${errorMessage(err).split(". ")[0]}`);
    Deno.exit(2);
  }
  const module = await import(`./${name}.ts`) as { main(args: string[]): Promise<void> };
  try {
    await module.main(rest);
  } catch (err) {
    // Bad flags (parseArgs throws TypeError with an ERR_PARSE_ARGS_* code) get one line and
    // exit 2, like the raftmr CLI; anything else is a failed run.
    const usage = err instanceof UsageError ||
      String((err as { code?: unknown })?.code ?? "").startsWith("ERR_PARSE_ARGS");
    console.error(`bench ${name}: ${errorMessage(err)}`);
    Deno.exit(usage ? 2 : 1);
  }
}
