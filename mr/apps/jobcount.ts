/**
 * Test app: counts map executions, so a test can check that every map task ran exactly once.
 */
import type { KeyValue } from "../app.ts";

let count = 0;

/** Leaves a fresh marker file per execution, sleeps 2-5 s, emits ("a", "x"). */
export async function map(_filename: string, _contents: string): Promise<KeyValue[]> {
  await Deno.writeTextFile(`mr-worker-jobcount-${Deno.pid}-${count++}`, "x");
  await new Promise((resolve) => setTimeout(resolve, 2000 + Math.floor(Math.random() * 3000)));
  return [{ key: "a", value: "x" }];
}

/** Returns the number of marker files: the number of map executions. */
export async function reduce(_key: string, _values: string[]): Promise<string> {
  let invocations = 0;
  for await (const entry of Deno.readDir(".")) {
    if (entry.name.startsWith("mr-worker-jobcount")) invocations++;
  }
  return String(invocations);
}
