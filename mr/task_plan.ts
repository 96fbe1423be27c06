/**
 * The map tasks of `mr run` with several workers, planned so the map phase ends evenly. Reduces
 * start only when the last map is done (paper §3.1), so every worker idles while the slowest
 * finishes its last map; with tasks of one size that wait is up to a whole task. Here the tasks
 * are handed out largest first and shrink by half from one round of hand-outs (one task per
 * worker) to the next, so the last round is small and the workers' last maps end close together.
 *
 * This is factoring (Hummel, Schonberg and Flynn, 1992), the refinement of guided
 * self-scheduling for loops: each round hands out about half of what remains. Unlike factoring
 * it keeps the task count of a plan with equal tasks (SPLITS_PER_WORKER rounds, more for inputs
 * larger than that many capped tasks hold) instead of halving down to a minimum size, because a
 * map task's fixed cost is high here: its table written out sorted as R runs that every reduce
 * then merges, measured at about 70 ms of CPU per task on the benchmark's corpus, more than a
 * smaller last round would save.
 *
 * Tasks are cut from the inputs taken end to end: a task ends at the first line end at or after
 * its share of the bytes, so files are cut inside (line-aligned, like any split) or grouped
 * whole, as the sizes need.
 */
import { fileReader, lineEnd, MAX_SPLIT_BYTES, type Split, SplitError } from "./splits.ts";

/** One input file: the name map() is told, where it is opened, and its size. */
export interface PlanInput {
  file: string;
  path: string;
  size: number;
}

/** Rounds of hand-outs (one task per worker each) a plan has at least. */
export const MIN_ROUNDS = 4;

/**
 * A task boundary is not put within this many bytes of a file's start or end: a sliver of a
 * file would cost a piece (a read, a map() call) and change nothing.
 */
export const MIN_PIECE_BYTES = 64 * 1024;

/**
 * The byte sizes of the map tasks, in hand-out order, for `total` bytes and `workers` workers:
 * rounds of `workers` equal tasks, each round half the size of the one before, none larger than
 * `maxBytes`; at least MIN_ROUNDS rounds, and one more than the rounds of `maxBytes` the input
 * needs (so a large input ends with a round of smaller tasks too). The sizes sum to `total`.
 */
export function planTaskSizes(total: number, workers: number, maxBytes: number): number[] {
  if (!(Number.isSafeInteger(workers) && workers >= 1)) {
    throw new RangeError(`Workers must be a positive integer: got ${workers}`);
  }
  if (!(maxBytes > 0)) throw new RangeError(`Task size must be positive: got ${maxBytes}`);
  if (total <= 0) return [0];
  const perWorker = total / workers;
  const rounds = Math.max(MIN_ROUNDS, Math.ceil(perWorker / maxBytes) + 1);
  // Round k of `rounds` (0 = first) is min(maxBytes, last * 2^(rounds - 1 - k)); the sum over
  // the rounds grows with `last`, so bisection finds the `last` that makes it perWorker.
  const round = (last: number, k: number) => Math.min(maxBytes, last * 2 ** (rounds - 1 - k));
  const sum = (last: number) => {
    let bytes = 0;
    for (let k = 0; k < rounds; k++) bytes += round(last, k);
    return bytes;
  };
  let low = 0;
  let high = maxBytes;
  for (let i = 0; i < 100 && high - low > 1e-6; i++) {
    const mid = (low + high) / 2;
    if (sum(mid) < perWorker) low = mid;
    else high = mid;
  }
  const sizes: number[] = [];
  for (let k = 0; k < rounds; k++) {
    for (let w = 0; w < workers; w++) sizes.push(round(high, k) * (total / (workers * sum(high))));
  }
  return sizes;
}

/** A plan: the line-aligned pieces of the inputs, and per task the indices of its pieces. */
export interface TaskPlan {
  splits: Split[];
  groups: number[][];
}

