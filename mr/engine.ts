/**
 * The two task bodies a worker runs, on local files: a map task turns one input into nReduce
 * sorted partition runs; a reduce task merges the runs of one partition into its output file.
 * Where the input comes from and where the runs and the output go is the worker's business.
 */
import type { MapReduceApp } from "./app.ts";
import { MapOutput, type MapOutputStats } from "./map_output.ts";
import { reduceRuns, type ReduceStats } from "./merge.ts";
import { BLOCK_SIZE, fileSink, RecordReader } from "./record_format.ts";

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
  const output = new MapOutput({
    nReduce: options.nReduce,
    combine: app.combine,
    partitionPath: options.partitionPath,
    renameIntoPlace: options.renameIntoPlace,
    spillDir: options.spillDir,
    memoryLimit: options.memoryLimit,
    onProgress: options.onProgress,
  });
  try {
    for (const next of inputs) {
      const { filename, contents } = await next;
      const result = app.mapEmit(filename, contents, output.emit);
      if (result instanceof Promise) await result;
    }
  } catch (err) {
    await output.discard();
    throw err;
  }
  return await output.finish();
}

/**
 * Merges the sorted runs at `inputs` (one partition of every map task) and writes the reduce
 * output to `outputPath`, one `<key> <value>` line per key in byte order of keys. Not synced: the
 * caller renames (or uploads) the output and makes the copy it keeps durable; this writes it
 * whole or throws. `onProgress` is called now and then as records are read.
 */
export async function runReduce(
  app: MapReduceApp,
  inputs: string[],
  outputPath: string,
  onProgress?: () => void,
): Promise<ReduceStats & { bytesRead: number }> {
  const files: Deno.FsFile[] = [];
  try {
    let bytesRead = 0;
    const sizes: number[] = [];
    for (const path of inputs) {
      const file = await Deno.open(path);
      files.push(file);
      sizes.push((await file.stat()).size);
      bytesRead += sizes[sizes.length - 1];
    }
    // A run smaller than a block gets a block its size (plus room to see the end): a reduce
    // over many small runs would otherwise allocate and zero a megabyte per run.
    const readers = files.map((file, i) =>
      new RecordReader(file, inputs[i], Math.min(BLOCK_SIZE, sizes[i] + 64))
    );
    const out = await Deno.open(outputPath, { write: true, create: true, truncate: true });
    try {
      const stats = await reduceRuns(readers, app.reduce, fileSink(out), onProgress);
      return { ...stats, bytesRead };
    } finally {
      out.close();
    }
  } finally {
    for (const file of files) file.close();
  }
}
