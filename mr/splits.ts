/**
 * Line-aligned input splits. The coordinator cuts each input file into pieces of about
 * `splitSize` bytes, each ending just after a newline (or at the end of the file), so a split
 * never cuts a line, and so never a UTF-8 sequence (0x0A never occurs inside one) nor a CRLF.
 *
 * Hadoop's LineRecordReader gets the same result the other way round: each reader starts at a
 * byte offset, skips to the first line start and reads past its end. We cut at the coordinator
 * instead, because it is the only process that has the file: a worker is sent exactly the bytes
 * of whole lines and nothing it must skip.
 */

/** One map task's input: bytes [offset, offset + length) of `file`. */
export interface Split {
  /** The file's name as given on the command line (what `map` receives). */
  file: string;
  /** Where the file is opened (the name, or its resolved path). */
  path: string;
  offset: number;
  length: number;
  /** Index of this split among the file's splits, and how many the file has. */
  part: number;
  parts: number;
}

/** The default split size: 64 MiB, the MapReduce paper's (§3.1) and HDFS's block size. */
export const DEFAULT_SPLIT_SIZE = 64 * 1024 * 1024;

/** Splits per worker `mr run` aims for when it picks the split size. */
export const SPLITS_PER_WORKER = 4;
/** The smallest split size `mr run` picks: below it a map's fixed costs start to show. */
export const MIN_LOCAL_SPLIT_SIZE = 4 * 1024 * 1024;
/**
 * The largest split size `mr run` picks. A map holds its split twice (bytes, then the string
 * `map` gets) beside its table, so the split size sets a worker's memory: at 16 MiB a worker stays
 * near 200 MiB whatever the input, and a map's fixed cost (thread hand-off, R partition files,
 * sorting) stays a few percent of its work.
 */
export const MAX_LOCAL_SPLIT_SIZE = 16 * 1024 * 1024;

/**
 * The split size `mr run` uses when none is given: about SPLITS_PER_WORKER splits per worker,
 * between MIN_LOCAL_SPLIT_SIZE and MAX_LOCAL_SPLIT_SIZE. Many more map tasks than workers keep
 * every core busy to the end (paper §3.5: M much larger than the number of machines balances
 * the load); with one split per worker, the worker that draws the larger or slower one finishes
 * alone while the others idle.
 */
export function localSplitSize(totalBytes: number, workers: number): number {
  const wanted = Math.ceil(totalBytes / (SPLITS_PER_WORKER * Math.max(1, workers)));
  return Math.min(MAX_LOCAL_SPLIT_SIZE, Math.max(MIN_LOCAL_SPLIT_SIZE, wanted));
}

const SCAN_CHUNK = 64 * 1024;

/**
 * The largest split a map task can hold: map() gets its split as one string, and V8 caps a
 * string at about 2^29 one-byte characters (half that for text outside Latin-1), so a longer line
 * than this cannot be mapped at all and is refused when the job starts.
 */
export const MAX_SPLIT_BYTES = 256 * 1024 * 1024;

/** A file cannot be cut into splits a map task can hold. */
export class SplitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SplitError";
  }
}

/**
 * Returns the ends of the splits of a file of `size` bytes, reading it through `readAt` only
 * near each cut: a cut is made just after the first newline at or after `start + splitSize - 1`,
 * so a split is at least splitSize bytes (the last one excepted) and a line longer than the split
 * size stays whole. An empty file gives one empty split, so `map` sees every input file once, as
 * in a sequential run.
 */
export async function splitEnds(
  size: number,
  splitSize: number,
  readAt: (buffer: Uint8Array, position: number) => Promise<number>,
): Promise<number[]> {
  if (!(Number.isSafeInteger(splitSize) && splitSize > 0)) {
    throw new RangeError(`Split size must be a positive integer: got ${splitSize}`);
  }
  const ends: number[] = [];
  const buffer = new Uint8Array(SCAN_CHUNK);
  let start = 0;
  while (start + splitSize < size) {
    const end = await lineEnd(start + splitSize - 1, size, readAt, buffer);
    ends.push(end);
    start = end;
  }
  if (start < size || ends.length === 0) ends.push(size);
  return ends;
}

/**
 * Where the line holding byte `position` of a file of `size` bytes ends: just after the first
 * newline at or after `position`, or `size` when there is none. Reads through `readAt` from
 * `position` on, a buffer at a time.
 */
