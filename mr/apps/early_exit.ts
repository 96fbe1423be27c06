/**
 * Test app: some reduces are slow, to catch a process that exits before the outputs are final.
 */
import type { KeyValue } from "../app.ts";

/** Emits (filename, "1"). */
export function map(filename: string, _contents: string): KeyValue[] {
  return [{ key: filename, value: "1" }];
}

/** Sleeps 3 s for keys containing "sherlock" or "tom"; returns the number of values. */
export async function reduce(key: string, values: string[]): Promise<string> {
  if (key.includes("sherlock") || key.includes("tom")) {
    await new Promise((resolve) => setTimeout(resolve, 3000));
  }
  return String(values.length);
}
