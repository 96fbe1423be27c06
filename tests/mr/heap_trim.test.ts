/** A task thread's heap is collected between tasks once it has grown, and only then. */
import assert from "node:assert/strict";
import { TRIM_BYTES, trimHeap } from "../../mr/heap_trim.ts";

const MIB = 1024 * 1024;

Deno.test("trimHeap leaves a small heap alone and collects what a large task left", () => {
  const small = Deno.memoryUsage();
  if (small.heapTotal + small.external <= TRIM_BYTES) assert.equal(trimHeap(), false);
  // What a map leaves behind: its split's bytes, garbage once it returned.
  let split: Uint8Array[] | undefined = Array.from({ length: 16 }, () => new Uint8Array(8 * MIB));
  split[15][0] = 1;
  split = undefined;
  const before = Deno.memoryUsage();
  assert.ok(before.heapTotal + before.external > TRIM_BYTES, "the garbage is still counted");
  assert.equal(trimHeap(), true);
  const after = Deno.memoryUsage();
  assert.ok(
    after.external < before.external - 64 * MIB,
    `external memory ${Math.round(before.external / MIB)} -> ${
      Math.round(after.external / MIB)
    } MiB`,
  );
});
