/**
 * Map task plans of `mr run` with several workers: sizes halve round by round so the last round
 * is small; the inputs are cut at line ends into exactly those tasks, every byte once, in order.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  cutTasks,
  MIN_PIECE_BYTES,
  MIN_ROUNDS,
  type PlanInput,
  planLocalTasks,
  planTaskSizes,
} from "../../mr/task_plan.ts";
import { lineEnd, type Split, SplitError } from "../../mr/splits.ts";
import { app, mergedOutput, raftmr, reference, withTempDir, writeInputs } from "./helpers.ts";

const MIB = 1024 * 1024;
const KIB = 1024;

/** Checks the shape of a size plan and returns its rounds (one size per round). */
function checkSizes(sizes: number[], total: number, workers: number, max: number): number[] {
  const sum = sizes.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum - total) < 1e-3 * Math.max(1, total), `sizes sum to ${sum}, not ${total}`);
  assert.equal(sizes.length % workers, 0, "whole rounds");
  const rounds: number[] = [];
  for (let r = 0; r < sizes.length / workers; r++) {
    const round = sizes.slice(r * workers, (r + 1) * workers);
    assert.ok(round.every((s) => Math.abs(s - round[0]) < 1e-6), "one size per round");
    rounds.push(round[0]);
  }
  assert.ok(rounds.length >= MIN_ROUNDS, `${rounds.length} rounds`);
  rounds.forEach((size, r) => {
    assert.ok(size <= max * (1 + 1e-9), `round ${r} within the cap`);
    if (r === 0) return;
    // Half the round before, unless the round before was held down by the cap.
    const before = rounds[r - 1];
    if (before < max * (1 - 1e-9)) assert.ok(Math.abs(size - before / 2) < 1e-6 * before);
    else assert.ok(size <= before);
  });
  return rounds;
}

Deno.test("planTaskSizes: rounds halve to a small last round, capped, summing to the input", () => {
  // The benchmark's shape: 67 MiB, 2 workers, 16 MiB cap: 16, 10, 5, 2.5 MiB per round.
  const bench = checkSizes(planTaskSizes(67 * MIB, 2, 16 * MIB), 67 * MIB, 2, 16 * MIB);
  assert.equal(bench.length, MIN_ROUNDS, "as many tasks as equal splits of 4 per worker would be");
  assert.ok(bench.at(-1)! <= bench[0] / 4, `last round ${bench.at(-1)! / MIB} MiB`);
  for (const [total, workers] of [[1, 2], [20 * MIB, 2], [67 * MIB, 3], [256 * MIB, 2]]) {
    const rounds = checkSizes(planTaskSizes(total, workers, 16 * MIB), total, workers, 16 * MIB);
    assert.ok(rounds.at(-1)! <= rounds[0] / 2, `${total} bytes: a smaller last round`);
  }
  // A large input: as many capped rounds as it needs, plus a tail of smaller ones.
  const big = checkSizes(planTaskSizes(1024 * MIB, 2, 16 * MIB), 1024 * MIB, 2, 16 * MIB);
  assert.equal(big.length, 1024 / 16 / 2 + 1);
  assert.ok(big.at(-1)! <= 8 * MIB);
  assert.deepEqual(planTaskSizes(0, 2, 16 * MIB), [0], "empty inputs: one task");
  assert.throws(() => planTaskSizes(10, 0, 16 * MIB), RangeError);
});

/** Text of `bytes` bytes in lines of varied length (some multibyte characters). */
function text(bytes: number, seed: number): Uint8Array {
  const lines: string[] = [];
  let n = 0;
  for (let i = 0; n < bytes; i++) {
    const line = `${seed} line ${i} ${"wörd ".repeat((i * 7 + seed) % 23)}\n`;
    lines.push(line);
    n += new TextEncoder().encode(line).length;
  }
  return new TextEncoder().encode(lines.join("")).subarray(0, bytes);
}

