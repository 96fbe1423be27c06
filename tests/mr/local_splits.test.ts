/** `mr run` picks a split size that gives each worker several map tasks of a large input. */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  localSplitSize,
  MAX_LOCAL_SPLIT_SIZE,
  MIN_LOCAL_SPLIT_SIZE,
  SPLITS_PER_WORKER,
} from "../../mr/splits.ts";
import { app, mergedOutput, raftmr, reference, withTempDir } from "./helpers.ts";

const MIB = 1024 * 1024;

Deno.test("localSplitSize aims at several splits per worker, within bounds", () => {
  assert.equal(localSplitSize(64 * MIB, 2), 64 * MIB / (2 * SPLITS_PER_WORKER));
  assert.equal(localSplitSize(1024 * MIB, 2), MAX_LOCAL_SPLIT_SIZE);
  assert.equal(localSplitSize(1 * MIB, 2), MIN_LOCAL_SPLIT_SIZE);
  assert.equal(localSplitSize(0, 1), MIN_LOCAL_SPLIT_SIZE);
  for (const workers of [1, 2, 3]) {
    const total = 150 * MIB;
    const splits = Math.ceil(total / localSplitSize(total, workers));
    assert.ok(splits >= SPLITS_PER_WORKER * workers, `${workers} workers: ${splits} splits`);
  }
});

Deno.test("mr run cuts one large input into several splits and still counts right", async () => {
  await withTempDir(async (dir) => {
    // 12 MiB in one file, one worker: 4 MiB splits, so 3 map tasks instead of 1.
    const line = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu\n";
    await Deno.writeTextFile(join(dir, "big.txt"), line.repeat(Math.ceil(12 * MIB / line.length)));
    const out = await raftmr(
      ["mr", "run", "--app", app("wc"), "--workers", "1", "--reduce", "2", "big.txt"],
      dir,
    ).done;
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stderr, /^mr run: 1 input files in 3 splits, 2 reduce tasks, 1 workers$/m);
    assert.deepEqual(await mergedOutput(dir), await reference("wc", dir, ["big.txt"]));
  });
});
