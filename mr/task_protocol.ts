/**
 * The messages between a worker process and its task thread, and the one function that turns a
 * task request into a reply (used in the thread, and in-process where no thread can be started).
 */
import { join } from "node:path";
import type { MapReduceApp } from "./app.ts";
import type { runMapInputs, runReduce } from "./engine.ts";
import { partitionFileName } from "./partition.ts";
import { readRange } from "./local_input.ts";
import { CorruptInputError } from "./checked_source.ts";

/** Bytes a task read and wrote, as reported to the coordinator. */
export interface EngineIo {
  bytesRead: number;
  bytesWritten: number;
  /** A map's partitions in order: length and CRC-32C of each, as written. */
  partitions?: { length: number; crc: number }[];
}

/** Worker -> task thread. */
export type TaskRequest =
  | { type: "load"; appPath: string }
  | {
    type: "map";
    id: number;
    /** The split's file name as map() receives it. */
    filename: string;
    /** Where the fetched split bytes are (or the input file, with `range`). */
    splitPath: string;
    /** The split is bytes [offset, offset + length) of splitPath (a local input). */
    range?: { offset: number; length: number };
    /**
     * Several inputs for one task (mr run's grouped small files), mapped in this order into one
     * output; when given, filename, splitPath and range are those of the first.
     */
    inputs?: MapInput[];
    nReduce: number;
    /** Directory to write part-<r> files into. */
    dir: string;
  }
  | {
    type: "reduce";
    id: number;
    inputs: string[];
    output: string;
    /** Per input, the length and CRC-32C to check it against as it is read (null: none). */
    checks?: ({ length: number; crc: number } | null)[];
    /** Fsync the output before replying. */
    sync?: boolean;
  };

/** One input of a map task: map() gets `filename` and the bytes at splitPath (in `range`). */
export interface MapInput {
  filename: string;
  splitPath: string;
  range?: { offset: number; length: number };
}

/** Task thread -> worker. */
export type TaskReply =
  | { type: "loaded" }
  | { type: "loadError"; message: string }
  | { type: "done"; id: number; io: EngineIo }
  /** `corruptInput`: the index of a reduce input that failed its check (the app is not at fault). */
  | { type: "failed"; id: number; error: string; corruptInput?: number }
  /** The running task is making progress (sent at most every PROGRESS_MS). */
  | { type: "progress"; id: number }
  | { type: "exited" };

/** The least time between two progress replies of a task thread. */
export const PROGRESS_MS = 500;

/** The engine's map step (engine.ts's runMapInputs, or a stand-in in tests). */
export type MapStep = typeof runMapInputs;
/** The engine's reduce step (engine.ts's runReduce). */
export type ReduceStep = typeof runReduce;

const utf8 = new TextDecoder();

/**
 * One input as the string map() gets. The bytes are dropped here, before the map runs: held
 * beside their string for the whole map they would double the input's share of worker memory.
 */
async function readInput(input: MapInput): Promise<{ text: string; bytesRead: number }> {
  const data = input.range
    ? await readRange(input.splitPath, input.range.offset, input.range.length)
    : await Deno.readFile(input.splitPath);
  return { text: utf8.decode(data), bytesRead: data.length };
}

/** The inputs' contents in order, each read only when the engine asks for the next one. */
function* lazily(
  inputs: MapInput[],
  count: (bytes: number) => void,
): Generator<Promise<{ filename: string; contents: string }>> {
  for (const input of inputs) {
    yield readInput(input).then(({ text, bytesRead }) => {
      count(bytesRead);
      return { filename: input.filename, contents: text };
    });
  }
}

/**
 * Runs one map or reduce request with the app; app exceptions become a "failed" reply.
 * `onProgress` is called now and then while the app emits pairs or reduces keys.
 */
export async function handleTaskRequest(
  app: MapReduceApp,
  request: Exclude<TaskRequest, { type: "load" }>,
  map: MapStep,
  reduce: ReduceStep,
  onProgress?: () => void,
): Promise<TaskReply> {
  try {
    if (request.type === "map") {
      const inputs = request.inputs ??
        [{ filename: request.filename, splitPath: request.splitPath, range: request.range }];
      let bytesRead = 0;
      const stats = await map(app, lazily(inputs, (n) => (bytesRead += n)), {
        nReduce: request.nReduce,
        partitionPath: (r) => join(request.dir, partitionFileName(r)),
        spillDir: request.dir,
        // The worker renames the attempt's whole directory into place once the map is done.
        renameIntoPlace: false,
        onProgress,
      });
      return {
        type: "done",
        id: request.id,
        io: {
          bytesRead,
          bytesWritten: stats.bytesWritten,
          partitions: stats.partitions,
        },
      };
    }
    const stats = await reduce(app, request.inputs, request.output, onProgress, {
      checks: request.checks?.map((check) => check ?? undefined),
      sync: request.sync,
    });
    return {
      type: "done",
      id: request.id,
      io: { bytesRead: stats.bytesRead, bytesWritten: stats.bytesWritten },
    };
  } catch (err) {
    const error = err instanceof Error ? `${err.name}: ${err.message}` : `Thrown value: ${err}`;
    if (err instanceof CorruptInputError) {
      return { type: "failed", id: request.id, error, corruptInput: err.input };
    }
    return { type: "failed", id: request.id, error };
  }
}
