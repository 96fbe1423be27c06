/**
 * The map side of the engine: pairs emitted one at a time go into a hash table (combined there
 * when the app has a combiner), the table is written out as sorted runs whenever it outgrows a
 * memory bound (a spill), and finish() leaves one sorted run per partition, merging the spills.
 */
import { join } from "node:path";
import { partitionKeys } from "./partition.ts";
import {
  BLOCK_SIZE,
  type BlockSink,
  MAGIC,
  RecordReader,
  RecordWriter,
  syncFileSink,
} from "./record_format.ts";
import { sortKeys } from "./key_sort.ts";
import { crc32c } from "../util/crc32c.ts";
import { mergeGroups } from "./merge.ts";
import { combined, type Combiner, PairTable } from "./pair_table.ts";
import { oldSpaceLimit } from "./heap_limit.ts";

export type { Combiner } from "./pair_table.ts";

/** How a map task's output is shaped and where it goes. */
export interface MapOutputOptions {
  nReduce: number;
  combine?: Combiner;
  /** Final path of partition r's run. */
  partitionPath: (r: number) => string;
  /**
   * Write each partition under a temporary name and rename it into place (default true). A
   * caller that commits a whole directory of partitions with one rename passes false and saves
   * a rename per partition.
   */
  renameIntoPlace?: boolean;
  /** Directory for spill files (removed again by finish()); default: the partition's directory. */
  spillDir: string;
  /** Estimated bytes of table the map may hold before it spills (default: defaultMemoryLimit()). */
  memoryLimit?: number;
  /** Called every PROGRESS_EVERY pairs emitted or written out: the map is alive and working. */
  onProgress?: () => void;
}

/** Emitted pairs between two onProgress calls (a countdown costs nothing per pair). */
export const PROGRESS_EVERY = 1024;

/** What finish() wrote. */
export interface MapOutputStats {
  /** Bytes of the final partition runs. */
  bytesWritten: number;
  /** Records in the final partition runs. */
  records: number;
  /** Times the table was written out before finish(). */
  spills: number;
  /**
   * Each final partition's length and CRC-32C, computed from the blocks as they were written
   * (so the worker need not read its partitions back to announce their checksums).
   */
  partitions: Checksum[];
}

/** A partition file's length in bytes and CRC-32C. */
export interface Checksum {
  length: number;
  crc: number;
}

/** A sink that hands blocks on to `sink` and keeps the length and CRC-32C of all it was given. */
function checksummed(sink: BlockSink): { sink: BlockSink; sum: Checksum } {
  const sum = { length: 0, crc: 0 };
  return {
    sum,
    sink: (bytes) => {
      sum.crc = crc32c(bytes, sum.crc);
      sum.length += bytes.length;
      return sink(bytes);
    },
  };
}

/**
 * The spill bound when none is given: an eighth of the V8 old space, at most 64 MiB, so a worker
 * started with a small heap (`--v8-flags=--max-old-space-size=...`) spills early instead of dying.
 */
export function defaultMemoryLimit(): number {
  // Table entries live long enough to be promoted, so the old space is the budget that counts.
  return Math.max(256 << 10, Math.min(64 << 20, Math.floor(oldSpaceLimit() / 8)));
}

/**
 * The table's keys grouped by partition, each group in UTF-8 byte order: element r holds
 * partition r's keys. The partition is hashed once per distinct key here, never per emitted pair.
 */
function partitionOrder(table: PairTable, nReduce: number): string[][] {
  const keys = table.keys();
  const parts = new Int32Array(keys.length);
  const surrogates = partitionKeys(keys, nReduce, parts);
  const groups: string[][] = [];
  for (let r = 0; r < nReduce; r++) groups.push([]);
  for (let i = 0; i < keys.length; i++) groups[parts[i]].push(keys[i]);
  for (let r = 0; r < nReduce; r++) sortKeys(groups[r], surrogates);
  return groups;
}

let spillCounter = 0;

/**
 * Records #writeRun adds per call: short calls, so the JIT optimizes it as a function once
 * (called often) instead of compiling its loop on the stack (OSR) anew in most maps (a loop
 * over a whole partition: 5-10 such compiles a worker, 20-110 ms of background time each).
 */
