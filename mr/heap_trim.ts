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
 *
 * A small heap (an old space under SMALL_OLD_SPACE, as `--max-old-space-size=24` gives) is trimmed
 * before nearly every map, and by a memory-reducing collection. V8 sizes the young generation
 * apart from the old space (semi-spaces of up to 32 MiB), and a map's table keeps its keys until
 * the next spill, so the survival rate grows the semi-space during a map. Once a semi-space is
 * larger than the room left in the old space, V8 cannot scavenge (the survivors might not fit:
 * "scavenge might not succeed") and collects the young generation by full mark-compacts; on a
 * loaded machine their incremental marking lasts 70-100 ms, and what the map allocates meanwhile
 * is kept to the end of the cycle. V8 ends the isolate when a mark-compact leaves the old
 * generation past its limit ("Reached heap limit"), without trying a non-incremental one first:
 * one went from 8.8 to 27.3 MB of a 24 MiB heap in 72 ms of marking, nearly all of it the spill
 * merge's per-record garbage (a heap snapshot at the crash, with the merge before 7ad6638, which
 * allocated more per record). A memory-reducing collection (V8's
 * "last resort": mark-compacts until nothing more is freed, which also shrink the young
 * generation back to its first semi-space) gives each map a young generation that scavenges
 * again. Measured on tests/mr/memory.test.ts's maps (4 MiB splits of 65,536 keys; 72 maps in one
 * isolate, a busy loop on one of the two cores): at 24 MiB the old generation after a
 * mark-compact peaked at 18.6 MB with about 35 such collections a run, and at 16 MiB 5 runs of 6
 * crashed; trimmed so, 0 such collections, peaks of 10.4-12.7 MB, no crash at 16, 20 or 24 MiB.
 * One plain mark-compact a map was not enough (with the earlier merge, 5 crashes in 8 runs at
 * 20 MiB): it keeps the grown semi-spaces. Large heaps keep it: a grown semi-space fits there.
 */
import process from "node:process";
import { oldSpaceLimit } from "./heap_limit.ts";

/** Used heap plus external (ArrayBuffer) bytes past which a map is preceded by a full collection. */
export const TRIM_BYTES = 32 * 1024 * 1024;

/**
 * Old-space limits under which the heap is small: four times the young generation's largest
 * semi-space, so a map's leftovers plus a grown semi-space of survivors may not fit.
 */
export const SMALL_OLD_SPACE = 128 * 1024 * 1024;

/**
 * The trim bound of this isolate: TRIM_BYTES, or in a small heap a quarter of its old space
 * (6 MiB of 24: above what an idle task thread holds, about 5 MiB, below any map's leftovers).
 */
export function trimBytes(): number {
  const oldSpace = oldSpaceLimit();
  return oldSpace < SMALL_OLD_SPACE ? Math.min(TRIM_BYTES, Math.floor(oldSpace / 4)) : TRIM_BYTES;
}

/** How trimHeap collects: one mark-compact, a low-memory notification, or not at all. */
export type Collector = "major" | "low-memory" | "none";

let collect: (() => void) | null | undefined;
let kind: Collector = "none";
/** V8's `gc`, read when this module loads: before any app code could define a global of that name. */
const exposed: unknown = (globalThis as { gc?: unknown }).gc;

/**
 * V8's gc extension takes an options object: a type of "major" asks for one full collection, and
 * a flavor of "last-resort" for the memory-reducing ones a low-memory notification runs.
 */
type V8Gc = (options?: {
  type: "major" | "minor";
  execution: "sync" | "async";
  flavor?: "regular" | "last-resort";
}) => unknown;

function collector(): (() => void) | null {
  if (collect !== undefined) return collect;
  if (typeof exposed === "function") {
    const gc = exposed as V8Gc;
    kind = "major";
    // In a small heap the young generation must shrink too (see above): one mark-compact keeps
    // it grown (a probe: 27.5 MiB of semi-spaces before and after one; 0.25 after "last-resort").
    const options = oldSpaceLimit() < SMALL_OLD_SPACE
      ? { type: "major", execution: "sync", flavor: "last-resort" } as const
      : { type: "major", execution: "sync" } as const;
    collect = () => void gc(options);
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
 * collected) and external memory exceed trimBytes().
 */
export function trimHeap(): boolean {
  // Used, not committed (heapTotal): V8 keeps the pages a collection emptied, so once a map had
  // grown the heap its committed size stayed past the bound, and every later map paid a
  // collection that found nothing to free when V8 had already collected on its own.
  const usage = Deno.memoryUsage();
  if (usage.heapUsed + usage.external <= trimBytes()) return false;
  const gc = collector();
  if (gc === null) return false;
  gc();
  return true;
}