/** Checks a plan against its inputs: every byte once, in order, cut at line ends only. */
function checkPlan(datas: Uint8Array[], names: string[], splits: Split[], groups: number[][]) {
  assert.deepEqual(groups.flat(), splits.map((_, i) => i), "every piece once, tasks in order");
  assert.ok(groups.every((g) => g.length > 0), "no empty task");
  for (const [f, data] of datas.entries()) {
    const pieces = splits.filter((s) => s.file === names[f]);
    assert.ok(pieces.length >= 1, `input ${f} is mapped`);
    let offset = 0;
    for (const [part, piece] of pieces.entries()) {
      assert.equal(piece.offset, offset, "no gap, no overlap");
      assert.equal(piece.part, part);
      assert.equal(piece.parts, pieces.length);
      const end = piece.offset + piece.length;
      if (end < data.length) {
        assert.equal(data[end - 1], 0x0a, "a cut inside a file is at a line end");
        assert.ok(data.length - end >= MIN_PIECE_BYTES, "no sliver left at the end");
      }
      offset = end;
    }
    assert.equal(offset, data.length, "the whole input");
  }
}

Deno.test("cutTasks: tasks of the planned sizes, cut at line ends, no slivers", async () => {
  const sizes = [300, 1200, 5, 0, 700, 150, 64].map((k) => k * KIB);
  const datas = sizes.map((size, i) => text(size, i));
  const names = sizes.map((_, i) => `in-${i}.txt`);
  const inputs: PlanInput[] = datas.map((d, i) => ({
    file: names[i],
    path: names[i],
    size: d.length,
  }));
  const total = datas.reduce((n, d) => n + d.length, 0);
  const lineEndAt = (i: number, position: number) =>
    lineEnd(position, datas[i].length, (buffer, at) => {
      const bytes = datas[i].subarray(at, at + buffer.length);
      buffer.set(bytes);
      return Promise.resolve(bytes.length);
    });
  const planned = planTaskSizes(total, 2, 1 * MIB);
  const { splits, groups } = await cutTasks(inputs, planned, lineEndAt);
  checkPlan(datas, names, splits, groups);
  // Each task ends near its share: within a line (under 200 bytes here) plus a sliver's reach.
  let wanted = 0;
  let got = 0;
  for (const [t, group] of groups.entries()) {
    wanted += planned[t];
    got += group.reduce((n, i) => n + splits[i].length, 0);
    assert.ok(Math.abs(got - wanted) <= MIN_PIECE_BYTES + 200, `task ${t}: ${got} vs ${wanted}`);
  }
  // The empty input is a piece of its own (map() sees every input).
  assert.equal(splits.filter((s) => s.file === "in-3.txt").length, 1);
  // A line longer than a map may hold is refused.
  await assert.rejects(cutTasks(inputs, planned, lineEndAt, 100 * KIB), SplitError);
});

Deno.test("planLocalTasks cuts real files; mr run with 2 workers counts them right", async () => {
  await withTempDir(async (dir) => {
    // One input large enough to be cut in several tasks, small ones, and an empty one.
    const names = await writeInputs(dir, 4, 300);
    await Deno.writeTextFile(
      join(dir, "big.txt"),
      (await Deno.readTextFile(join(dir, names[0]))).repeat(400),
    );
    await Deno.writeTextFile(join(dir, "empty.txt"), "");
    const all = ["big.txt", ...names, "empty.txt"];
    const plan = await planLocalTasks(
      all.map((f) => ({ file: f, path: join(dir, f) })),
      2,
      16 * MIB,
    );
    const datas = await Promise.all(all.map((f) => Deno.readFile(join(dir, f))));
    checkPlan(datas, all, plan.splits, plan.groups);
    assert.ok(plan.splits.filter((s) => s.file === "big.txt").length >= 3, "big.txt is cut");
    // The planned rounds, but for a boundary that fell within a sliver of a file's end.
    assert.ok(plan.groups.length <= 2 * MIN_ROUNDS && plan.groups.length > 4, "tasks");
    const out = await raftmr(
      ["mr", "run", "--app", app("wc"), "--workers", "2", "--reduce", "3", ...all],
      dir,
    ).done;
    assert.equal(out.code, 0, out.stderr);
    const planned = `${plan.groups.length} splits`;
    assert.match(
      out.stderr,
      new RegExp(`^mr run: 6 input files in ${planned}, 3 reduce tasks`, "m"),
    );
    assert.deepEqual(await mergedOutput(dir), await reference("wc", dir, all));
  });
});