const WRITE_CHUNK = 256;

/**
 * The first value of an output's options, never used: the constructor's #start() replaces it, a
 * second write that makes the field mutable (see MapOutput). Between tasks an output keeps the
 * last task's options.
 */
const DONE_OPTIONS: MapOutputOptions = {
  nReduce: 1,
  partitionPath: () => "",
  spillDir: "",
};
let scratch: Uint8Array | undefined;

/**
 * The one block every synchronous partition write fills (writes never interleave: they block):
 * a fresh megabyte per partition cost more than writing its records.
 */
function scratchBlock(): Uint8Array {
  return scratch ??= new Uint8Array(BLOCK_SIZE);
}

/**
 * A record writer that never writes: while it lives, the hidden class of record writers does.
 * V8 reaches the class an object's fields lead to from its constructor only weakly (map
 * transitions are weak references), so once every writer of a map task was gone the full
 * collection before the next map freed it, and the code compiled for writers (the write loop,
 * RecordWriter.add) was thrown away ("embedded weak objects cleared", 6-14 times a job) and
 * compiled again. Exported so that V8 keeps it: a module variable nothing reads is not kept.
 */
export const KEPT_WRITER = new RecordWriter(() => {}, new Uint8Array(MAGIC.length));

/**
 * Collects one map task's output. Pass `emit` to the app; call finish() once the app returned.
 * Memory holds at most about `memoryLimit` bytes of pairs whatever the input size. Once finished
 * or discarded, reset() makes it collect the next task's output, with the same `emit`.
 */
export class MapOutput {
  // Why reuse: a task thread runs a handful of maps, and V8 compiles the hot path (the app's
  // loop with emit, add and the table probe inlined) specialised to the objects it saw: the
  // `emit` closure, this output, its table. A new output per task is a new call target and new
  // embedded objects, and the old ones dying at the next GC throws that code away ("wrong call
  // target", "embedded weak objects cleared" deopts), so each map paid 20-40 ms of
  // recompilation. Reused, the same objects serve every task and the code compiled in the
  // first map stays valid (speculative code holds as long as what it saw stays the same).
  //
  // Fields written per task start with a different value than #start() gives them: V8 treats
  // a field as constant until its second, different write, and folds a constant field of an
  // object it embedded into optimized code. Two writes in the constructor make each field
  // mutable before any code is compiled, so resetting for the next task deopts nothing.
  #options: MapOutputOptions = DONE_OPTIONS;
  #limit = -1;
  readonly #table = new PairTable();
  #spills: string[][] = [];
  #finished = true;
  #countdown = 0;
  #writeCountdown = 0;
  /** Between two inputs of the task (pause()): an emit then is a stray one, and throws. */
  #paused = true;
  /** The progress countdown pause() set aside, for resume(). */
  #pausedCountdown = -1;
  /**
   * An emit came after finish() or while paused: an app kept `emit` past its map call, so this
   * is not reused.
   */
  #emittedLate = false;

  /** Starts an empty output for one map task. */
  constructor(options: MapOutputOptions) {
    this.#start(options);
  }

  /**
   * Makes a finished or discarded output collect another map task's output, as a new one
   * would; throws if this one is still collecting or an app emitted into it after it finished.
   */
  reset(options: MapOutputOptions): void {
    if (!this.reusable) throw new Error("Cannot reset a map output that is still in use");
    this.#start(options);
  }

  /** Whether reset() may be called: finished or discarded, and no emit came after that. */
  get reusable(): boolean {
    return this.#finished && !this.#emittedLate;
  }

