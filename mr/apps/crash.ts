/**
 * Test app: like nocrash, but every map and reduce call may kill its worker process (33%) or
 * stall it for up to 10 s (33%), to exercise re-issue and duplicate completions.
 */
import type { KeyValue } from "../app.ts";
import * as nocrash from "./nocrash.ts";

async function maybeCrash(): Promise<void> {
  const r = Math.floor(Math.random() * 1000);
  if (r < 330) Deno.exit(1);
  if (r < 660) {
    await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 10_000)));
  }
}

/** Maybe crashes or stalls, then maps like nocrash. */
export async function map(filename: string, contents: string): Promise<KeyValue[]> {
  await maybeCrash();
  return nocrash.map(filename, contents);
}

/** Maybe crashes or stalls, then reduces like nocrash. */
export async function reduce(key: string, values: string[]): Promise<string> {
  await maybeCrash();
  return nocrash.reduce(key, values);
}
