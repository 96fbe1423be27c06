/**
 * The two task bodies a worker runs, on local files: a map task turns one input into nReduce
 * sorted partition runs; a reduce task merges the runs of one partition into its output file.
 * Where the input comes from and where the runs and the output go is the worker's business.
 */
import type { MapReduceApp } from "./app.ts";
import { MapOutput, type MapOutputOptions, type MapOutputStats } from "./map_output.ts";
import { reduceRuns, type ReduceStats } from "./merge.ts";
import { BLOCK_SIZE, RecordReader, syncFileSink } from "./record_format.ts";
import { ChecksummedSource, CorruptInputError } from "./checked_source.ts";
import { type Checksum, IntegrityError } from "./transfer.ts";
import { errorMessage } from "../util/errors.ts";

/** Where a map task's partitions go. */
export interface MapTaskOptions {
  nReduce: number;
  /** Final path of partition r's run (written under a temporary name, then renamed). */
  partitionPath: (r: number) => string;
  /** False when the caller commits the partitions' directory itself (see MapOutputOptions). */
  renameIntoPlace?: boolean;
  /** Directory for spill files; the same file system as the partitions. */
  spillDir: string;
  /** Spill bound in estimated bytes (default: MapOutput's, from the heap limit). */
  memoryLimit?: number;
  /** Called now and then while the app emits (see MapOutputOptions.onProgress). */
  onProgress?: () => void;
}

/**
 * Runs the app's map (either form) on one input and writes every partition's sorted run; emitted
 * pairs are combined as they come when the app has a combiner. On failure no partition is left
 * in place (spills and temporaries are removed).
 */
export function runMap(
  app: MapReduceApp,
  filename: string,
  contents: string,
  options: MapTaskOptions,
): Promise<MapOutputStats> {
  return runMapInputs(app, [Promise.resolve({ filename, contents })], options);
}

/**
 * Like runMap, over several inputs (files) in order, into one output: map() is called once per
 * input, and each input's contents are read (awaited) only when its turn comes, so one string is
 * held at a time.
 */
export async function runMapInputs(
  app: MapReduceApp,
  inputs: Iterable<Promise<{ filename: string; contents: string }>>,
  options: MapTaskOptions,
): Promise<MapOutputStats> {
  const outputOptions: MapOutputOptions = {
    nReduce: options.nReduce,
    combine: app.combine,
    partitionPath: options.partitionPath,
    renameIntoPlace: options.renameIntoPlace,
    spillDir: options.spillDir,
    memoryLimit: options.memoryLimit,
    onProgress: options.onProgress,
  };
  // Taken just before the app's first call, not before the first input is read, and paused
  // while later inputs are read: an emit an earlier task's app kept and calls from a timer then
  // finds this output idle, finished or paused, never taking pairs (no timer fires during a
  // synchronous map call).
  let output: MapOutput | undefined;
  let synchronous = true;
  try {
    for (const next of inputs) {
      // No app call runs while the next input is read: an emit then (from an app's timer) is
      // refused, as it could be an earlier task's, whose output this one may be, reused.
      output?.pause();
      const { filename, contents } = await next;
      output?.resume();
      output ??= takeOutput(outputOptions);
      const result = app.mapEmit(filename, contents, output.emit);
      if (result instanceof Promise) {
        synchronous = false;
        await result;
      }
    }
  } catch (err) {
    if (output !== undefined) {
      await output.discard();
      if (synchronous) putOutput(output);
    }
    throw err;
  }
  output ??= takeOutput(outputOptions);
  try {
    return await output.finish();
  } finally {
    if (synchronous) putOutput(output);
  }
}

/**
 * Finished map outputs, kept for the next map task of this isolate (a task thread runs maps one
 * at a time, so this holds one; tests running maps side by side get one output each). See
 * MapOutput for why reusing one matters to the JIT.
 */
const idleOutputs: MapOutput[] = [];
const IDLE_OUTPUTS = 2;

function takeOutput(options: MapOutputOptions): MapOutput {
  let output = idleOutputs.pop();
  // One an app emitted into while it waited here (from a timer of its task) is dropped.
  while (output !== undefined && !output.reusable) output = idleOutputs.pop();
  if (output === undefined) return new MapOutput(options);
  output.reset(options);
  return output;
}