  #start(options: MapOutputOptions): void {
    if (!Number.isInteger(options.nReduce) || options.nReduce < 1) {
      throw new RangeError(`nReduce must be a positive integer: got ${options.nReduce}`);
    }
    this.#options = options;
    this.#limit = options.memoryLimit ?? defaultMemoryLimit();
    this.#table.clear(options.combine);
    this.#spills = [];
    this.#finished = false;
    this.#paused = false;
    this.#pausedCountdown = 0;
    this.#countdown = PROGRESS_EVERY;
    this.#writeCountdown = PROGRESS_EVERY;
  }

  /**
   * Makes emit throw until resume(): the engine calls it while it waits for the task's next
   * input, when no call of the app's map is running. An emit then comes from a timer an app
   * left, perhaps an earlier task's (this output being reused, its `emit` is the same
   * function), and must not land in this task's output.
   */
  pause(): void {
    if (this.#paused || this.#finished) return;
    this.#paused = true;
    this.#pausedCountdown = this.#countdown;
    this.#countdown = 0;
  }

  /** Lets emit add pairs again after pause(). */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#countdown = this.#pausedCountdown;
  }

  /** Emits one pair; throws TypeError on a non-string key or value. Bound: pass it around freely. */
  readonly emit = (key: string, value: string): void => {
    // The per-pair work is the table's add, a countdown and one comparison; whether the task
    // has finished is checked only when the countdown runs out, which finish() makes it do.
    if (--this.#countdown <= 0) this.#checkpoint();
    const table = this.#table;
    table.add(key, value);
    if (table.bytes > this.#limit) this.#spill();
  };

  /** Every PROGRESS_EVERY pairs emitted (and on the first emit after finish(), which throws). */
  #checkpoint(): void {
    if (this.#finished || this.#paused) {
      this.#countdown = 0;
      this.#emittedLate = true;
      throw new Error(
        this.#finished
          ? "emit called after the map task finished"
          : "emit called outside a call of the app's map: between two inputs of its task",
      );
    }
    this.#countdown = PROGRESS_EVERY;
    // Called through .call: a progress callback is a new function per task, and V8 compiles a
    // call as a check for the one target it has seen there (deopting, "wrong call target", when
    // the next task's comes), but fn.call() as a call of whatever fn is (see mergeGroups).
    this.#options.onProgress?.call(undefined);
  }

  /**
   * Counts one pair written out; every PROGRESS_EVERY calls onProgress: writing out a table of
   * millions of values is progress too, not only emitting them.
   */
  #tick(): void {
    if (--this.#writeCountdown === 0) {
      this.#writeCountdown = PROGRESS_EVERY;
      this.#options.onProgress?.call(undefined); // Not speculated on: see #checkpoint.
    }
  }

  /** Writes the table as one run per partition: a spill (blocking: emit is synchronous). */
  #spill(): void {
    const n = ++spillCounter;
    const paths = Array.from(
      { length: this.#options.nReduce },
      (_, r) => join(this.#options.spillDir, `.spill-${Deno.pid}-${n}-${r}`),
    );
    this.#spills.push(paths);
    this.#writeTable(paths);
  }

  /**
   * Writes the table's keys of each partition, sorted by UTF-8 bytes, to `paths[r]`; a key's
   * values go out combined into one when there is a combiner, else one record per value.
   */
  #writeTable(paths: string[]): { bytes: number; records: number; sums: Checksum[] } {
    const nReduce = this.#options.nReduce;
    const table = this.#table;
    const groups = partitionOrder(table, nReduce);
    let bytes = 0;
    let records = 0;
    const sums: Checksum[] = [];
    for (let r = 0; r < nReduce; r++) {
      const file = Deno.openSync(paths[r], { write: true, create: true, truncate: true });
      try {
        const { sink, sum } = checksummed(syncFileSink(file));
        sums.push(sum);
        const writer = new RecordWriter(sink, scratchBlock());
        const keys = groups[r];
        for (let from = 0; from < keys.length; from += WRITE_CHUNK) {
          this.#writeRun(keys, from, Math.min(keys.length, from + WRITE_CHUNK), writer);
        }
        writer.close();
        bytes += writer.bytes;
        records += writer.records;
      } finally {
        file.close();
      }
    }
    table.clear(this.#options.combine);
    return { bytes, records, sums };
  }

  /**
   * Adds the records of `keys[from, to)` (sorted, all in the table) to `writer`. A function of
   * its own, called per WRITE_CHUNK records, so the JIT compiles just it and what it calls: the
   * loop inside #writeTable was compiled on the stack with the files, the checksums and the
   * partitioning around it, 6-10 times a worker at 10-50 ms of background compilation each.
   */
  #writeRun(keys: string[], from: number, to: number, writer: RecordWriter): void {
    const table = this.#table;
    for (let i = from; i < to; i++) {
      const key = keys[i];
      const entry = table.entryOf(key);
      // One value per key (always, with a combiner): no callback per record.
      const value = table.value(entry);
      if (value === undefined) {
        this.#writeValues(entry, writer);
      } else {
        writer.add(key, value);
        this.#tick();
      }
    }
  }

  /**
   * Adds a record per value of `entry` (no combiner, several values). Apart from #writeRun: a
   * closure in that loop would make each iteration allocate a context.
   */
  #writeValues(entry: number, writer: RecordWriter): void {
    this.#table.write(entry, (key, value) => {
      writer.add(key, value);
      this.#tick();
    });
  }

  /** Drops the output of a failed map: the table and every spill file. */
  async discard(): Promise<void> {
    this.#finished = true;
    this.#countdown = 0;
    // Emptied even without spills: a reused output must not keep the keys (and through them,
    // perhaps, the input string) of a task that is over.
    this.#table.clear(this.#options.combine);
    if (this.#spills.length === 0) return;
    const spills = this.#spills.flat();
    this.#spills = [];
    await Promise.all(spills.map((path) => Deno.remove(path).catch(() => {})));
  }

  /**
   * Writes every partition's final run (each one, even empty, so a reducer can tell a missing
   * output from an empty one) and removes the spills. Written under temporary names and renamed
   * into place, so a partition path holds a whole run or nothing.
   */
  async finish(): Promise<MapOutputStats> {
    if (this.#finished) throw new Error("finish called twice");
    this.#finished = true;
    this.#countdown = 0;
    const nReduce = this.#options.nReduce;
    const finals = Array.from({ length: nReduce }, (_, r) => this.#options.partitionPath(r));
    const rename = this.#options.renameIntoPlace ?? true;
    const temps = rename
      ? finals.map((path) => `${path}.${Deno.pid}.${++spillCounter}.tmp`)
      : finals;
    try {
      let stats: MapOutputStats;
      if (this.#spills.length === 0) {
        const { bytes, records, sums } = this.#writeTable(temps);
        stats = { bytesWritten: bytes, records, spills: 0, partitions: sums };
      } else {
        if (this.#table.size > 0) this.#spill();
        stats = { bytesWritten: 0, records: 0, spills: this.#spills.length, partitions: [] };
        for (let r = 0; r < nReduce; r++) {
          const written = await this.#mergeSpills(r, temps[r]);
          stats.bytesWritten += written.bytes;
          stats.records += written.records;
          stats.partitions.push(written.sum);
        }
      }
      if (rename) { for (let r = 0; r < nReduce; r++) Deno.renameSync(temps[r], finals[r]); }
      return stats;
    } catch (err) {
      await Promise.all(temps.map((path) => Deno.remove(path).catch(() => {})));
      throw err;
    } finally {
      await this.discard();
    }
  }

  /** Merges partition r of every spill into `out`, combining a key's values across spills. */
  async #mergeSpills(
    r: number,
    out: string,
  ): Promise<{ bytes: number; records: number; sum: Checksum }> {
    const combine = this.#options.combine;
    const inputs = await Promise.all(this.#spills.map((paths) => Deno.open(paths[r])));
    const file = await Deno.open(out, { write: true, create: true, truncate: true });
    try {
      const readers = inputs.map((input, i) => new RecordReader(input, this.#spills[i][r]));
      const { sink, sum } = checksummed(syncFileSink(file));
      const writer = new RecordWriter(sink);
      await mergeGroups(readers, (key, values) => {
        if (combine !== undefined && values.length > 1) {
          writer.add(key, combined(combine, key, values));
        } else {
          for (let i = 0; i < values.length; i++) writer.add(key, values[i]);
        }
        this.#tick();
      });
      writer.close();
      return { bytes: writer.bytes, records: writer.records, sum };
    } finally {
      file.close();
      for (const input of inputs) input.close();
    }
  }
}
