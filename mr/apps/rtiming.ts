/**
 * Test app: shows whether reduce tasks run in parallel in different worker processes.
 */
import type { KeyValue } from "../app.ts";
import { nparallel } from "./_parallel.ts";

/** Emits the keys a to j, each with value "1". */
export function map(_filename: string, _contents: string): KeyValue[] {
  return [..."abcdefghij"].map((key) => ({ key, value: "1" }));
}

/** Returns how many reducers ran at the same time as this one. */
export async function reduce(_key: string, _values: string[]): Promise<string> {
  return String(await nparallel("reduce"));
}