/**
 * Keeps `output` for reuse unless its app could still emit into it: an app whose map returned
 * a promise may go on emitting from a continuation after it settled, and an output an app
 * emitted into after it finished has been kept by that app. Such an output is dropped, so a
 * stray emit keeps failing (the map task finished) instead of landing in another task.
 */
function putOutput(output: MapOutput): void {
  if (output.reusable && idleOutputs.length < IDLE_OUTPUTS) idleOutputs.push(output);
}

/** How runReduce checks its inputs and keeps its output. */
export interface ReduceOptions {
  /**
   * Per input, the length and CRC-32C it must have (undefined: not checked, e.g. a fetched copy
   * already checked in transit). A mismatch, or a checked input that cannot be opened, throws
   * CorruptInputError naming the input.
   */
  checks?: (Checksum | undefined)[];
  /** Fsync the output before returning (it is committed by a rename, not copied). */
  sync?: boolean;
}

/**
 * Merges the sorted runs at `inputs` (one partition of every map task) and writes the reduce
 * output to `outputPath`, one `<key> <value>` line per key in byte order of keys. Synced only
 * with `options.sync`: otherwise the caller uploads the output and the receiver makes its copy
 * durable; this writes it whole or throws. `onProgress` is called now and then as records are
 * read. A failure while some checked input does not match its checksum throws
 * CorruptInputError for that input instead: corruption explains whatever else broke.
 */
export async function runReduce(
  app: MapReduceApp,
  inputs: string[],
  outputPath: string,
  onProgress?: () => void,
  options: ReduceOptions = {},
): Promise<ReduceStats & { bytesRead: number }> {
  const files: Deno.FsFile[] = [];
  const sources: (ChecksummedSource | undefined)[] = [];
  try {
    // Opened, read and written with blocking calls, as a map task writes its runs: the inputs
    // and the output are local files, where a call takes microseconds, and this task's thread
    // has nothing else to do meanwhile; an awaited call costs a round trip through the
    // runtime's thread pool (1-5 ms for a reduce's opens on a loaded 2-core host).
    for (const [i, path] of inputs.entries()) {
      try {
        files.push(Deno.openSync(path));
      } catch (err) {
        // A checked input is a map's output read in place: gone is as unusable as damaged.
        if (options.checks?.[i] === undefined) throw err;
        throw new CorruptInputError(i, `Cannot read ${path}: ${errorMessage(err)}`);
      }
    }
    let bytesRead = 0;
    const readers: RecordReader[] = [];
    for (const [i, file] of files.entries()) {
      const check = options.checks?.[i];
      const size = check?.length ?? file.statSync().size;
      const source = check && new ChecksummedSource(file, check, inputs[i]);
      sources.push(source);
      bytesRead += size;
      // A run smaller than a block gets a block its size (plus room to see the end): a reduce
      // over many small runs would otherwise allocate and zero a megabyte per run.
      readers.push(new RecordReader(source ?? file, inputs[i], Math.min(BLOCK_SIZE, size + 64)));
    }
    const out = Deno.openSync(outputPath, { write: true, create: true, truncate: true });
    try {
      const stats = await reduceRuns(readers, app.reduce, syncFileSink(out), onProgress);
      // A reader stops at its end marker: whatever the announced length says lies past it is
      // read and checked too (a file damaged after its end marker is not the mapper's file).
      for (const source of sources) if (source && !source.verified) await source.finish();
      if (options.sync) out.syncSync();
      return { ...stats, bytesRead };
    } finally {
      out.close();
    }
  } catch (err) {
    throw await blameCorruptInput(sources, err);
  } finally {
    for (const file of files) file.close();
  }
}

/** The first checked input that fails its check, as CorruptInputError; else `err` itself. */
async function blameCorruptInput(
  sources: (ChecksummedSource | undefined)[],
  err: unknown,
): Promise<unknown> {
  if (err instanceof CorruptInputError) return err;
  for (const [i, source] of sources.entries()) {
    if (source === undefined || source.verified) continue;
    try {
      await source.finish();
    } catch (damage) {
      if (damage instanceof IntegrityError) return new CorruptInputError(i, damage.message);
      // Unreadable now (removed meanwhile): the original error says more.
    }
  }
  return err;
}