/**
 * Cuts `inputs` (taken end to end) into tasks of about `sizes` bytes each, in order: a task
 * ends just after the first line end at or after its cumulative share, or at the end of a file
 * when that is nearer than MIN_PIECE_BYTES (so is a task's start). `lineEndAt(input, position)`
 * says where the line holding that byte of that input ends. Every byte of every input is in
 * exactly one piece, in order, and an empty input is a piece of its own, so map() sees every
 * input. Tasks a long line left empty are dropped. Throws SplitError for a piece longer than
 * `maxSplit`.
 */
export async function cutTasks(
  inputs: PlanInput[],
  sizes: number[],
  lineEndAt: (input: number, position: number) => Promise<number>,
  maxSplit = MAX_SPLIT_BYTES,
): Promise<TaskPlan> {
  // Where each task ends, as an offset into the inputs taken end to end.
  const ends: number[] = [];
  let sum = 0;
  for (const size of sizes) ends.push(Math.round(sum += size));
  const total = inputs.reduce((n, input) => n + input.size, 0);
  ends[ends.length - 1] = total;
  const pieces: { input: number; offset: number; length: number; task: number }[] = [];
  let task = 0;
  let start = 0; // the current input's offset in the whole
  for (const [i, input] of inputs.entries()) {
    let position = 0;
    do {
      // Tasks that end at or before this point are complete.
      while (task < ends.length - 1 && ends[task] <= start + position) task++;
      const wanted = ends[task] - start;
      let cut: number;
      if (wanted >= input.size - MIN_PIECE_BYTES) {
        cut = input.size; // the task takes the rest of this input, maybe more
      } else if (wanted - position < MIN_PIECE_BYTES && position === 0) {
        task++; // the task ends where this input starts: no sliver
        continue;
      } else {
        cut = await lineEndAt(i, Math.max(position, wanted - 1));
        if (cut > input.size - MIN_PIECE_BYTES) cut = input.size;
      }
      pieces.push({ input: i, offset: position, length: cut - position, task });
      // A cut inside the input ends the task: the rest goes to the next.
      if (cut < input.size) task++;
      position = cut;
    } while (position < input.size);
    start += input.size;
  }
  const parts = new Array<number>(inputs.length).fill(0);
  for (const piece of pieces) parts[piece.input]++;
  const splits: Split[] = [];
  const groups: number[][] = [];
  let last = -1;
  let part = 0;
  for (const [k, piece] of pieces.entries()) {
    const input = inputs[piece.input];
    if (piece.length > maxSplit) {
      throw new SplitError(
        `Cannot split ${input.file}: the line at byte ${piece.offset} makes a split of ` +
          `${piece.length} bytes, more than the ${maxSplit} bytes one map task can hold`,
      );
    }
    part = k > 0 && pieces[k - 1].input === piece.input ? part + 1 : 0;
    splits.push({
      file: input.file,
      path: input.path,
      offset: piece.offset,
      length: piece.length,
      part,
      parts: parts[piece.input],
    });
    if (piece.task !== last) groups.push([]);
    last = piece.task;
    groups.at(-1)!.push(splits.length - 1);
  }
  return { splits, groups };
}

/**
 * Plans the map tasks of `files` for `workers` workers (planTaskSizes, then cutTasks over the
 * files themselves), no task larger than about `maxBytes`.
 */
export async function planLocalTasks(
  files: { file: string; path: string }[],
  workers: number,
  maxBytes: number,
  maxSplit = MAX_SPLIT_BYTES,
): Promise<TaskPlan> {
  const inputs: PlanInput[] = [];
  for (const { file, path } of files) {
    inputs.push({ file, path, size: (await Deno.stat(path)).size });
  }
  const total = inputs.reduce((n, input) => n + input.size, 0);
  const sizes = planTaskSizes(total, workers, maxBytes);
  const handles = new Map<number, Deno.FsFile>();
  try {
    return await cutTasks(inputs, sizes, async (i, position) => {
      let handle = handles.get(i);
      if (!handle) handles.set(i, handle = await Deno.open(inputs[i].path, { read: true }));
      return await lineEnd(position, inputs[i].size, fileReader(handle));
    }, maxSplit);
  } finally {
    for (const handle of handles.values()) handle.close();
  }
}
