/**
 * A full garbage collection between two tasks of a task thread, when its heap has grown.
 *
 * A map holds its split as one large string plus a table, and leaves all of it garbage when it
 * returns; V8 frees large strings only in a full (mark-compact) collection, and schedules one by
 * heap growth, so over many tasks a worker's resident memory rose from about 140 to 380 MiB with
 * 16 MiB splits (measured: one task thread, 16 maps of one 16 MiB file, RSS after each), and the
 * peak grew with the number of maps, so with the input size. A full collection after a task
 * costs about 10 ms when the garbage is mostly those few large objects; doing it only once the
 * heap passed TRIM_BYTES keeps it to every other map or so with small splits. With it the same
 * maps stay at about 120 MiB after each (peak 212 MiB, against 378 without).
 *
 * `gc` is not exposed to scripts by default: the V8 flag that exposes it is set at run time
 * through node:v8, and the function read from a fresh node:vm context. Where that is refused,
 * this does nothing and V8 collects on its own schedule.
 */
import process from "node:process";

/** Heap plus external (ArrayBuffer) bytes past which a task is followed by a full collection. */
export const TRIM_BYTES = 64 * 1024 * 1024;

let collect: (() => void) | null | undefined;

function collector(): (() => void) | null {
  if (collect !== undefined) return collect;
  try {
    // Loaded on first use (process.getBuiltinModule): node:vm takes a task thread ~5 ms to load,
    // and loaded at start that would delay its first map, before which no trim is due.
    const v8 = process.getBuiltinModule("node:v8") as typeof import("node:v8");
    const vm = process.getBuiltinModule("node:vm") as typeof import("node:vm");
    v8.setFlagsFromString("--expose-gc");
    const gc: unknown = vm.runInNewContext("gc");
    collect = typeof gc === "function" ? () => gc() : null;
  } catch {
    collect = null;
  }
  return collect;
}

/** Runs a full collection if this isolate's heap and external memory exceed TRIM_BYTES. */
export function trimHeap(): boolean {
  const usage = Deno.memoryUsage();
  if (usage.heapTotal + usage.external <= TRIM_BYTES) return false;
  const gc = collector();
  if (gc === null) return false;
  gc();
  return true;
}