export async function lineEnd(
  position: number,
  size: number,
  readAt: (buffer: Uint8Array, position: number) => Promise<number>,
  buffer = new Uint8Array(SCAN_CHUNK),
): Promise<number> {
  while (position < size) {
    const n = await readAt(buffer, position);
    if (n <= 0) break;
    const i = buffer.subarray(0, n).indexOf(0x0a);
    if (i >= 0) return position + i + 1;
    position += n;
  }
  return size;
}

/** A readAt for lineEnd and splitEnds over an open file: fills `buffer` from `position`. */
export function fileReader(
  handle: Deno.FsFile,
): (buffer: Uint8Array, position: number) => Promise<number> {
  return async (buffer, position) => {
    await handle.seek(position, Deno.SeekMode.Start);
    let filled = 0;
    while (filled < buffer.length) {
      const n = await handle.read(buffer.subarray(filled));
      if (n === null) break;
      filled += n;
    }
    return filled;
  };
}

/**
 * Cuts `file` (opened at `path`) into line-aligned splits of about `splitSize` bytes; throws
 * SplitError when a line makes a split longer than `maxSplit` bytes.
 */
export async function splitFile(
  file: string,
  path: string,
  splitSize: number,
  maxSplit = MAX_SPLIT_BYTES,
): Promise<Split[]> {
  const handle = await Deno.open(path, { read: true });
  let ends: number[];
  try {
    const size = (await handle.stat()).size;
    ends = await splitEnds(size, splitSize, fileReader(handle));
  } finally {
    handle.close();
  }
  let offset = 0;
  for (const end of ends) {
    if (end - offset > maxSplit) {
      throw new SplitError(
        `Cannot split ${file}: the line at byte ${offset} makes a split of ${end - offset} ` +
          `bytes, more than the ${maxSplit} bytes one map task can hold`,
      );
    }
    offset = end;
  }
  offset = 0;
  return ends.map((end, part) => {
    const split = { file, path, offset, length: end - offset, part, parts: ends.length };
    offset = end;
    return split;
  });
}

/** Parses a size such as "64MiB", "8m", "512KiB" or "1048576" (bytes); throws RangeError. */
export function parseSize(raw: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(raw.trim());
  if (!match) throw new RangeError(`expected a size such as 64MiB or 8m: got "${raw}"`);
  const unit = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[
    match[2].toLowerCase() as "" | "k" | "m" | "g" | "t"
  ];
  const bytes = Math.floor(Number(match[1]) * unit);
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new RangeError(`expected a size of at least 1 byte: got "${raw}"`);
  }
  return bytes;
}

/**
 * Groups splits into map tasks for `mr run`: consecutive whole files are mapped by one task
 * until it holds about total / minTasks bytes (Hadoop's CombineFileInputFormat), so a job over
 * many small files does not pay a map task's fixed cost (its table written out sorted as R
 * runs, a hand-off to the task thread, a report) per file: measured on the benchmark's 4 MiB
 * files, two files per task took 18% less CPU than one. A file cut in several splits keeps a
 * task per split, and there is no grouping at all unless there are more than minTasks splits,
 * so every worker still gets several tasks, nor past `maxBytes` per task: a task's input is
 * what a worker holds while it maps (one file's string at a time, but the garbage of the files
 * before it is collected only between tasks). Returns, per task, the indices of its splits.
 */
export function groupSplits(splits: Split[], minTasks: number, maxBytes = Infinity): number[][] {
  if (splits.length <= minTasks) return splits.map((_, i) => [i]);
  const total = splits.reduce((sum, split) => sum + split.length, 0);
  const target = total / Math.max(1, minTasks);
  const groups: number[][] = [];
  let group: number[] = [];
  let bytes = 0;
  for (let i = 0; i < splits.length; i++) {
    const split = splits[i];
    const whole = split.parts === 1;
    // Close the group before a piece of a larger file, or when this file would take it past a
    // quarter over the target (so there are at least about 0.8 x minTasks tasks).
    const limit = Math.min(1.25 * target, maxBytes);
    if (group.length > 0 && (!whole || bytes + split.length > limit)) {
      groups.push(group);
      group = [];
      bytes = 0;
    }
    group.push(i);
    bytes += split.length;
    if (!whole) {
      groups.push(group);
      group = [];
      bytes = 0;
    }
  }
  if (group.length > 0) groups.push(group);
  return groups;
}
