/**
 * The reduce side of the engine: a k-way merge of sorted runs that hands each distinct key with
 * all its values to a callback, one key at a time, and the reduce loop built on it. Memory holds
 * one block per run and one key's values, never a whole partition.
 */
import {
  compareBytes,
  decodeUtf8,
  HEAD_BYTES,
  headOf,
  type RecordReader,
  TextWriter,
} from "./record_format.ts";
import type { BlockSink } from "./record_format.ts";

/** Called once per distinct key, in UTF-8 byte order of keys; may return a promise. */
export type GroupHandler = (key: string, values: string[]) => void | Promise<void>;

/**
 * Receives a merge's groups through its `group` method, as a GroupHandler would. For merges that
 * run once per task: every instance of a class calls the same method, where a closure made per
 * task is a new call target each time, and V8 throws away the merge loop's optimized code
 * ("wrong call target") when the target it inlined changes.
 */
export interface GroupSink {
  /**
   * One group: `key` decoded from `keyBytes[0, keyLength)`, which stay valid until the returned
   * promise settles (or the call returns).
   */
  group(
    key: string,
    values: string[],
    keyBytes: Uint8Array,
    keyLength: number,
  ): void | Promise<void>;
}

/** A run's order is broken: a key came after a greater one. */
export class UnsortedRunError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsortedRunError";
  }
}

/**
 * Match order of runs i and j whose heads are equal: keys longer than HEAD_BYTES by their
 * remaining bytes, equal keys by run index, so a key's values come run by run. (Unequal heads
 * order runs by themselves: smaller first, an ended run's Infinity last.) Heads settle nearly
 * every match with one number comparison: most keys differ in their first bytes, and keys of at
 * most HEAD_BYTES bytes (most words) are equal exactly when their heads are.
 */
function tieBefore(readers: RecordReader[], i: number, j: number): boolean {
  const x = readers[i];
  // Equal heads mean equal lengths up to HEAD_BYTES, or lengths above it for both (an ended
  // reader's key is empty).
  if (x.keyEnd - x.keyStart > HEAD_BYTES) {
    const y = readers[j];
    const c = compareBytes(
      x.buffer,
      x.keyStart + HEAD_BYTES,
      x.keyEnd,
      y.buffer,
      y.keyStart + HEAD_BYTES,
      y.keyEnd,
    );
    if (c !== 0) return c < 0;
  }
  return i < j;
}

/**
 * Builds a tree of losers over the runs (Knuth, TAOCP vol. 3, 5.4.1): the runs are the leaves
 * k..2k-1 of a complete binary tree, node i (1 <= i < k) holds the loser of the match between its
 * children's winners, and tree[0] the overall winner, the run with the smallest key. When the
 * winner moves to its next record, its matches are replayed from its leaf up (Merger.collect):
 * one comparison per level, so a record costs ceil(log2 k) comparisons, where sifting a binary
 * heap costs up to two per level (the rule behind choosing this over Hadoop's heap of segments).
 */
function buildTree(readers: RecordReader[], heads: Float64Array, tree: Int32Array): void {
  const k = readers.length;
  const winners = new Int32Array(2 * k);
  for (let run = 0; run < k; run++) winners[k + run] = run;
  for (let node = k - 1; node > 0; node--) {
    const a = winners[2 * node];
    const b = winners[2 * node + 1];
    const aFirst = heads[a] < heads[b] || (heads[a] === heads[b] && tieBefore(readers, a, b));
    winners[node] = aFirst ? a : b;
    tree[node] = aFirst ? b : a;
  }
  tree[0] = winners[1];
}

/** Records read between two onProgress calls of a merge. */
const PROGRESS_RECORDS = 4096;

/**
 * The synchronous steps of a merge: the runs ordered by their current keys in a tree of losers
 * (where Hadoop's reduce-side Merger keeps a priority queue of segments, re-sifted after each
 * record): a record costs O(log k) comparisons whatever the number of runs k, and each is mostly
 * one of numbers (the readers' heads), not a walk over key bytes.
 *
 * A step that finds a reader's block used up reads on with a blocking read when the reader is
 * synchronous (a local file); otherwise it returns that run, and the caller awaits its fill()
 * and calls the step again. The steps are plain functions rather than one async loop: V8
 * compiles each on its own, early, and reuses that code in every merge of the isolate, where an
 * async loop with everything inlined into it was compiled on the stack (OSR) for tens of
 * milliseconds, in the middle of the first reduce of each task thread, and once more for the
 * next.
 */
class Merger {
  readonly #readers: RecordReader[];
  /**
   * Per run, its reader's head, or Infinity once it has ended. An ended run stays in the tree,
   * losing every match, rather than being taken out: taking one out is a path the first merge
   * of a task thread reaches only at its very end, so V8 compiled the loop without feedback for
   * it and threw the code away there.
   */
  readonly #heads: Float64Array;
  /** The tree of losers (buildTree); tree[0] is the run holding the smallest key. */
  readonly #tree: Int32Array;
  readonly #onProgress: (() => void) | undefined;
  /** The current key's bytes, copied (the top reader's block moves when it refills). */
  key = new Uint8Array(64);
  keyLength = 0;
  #head = -1;
  /** The other key buffer: the next key is copied there, the current one kept to check order. */
  #spare = new Uint8Array(64);
  /** Runs placed on their first record (start()). */
  #placed = 0;
  /** A run whose advance() waits for a fill (collect()), or -1. */
  #pending = -1;
  #countdown: number;

