/**
 * The reduce side of the engine: a k-way merge of sorted runs that hands each distinct key with
 * all its values to a callback, one key at a time, and the reduce loop built on it. Memory holds
 * one block per run and one key's values, never a whole partition.
 */
import { compareBytes, decodeUtf8, type RecordReader, TextWriter } from "./record_format.ts";
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
  group(key: string, values: string[]): void | Promise<void>;
}

/** A run's order is broken: a key came after a greater one. */
export class UnsortedRunError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsortedRunError";
  }
}

/** Advances `reader`, reading more of its source when its block ran out. */
async function advanceSlow(reader: RecordReader): Promise<boolean> {
  for (;;) {
    await reader.fill();
    const more = reader.advance();
    if (more !== undefined) return more;
  }
}

/**
 * Heap order: a run that has ended after every other; then smaller key first; on equal keys the
 * earlier run, so values come run by run.
 */
function less(readers: RecordReader[], ended: Uint8Array, i: number, j: number): boolean {
  if (ended[i] !== 0) return false;
  if (ended[j] !== 0) return true;
  const a = readers[i];
  const b = readers[j];
  const c = compareBytes(a.buffer, a.keyStart, a.keyEnd, b.buffer, b.keyStart, b.keyEnd);
  return c < 0 || (c === 0 && i < j);
}

/** Restores the min-heap property below position p (a binary heap of run indices). */
function siftDown(readers: RecordReader[], ended: Uint8Array, heap: number[], p: number): void {
  const n = heap.length;
  const item = heap[p];
  for (;;) {
    let child = 2 * p + 1;
    if (child >= n) break;
    if (child + 1 < n && less(readers, ended, heap[child + 1], heap[child])) child++;
    if (!less(readers, ended, heap[child], item)) break;
    heap[p] = heap[child];
    p = child;
  }
  heap[p] = item;
}

/** Records read between two onProgress calls of a merge. */
const PROGRESS_RECORDS = 4096;

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
  // The first record reports progress too: the call site has then seen its target before V8
  // compiles the merge loop, which otherwise deopts ("insufficient type feedback for call") on
  // its first report and is compiled again.
  let countdown = 1;
  // A run that ends stays in the heap, marked ended (sorting last), rather than being taken out:
  // taking one out is a path the first merge of a task thread reaches only at its very end, so
  // V8 compiled the loop without feedback for it and threw the code away there, in every thread.
  const ended = new Uint8Array(readers.length);
  const heap: number[] = [];
  for (let i = 0; i < readers.length; i++) {
    let more = readers[i].advance();
    if (more === undefined) more = await advanceSlow(readers[i]);
    ended[i] = more ? 0 : 1;
    heap.push(i);
  }
  for (let p = (heap.length >> 1) - 1; p >= 0; p--) siftDown(readers, ended, heap, p);
  let previous: Uint8Array | undefined;
  while (heap.length > 0 && ended[heap[0]] === 0) {
    const top = readers[heap[0]];
    // The key's bytes are copied: the top reader's block moves when it refills.
    const key = top.buffer.slice(top.keyStart, top.keyEnd);
    if (
      previous !== undefined &&
      compareBytes(key, 0, key.length, previous, 0, previous.length) <= 0
    ) {
      throw new UnsortedRunError(
        `Runs are not sorted: key ${JSON.stringify(decodeUtf8(key, 0, key.length))} came after ` +
          JSON.stringify(decodeUtf8(previous, 0, previous.length)),
      );
    }
    previous = key;
    const values: string[] = [];
    for (;;) {
      const run = heap[0];
      if (ended[run] !== 0) break;
      const reader = readers[run];
      if (
        compareBytes(reader.buffer, reader.keyStart, reader.keyEnd, key, 0, key.length) !== 0
      ) break;
      values.push(decodeUtf8(reader.buffer, reader.valueStart, reader.valueEnd));
      if (--countdown === 0) {
        countdown = PROGRESS_RECORDS;
        // Through .call: the callback is a new function per task, and V8 compiles a call it has
        // seen one target at as a check for that target, so the next task's callback threw this
        // loop's code away ("wrong call target"); fn.call() is compiled as a call of whatever
        // fn is (the recorded target is Function.prototype.call, unrelated to fn).
        onProgress?.call(undefined);
      }
      let more = reader.advance();
      if (more === undefined) more = await advanceSlow(reader);
      ended[run] = more ? 0 : 1;
      siftDown(readers, ended, heap, 0);
    }
    const text = decodeUtf8(key, 0, key.length);
    const result = typeof onGroup === "function"
      ? onGroup(text, values)
      : onGroup.group(text, values);
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

  group(key: string, values: string[]): void | Promise<void> {
    // Called without a receiver, as a module's function is: the app's reduce must not see
    // this writer as `this`.
    const result: unknown = this.reduce.call(undefined, key, values);
    if (result instanceof Promise) {
      // Await only real promises: an await per key would cost a microtask turn for sync apps.
      return result.then((value) => this.#line(key, value));
    }
    return this.#line(key, result);
  }

  #line(key: string, value: unknown): void | Promise<void> {
    if (typeof value !== "string") {
      throw new TypeError(`reduce returned ${typeof value} for key ${key}, expected a string`);
    }
    this.keys++;
    return this.text.add(`${key} ${value}\n`);
  }
}
