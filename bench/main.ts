/**
 * Benchmark runner: `deno task bench <name> [args]` runs bench/<name>.ts, whose exported main()
 * prints its figures as a table. Benchmarks report numbers; they never pass or fail on timing.
 */
const BENCHMARKS = ["rpc", "wal", "mr", "kv", "raft"];

if (import.meta.main) {
  const [name, ...rest] = Deno.args;
  if (!name || !BENCHMARKS.includes(name)) {
    console.error(`Usage: deno task bench <${BENCHMARKS.join("|")}> [args]`);
    Deno.exit(2);
  }
  const module = await import(`./${name}.ts`) as { main(args: string[]): Promise<void> };
  await module.main(rest);
}
