/**
 * This isolate's old-space limit, the budget `--v8-flags=--max-old-space-size=...` sets: what a
 * map's spill bound (map_output.ts) and the heap trims between maps (heap_trim.ts) are sized by.
 */
import { getHeapStatistics } from "node:v8";

/**
 * V8's young generation limit on 64-bit hosts (three semi-spaces of 32 MiB), which V8 adds to
 * heap_size_limit whatever the old space: --max-old-space-size=16 reads as 112 MiB.
 */
export const YOUNG_GENERATION = 96 << 20;

let cached: number | undefined;

/**
 * Bytes the old generation of this isolate may hold (heap_size_limit less the young
 * generation); a gigabyte where V8 does not say. Fixed when the isolate starts, so read once.
 */
export function oldSpaceLimit(): number {
  if (cached !== undefined) return cached;
  let oldSpace = 1 << 30;
  try {
    const limit = getHeapStatistics().heap_size_limit;
    oldSpace = limit > YOUNG_GENERATION ? limit - YOUNG_GENERATION : limit / 2;
  } catch {
    // Not available: assume a gigabyte.
  }
  return cached = oldSpace;
}
