/**
 * A full garbage collection between two tasks of a task thread, when its heap has grown.
 *
 * A map holds its split as one large string plus a table, and leaves all of it garbage when it
 * returns; V8 frees large strings only in a full (mark-compact) collection, and schedules one by
 * heap growth, so over many tasks a worker's resident memory rose from about 140 to 380 MiB with
 * 16 MiB splits (measured: one task thread, 16 maps of one 16 MiB file, RSS after each), and the
 * peak grew with the number of maps, so with the input size. Collecting only once the used heap
 * passed TRIM_BYTES skips the collection after small maps (one or two in the benchmark's eight
 * maps of 8 MiB, where V8 mostly collected on its own) and runs it before nearly every map of
 * 16 MiB splits.
 *
 * Which collection: V8's own `gc` function, installed in every context of a process started
 * with `--v8-flags=--expose-gc` (mr run passes the flag on to its workers when it was started
 * with it), runs one mark-compact: 3-5 ms
 * alone, 15-25 ms in a job, since what survives a map is little (code and a few modules). It
 * keeps the pages it emptied (the young generation's 64 MiB above all), so the bound counts used
 * memory, and sits lower than the committed-memory bound of 64 MiB the collection below had:
 * with a 64 MiB bound on used memory worker peak RSS was 195/223/254 MiB at 66/265/1061 MiB of
 * input, with 32 MiB 157/205/221 (bench mr --only scale), and over a 1 GiB job its high-water
 * mark levels off at 212 MiB after about half the maps, as it does (at 213) with the
 * low-memory collection every other map. Without that flag a
 * script can still set the flag at run time (node:v8) and read a `gc` from a fresh node:vm
 * context, but that one is a low-memory notification: at least two memory-reducing
 * mark-compacts that compact every page (29-35 ms per trim measured on a map's leftovers, 50-67
 * under load), and it also aborts the optimizing compiles in flight and clears the compilation
 * cache. Where neither is available this does nothing and V8 collects on its own schedule.
 */
import process from "node:process";

/** Used heap plus external (ArrayBuffer) bytes past which a map is preceded by a full collection. */
export const TRIM_BYTES = 32 * 1024 * 1024;

/** How trimHeap collects: one mark-compact, a low-memory notification, or not at all. */
export type Collector = "major" | "low-memory" | "none";

let collect: (() => void) | null | undefined;
let kind: Collector = "none";
/** V8's `gc`, read when this module loads: before any app code could define a global of that name. */
const exposed: unknown = (globalThis as { gc?: unknown }).gc;

/** V8's gc extension takes an options object; a type of "major" asks for one full collection. */
type V8Gc = (options?: { type: "major" | "minor"; execution: "sync" | "async" }) => unknown;

function collector(): (() => void) | null {
  if (collect !== undefined) return collect;
  if (typeof exposed === "function") {
    const gc = exposed as V8Gc;
    kind = "major";
    collect = () => void gc({ type: "major", execution: "sync" });
    return collect;
  }
  try {
    // Loaded on first use (process.getBuiltinModule): node:vm takes a task thread ~5 ms to load,
    // and loaded at start that would delay its first map, before which no trim is due.
    const v8 = process.getBuiltinModule("node:v8") as typeof import("node:v8");
    const vm = process.getBuiltinModule("node:vm") as typeof import("node:vm");
    v8.setFlagsFromString("--expose-gc");
    const gc: unknown = vm.runInNewContext("gc");
    collect = typeof gc === "function" ? () => gc() : null;
    kind = collect === null ? "none" : "low-memory";
  } catch {
    collect = null;
  }
  return collect;
}

/** How this thread's trims collect (decided on first use; reading it decides). */
export function heapCollector(): Collector {
  collector();
  return kind;
}

/**
 * Runs a full collection if this isolate's used heap (live objects plus garbage not yet
 * collected) and external memory exceed TRIM_BYTES.
 */
export function trimHeap(): boolean {
  // Used, not committed (heapTotal): V8 keeps the pages a collection emptied, so once a map had
  // grown the heap its committed size stayed past the bound, and every later map paid a
  // collection that found nothing to free when V8 had already collected on its own.
  const usage = Deno.memoryUsage();
  if (usage.heapUsed + usage.external <= TRIM_BYTES) return false;
  const gc = collector();
  if (gc === null) return false;
  gc();
  return true;
}
