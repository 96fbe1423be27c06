/**
 * Test app: shows whether map tasks run in parallel in different worker processes.
 */
import type { KeyValue } from "../app.ts";
import { nparallel } from "./_parallel.ts";

/** Emits times-<pid> (start time, seconds) and parallel-<pid> (concurrent mappers seen). */
export async function map(_filename: string, _contents: string): Promise<KeyValue[]> {
  const start = (Date.now() / 1000).toFixed(1);
  const n = await nparallel("map");
  return [
    { key: `times-${Deno.pid}`, value: start },
    { key: `parallel-${Deno.pid}`, value: String(n) },
  ];
}

/** Returns the sorted values joined with spaces. */
export function reduce(_key: string, values: string[]): string {
  return [...values].sort().join(" ");
}