  constructor(readers: RecordReader[], onProgress: (() => void) | undefined) {
    this.#readers = readers;
    this.#heads = new Float64Array(readers.length);
    this.#tree = new Int32Array(readers.length);
    this.#onProgress = onProgress;
    // The first record reports progress too: the call site has then seen its target before V8
    // compiles the loop, which otherwise deopts ("insufficient type feedback for call") on its
    // first report and is compiled again.
    this.#countdown = 1;
  }

  /**
   * Places every run on its first record and orders them: -1 when done, else a run to fill
   * before calling again.
   */
  start(): number {
    const readers = this.#readers;
    for (; this.#placed < readers.length; this.#placed++) {
      const run = this.#placed;
      const reader = readers[run];
      let more = reader.advance();
      if (more === undefined) {
        if (!reader.sync) return run;
        more = reader.advanceSync();
      }
      this.#heads[run] = more ? reader.head : Infinity;
    }
    buildTree(readers, this.#heads, this.#tree);
    return -1;
  }

  /**
   * Makes the smallest key of all runs' current records the current key (`key`, `keyLength`);
   * false when every run has ended. Throws UnsortedRunError when it is not greater than the
   * previous key (a run out of order would make the output repeat a key).
   */
  nextKey(): boolean {
    const tree = this.#tree;
    if (tree.length === 0) return false;
    const run = tree[0];
    const head = this.#heads[run];
    if (head === Infinity) return false;
    const reader = this.#readers[run];
    const previous = this.key;
    const previousLength = this.keyLength;
    let key = this.#spare;
    const keyLength = reader.keyEnd - reader.keyStart;
    if (keyLength > key.length) key = new Uint8Array(Math.max(keyLength, 2 * key.length));
    const buffer = reader.buffer;
    const keyStart = reader.keyStart;
    for (let i = 0; i < keyLength; i++) key[i] = buffer[keyStart + i];
    if (
      head < this.#head ||
      (head === this.#head && compareBytes(key, 0, keyLength, previous, 0, previousLength) <= 0)
    ) {
      throw new UnsortedRunError(
        `Runs are not sorted: key ${JSON.stringify(decodeUtf8(key, 0, keyLength))} came after ` +
          JSON.stringify(decodeUtf8(previous, 0, previousLength)),
      );
    }
    this.#spare = previous;
    this.key = key;
    this.keyLength = keyLength;
    this.#head = head;
    return true;
  }

  /**
   * Appends the current key's values, record by record, run by run, to `values`: -1 once all
   * are in, else a run to fill before calling again.
   */
  collect(values: string[]): number {
    const readers = this.#readers;
    const heads = this.#heads;
    const tree = this.#tree;
    const head = this.#head;
    const key = this.key;
    const keyLength = this.keyLength;
    // The run whose record was just taken (-1: none) and the head of its next record.
    let run = -1;
    let next = 0;
    if (this.#pending >= 0) {
      // The record before this run's block ran out was taken: move on to the next one.
      run = this.#pending;
      const more = readers[run].advance();
      if (more === undefined) return run;
      this.#pending = -1;
      next = more ? readers[run].head : Infinity;
    }
    for (;;) {
      if (run >= 0) {
        // The run moved on: replay its matches up the tree of losers (see buildTree), one
        // comparison per level.
        heads[run] = next;
        let winner = run;
        for (let node = (readers.length + run) >> 1; node > 0; node >>= 1) {
          const loser = tree[node];
          const a = heads[loser];
          if (a < next || (a === next && tieBefore(readers, loser, winner))) {
            tree[node] = winner;
            winner = loser;
            next = a;
          }
        }
        tree[0] = winner;
      }
      // The top run's record is this key's when its head is the key's and, for a key longer
      // than HEAD_BYTES, its remaining bytes are too.
      run = tree[0];
      if (heads[run] !== head) return -1;
      const reader = readers[run];
      const buffer = reader.buffer;
      const keyStart = reader.keyStart;
      if (
        keyLength > HEAD_BYTES &&
        compareBytes(buffer, keyStart + HEAD_BYTES, reader.keyEnd, key, HEAD_BYTES, keyLength) !== 0
      ) return -1;
      values.push(decodeUtf8(buffer, reader.valueStart, reader.valueEnd));
      if (--this.#countdown === 0) {
        this.#countdown = PROGRESS_RECORDS;
        // Through .call: the callback is a new function per task, and V8 compiles a call it
        // has seen one target at as a check for that target, so the next task's callback
        // threw this code away ("wrong call target"); fn.call() is compiled as a call of
        // whatever fn is (the recorded target is Function.prototype.call, unrelated to fn).
        this.#onProgress?.call(undefined);
      }
      // The run's next record. The common one (both lengths in one byte, the whole record in
      // the block) is parsed here, in place, as RecordReader.advance() would; the rest goes
      // through advance(). (Every reader is past its magic: start() placed it with advance().)
      // This loop is then a record's whole path, which V8 compiles once: small functions
      // called per record were each compiled on their own as well, in every task thread,
      // while its first reduces ran.
      const pos = reader.pos;
      const end = reader.end;
      let parsed = false;
      if (pos + 2 <= end) {
        const keyPrefix = buffer[pos];
        const valueLength = buffer[pos + 1];
        const keyEnd = pos + 1 + keyPrefix;
        const valueEnd = keyEnd + valueLength;
        if (keyPrefix !== 0 && (keyPrefix | valueLength) < 0x80 && valueEnd <= end) {
          reader.keyStart = pos + 2;
          reader.keyEnd = keyEnd;
          reader.valueStart = keyEnd;
          reader.valueEnd = valueEnd;
          reader.pos = valueEnd;
          reader.records++;
          next = reader.head = headOf(buffer, pos + 2, keyPrefix - 1);
          parsed = true;
        }
      }
      if (!parsed) {
        let more = reader.advance();
        if (more === undefined) {
          if (!reader.sync) {
            this.#pending = run;
            return run;
          }
          more = reader.advanceSync();
        }
        next = more ? reader.head : Infinity;
      }
    }
  }
}

/**
 * Merges runs, each sorted by key bytes, calling `onGroup(key, values)` once per distinct key in
 * ascending byte order; a key's values come run by run, in each run's order. Throws
 * UnsortedRunError when a run is out of order (the output would repeat a key) and
 * RecordFormatError when a run is damaged. `onProgress` is called every PROGRESS_RECORDS
 * records read (a key with millions of values is progress too).
 */
export async function mergeGroups(
  readers: RecordReader[],
  onGroup: GroupHandler | GroupSink,
  onProgress?: () => void,
): Promise<void> {
  const merge = new Merger(readers, onProgress);
  for (let run = merge.start(); run >= 0; run = merge.start()) await readers[run].fill();
  while (merge.nextKey()) {
    const values: string[] = [];
    for (let run = merge.collect(values); run >= 0; run = merge.collect(values)) {
      await readers[run].fill();
    }
    const key = merge.key;
    const text = decodeUtf8(key, 0, merge.keyLength);
    const result = typeof onGroup === "function"
      ? onGroup(text, values)
      : onGroup.group(text, values, key, merge.keyLength);
    if (result !== undefined) await result;
  }
}

/** Reduces one key's values to one output value. */
export type Reducer = (key: string, values: string[]) => string | Promise<string>;

/** What reduceRuns() read and wrote. */
export interface ReduceStats {
  /** Distinct keys, i.e. output lines. */
  keys: number;
  /** Records read from all runs. */
  records: number;
  /** Bytes of output. */
  bytesWritten: number;
}

/**
 * Merges the runs of one partition and writes `<key> <reduce(key, values)>\n` per key, sorted by
 * key bytes, to `sink` (the paper's §4.2 ordering guarantee). Throws TypeError when reduce
 * returns something other than a string.
 */
export async function reduceRuns(
  readers: RecordReader[],
  reduce: Reducer,
  sink: BlockSink,
  onProgress?: () => void,
): Promise<ReduceStats> {
  const out = new ReduceWriter(reduce, new TextWriter(sink));
  await mergeGroups(readers, out, onProgress);
  const closed = out.text.close();
  if (closed !== undefined) await closed;
  let records = 0;
  for (const reader of readers) records += reader.records;
  return { keys: out.keys, records, bytesWritten: out.text.bytes };
}

/** Writes `<key> <reduce(key, values)>\n` per group (a class: see GroupSink). */
class ReduceWriter implements GroupSink {
  readonly reduce: Reducer;
  readonly text: TextWriter;
  keys = 0;

  constructor(reduce: Reducer, text: TextWriter) {
    this.reduce = reduce;
    this.text = text;
  }

  group(
    key: string,
    values: string[],
    keyBytes: Uint8Array,
    keyLength: number,
  ): void | Promise<void> {
    // Called without a receiver, as a module's function is: the app's reduce must not see
    // this writer as `this`.
    const result: unknown = this.reduce.call(undefined, key, values);
    if (result instanceof Promise) {
      // Await only real promises: an await per key would cost a microtask turn for sync apps.
      return result.then((value) => this.#line(key, value, keyBytes, keyLength));
    }
    return this.#line(key, result, keyBytes, keyLength);
  }

  #line(
    key: string,
    value: unknown,
    keyBytes: Uint8Array,
    keyLength: number,
  ): void | Promise<void> {
    if (typeof value !== "string") {
      throw new TypeError(`reduce returned ${typeof value} for key ${key}, expected a string`);
    }
    this.keys++;
    return this.text.line(keyBytes, keyLength, key, value);
  }
}
