/**
 * The map side's table of pending pairs: an open-addressing hash table from key to the values of
 * that key not yet written, combined in place when the app has a combiner.
 *
 * Why not a `Map<string, ...>`: `emit` runs once per word of the input, and a V8 Map lookup with
 * a freshly sliced string key costs about as much as the whole word count of the single-process
 * baseline (measured in one process on the benchmark corpus: 1.1 CPU-s for 12.9 million lookups
 * of a Map, 0.35 CPU-s for this table, the tokenizer's own 0.3 s apart). Here a key is hashed by
 * a loop over its UTF-16 code units that the JIT compiles inline, the probe compares stored
 * 32-bit hashes before any string, and a repeated value (wc's "1") is a counter increment in a
 * typed array. The layout follows the textbook linear-probing table (Knuth, TAOCP vol. 3, 6.4,
 * algorithm L) with the load factor kept at most 1/2, so an unsuccessful search stays short.
 *
 * Entries live in insertion order in dense arrays (entry i: keys[i], runs[i], counts[i],
 * values[i]), and the probed slots hold only an entry number and its hash, both in typed arrays,
 * as in CPython's compact dict: growing re-places two integer arrays, never a string array (a
 * plain array of more than about 16,000 slots made with `new Array(n)` starts in V8's slow
 * dictionary mode, and the JIT threw away the probe loop's code at each such growth), and
 * writing the table out walks the entries directly instead of looking every key up again.
 */

/** Combines some values of one key into one; may run any number of times (paper §4.3). */
export type Combiner = (key: string, values: string[]) => string;

/** Distinct pending values of one key after which the combiner runs. */
const COMBINE_VALUES = 32;
/**
 * Most values one combiner call gets for a run of a repeated value: a run of n copies is combined
 * in groups of RUN_CHUNK whose results are combined in turn (combineRun), so combining wc's run of
 * a million "1"s builds arrays of a few dozen strings, not one of a million.
 */
const RUN_CHUNK = 16;
/** Estimated heap bytes of a table entry (slots in five arrays, key string header). */
const ENTRY_COST = 112;
/** Estimated heap bytes of one pending value besides its characters. */
const VALUE_COST = 24;
/** Heap bytes of one more reference to a value already held. */
const REF_COST = 8;
/** Slots of a new table (a power of two). */
const INITIAL_CAPACITY = 1024;
/**
 * Most slots clear() keeps for the next task (2 MiB of slot and hash arrays): a table reused
 * task after task keeps its grown arrays, so it does not grow again; one grown past this (a map
 * with millions of distinct keys) starts small again rather than holding that memory idle.
 */
const KEEP_CAPACITY = 1 << 18;

/**
 * A per-process random hash seed: keys from an input chosen to collide under a fixed FNV basis
 * would turn every probe into a scan (hash flooding); a seeded basis makes such keys collide
 * only by chance, like V8's own seeded string hash.
 */
const SEED = (Math.random() * 0x100000000) >>> 0;

/**
 * Pending pairs of one map task, keyed by string. A key's values are kept as `values` (distinct
 * values in emit order, when there were any) followed by `run` repeated `count` times: repeating
 * the previous value, the common case, is counted rather than stored. Entries are numbered
 * 0..size-1 in the order their keys first came.
 */
export class PairTable {
  #combine?: Combiner;
  #mask = INITIAL_CAPACITY - 1;
  /** Slot -> entry number + 1 (0: an empty slot). */
  #slots = new Int32Array(INITIAL_CAPACITY);
  /** Slot -> hash of its entry's key, compared before the key. */
  #hashes = new Int32Array(INITIAL_CAPACITY);
  #keys: string[] = [];
  #runs: string[] = [];
  #counts = new Float64Array(INITIAL_CAPACITY / 2);
  /**
   * Entry -> its stored values, or null when it has none. Not undefined: V8 15 (Deno 2.9) keeps
   * an array of only undefineds as doubles, and the optimized push into it deopted ("not a
   * Number", seen with --trace-deopt) and was compiled again in every task thread.
   */
  #values: (string[] | null)[] = [];
  #size = 0;
  #bytes = 0;

  /** An empty table; with `combine`, a key's values are combined as they pile up. */
  constructor(combine?: Combiner) {
    this.#combine = combine;
  }

  /**
   * Empties the table for another map task, with `combine` as its combiner from now on. The
   * arrays keep their identity and their grown capacity (up to KEEP_CAPACITY slots): the same
   * table serves task after task, so the hot add() path, compiled once, sees the same objects
   * and field values every time (V8 throws optimized code away when an object it embedded
   * dies, or when a field it took as constant is written).
   */
  clear(combine?: Combiner): void {
    this.#combine = combine;
    if (this.#slots.length > KEEP_CAPACITY) {
      this.#mask = INITIAL_CAPACITY - 1;
      this.#slots = new Int32Array(INITIAL_CAPACITY);
      this.#hashes = new Int32Array(INITIAL_CAPACITY);
      this.#counts = new Float64Array(INITIAL_CAPACITY / 2);
    } else {
      // An empty slot is a 0 here; stale hashes and counts are overwritten before being read.
      this.#slots.fill(0);
    }
    // Setting length drops the keys and values (and the input string they may point into).
    this.#keys.length = 0;
    this.#runs.length = 0;
    this.#values.length = 0;
    this.#size = 0;
    this.#bytes = 0;
  }

  /** Distinct keys held (entries 0..size-1). */
  get size(): number {
    return this.#size;
  }

  /** Estimated heap bytes held by the keys and values (what spilling is bounded by). */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Adds one pair; throws TypeError when the key or value is not a string, or when the
   * combiner returns something other than a string.
   */
  add(key: string, value: string): void {
    if (typeof key !== "string") throwBadPair(key, value);
    const hash = hashKey(key);
    const mask = this.#mask;
    const slots = this.#slots;
    const hashes = this.#hashes;
    let slot = hash & mask;
    for (;;) {
      const entry = slots[slot] - 1;
      if (entry < 0) return this.#insert(slot, hash, key, value);
      if (hashes[slot] === hash && this.#keys[entry] === key) {
        // The hot path: the same value again (wc's "1"): a counter increment. A run is never
        // combined here: however long, it is a number, and combineRun() makes it one value in
        // a few calls when it is written.
        if (value === this.#runs[entry]) this.#counts[entry]++;
        else this.#addOther(entry, value);
        return;
      }
      slot = (slot + 1) & mask;
    }
  }

  /** A new key at the empty `slot`. */
  #insert(slot: number, hash: number, key: string, value: string): void {
    if (typeof value !== "string") throwBadPair(key, value);
    const entry = this.#size;
    if (entry === this.#counts.length) {
      const counts = new Float64Array(entry * 2);
      counts.set(this.#counts);
      this.#counts = counts;
    }
    this.#slots[slot] = entry + 1;
    this.#hashes[slot] = hash;
    this.#keys.push(key);
    this.#runs.push(value);
    this.#counts[entry] = 1;
    this.#values.push(null);
    this.#bytes += ENTRY_COST + 2 * key.length + VALUE_COST + 2 * value.length;
    if (++this.#size * 2 > this.#mask) this.#grow();
  }

  /** A value other than the key's current run: the run's repeats become stored values. */
  #addOther(entry: number, value: string): void {
    if (typeof value !== "string") throwBadPair(this.#keys[entry], value);
    const count = this.#counts[entry];
    const run = this.#runs[entry];
    const values = this.#values[entry] ?? (this.#values[entry] = []);
    if (this.#combine !== undefined && count > 1) {
      // The run may be combined now (any number of times): one value instead of count copies.
      const one = combineRun(this.#combine, this.#keys[entry], run, count);
      values.push(one);
      this.#bytes += REF_COST + 2 * one.length - 2 * run.length;
    } else {
      for (let i = 0; i < count; i++) values.push(run);
      this.#bytes += count * REF_COST;
    }
    this.#bytes += VALUE_COST + 2 * value.length;
    this.#runs[entry] = value;
    this.#counts[entry] = 1;
    if (this.#combine !== undefined && values.length >= COMBINE_VALUES) this.#combineEntry(entry);
  }

  /** Replaces a key's pending values with their combination (paper §4.3: any number of times). */
  #combineEntry(entry: number): void {
    let freed = VALUE_COST + 2 * this.#runs[entry].length;
    const values = this.#values[entry];
    if (values !== null) {
      for (let i = 0; i < values.length; i++) freed += REF_COST + VALUE_COST + 2 * values[i].length;
    }
    const one = this.#combined(entry);
    this.#values[entry] = null;
    this.#runs[entry] = one;
    this.#counts[entry] = 1;
    this.#bytes += VALUE_COST + 2 * one.length - freed;
  }

  /** The combination of every pending value of `entry` (there is a combiner). */
  #combined(entry: number): string {
    const combine = this.#combine!;
    const key = this.#keys[entry];
    const run = combineRun(combine, key, this.#runs[entry], this.#counts[entry]);
    const values = this.#values[entry];
    if (values === null) return run;
    // A copy: value() may be asked twice and must answer the same.
    return combined(combine, key, values.concat(run));
  }

  /** Doubles the capacity, re-placing every entry by its stored hash (no string is hashed again). */
  #grow(): void {
    const oldSlots = this.#slots;
    const oldHashes = this.#hashes;
    const capacity = oldSlots.length * 2;
    const mask = capacity - 1;
    const slots = new Int32Array(capacity);
    const hashes = new Int32Array(capacity);
    for (let old = 0; old < oldSlots.length; old++) {
      const entry = oldSlots[old];
      if (entry === 0) continue;
      const hash = oldHashes[old];
      let slot = hash & mask;
      while (slots[slot] !== 0) slot = (slot + 1) & mask;
      slots[slot] = entry;
      hashes[slot] = hash;
    }
    this.#mask = mask;
    this.#slots = slots;
    this.#hashes = hashes;
  }

  /** The entry number of `key` (0..size-1), or -1 when the table does not hold it. */
  entryOf(key: string): number {
    const hash = hashKey(key);
    const mask = this.#mask;
    const slots = this.#slots;
    const hashes = this.#hashes;
    for (let slot = hash & mask;; slot = (slot + 1) & mask) {
      const entry = slots[slot] - 1;
      if (entry < 0) return -1;
      if (hashes[slot] === hash && this.#keys[entry] === key) return entry;
    }
  }

  /** Every key held, in entry order. */
  keys(): string[] {
    return this.#keys.slice();
  }

  /**
   * The one value entry `entry` (0..size-1) writes: its value, or with a combiner the
   * combination of all of them; undefined when, without a combiner, it has several (write()).
   */
  value(entry: number): string | undefined {
    const combine = this.#combine;
    if (this.#values[entry] === null) {
      // Only a run (wc's every key): the run itself, or combined without #combined's concat.
      const count = this.#counts[entry];
      if (count === 1) return this.#runs[entry];
      if (combine !== undefined) {
        return combineRun(combine, this.#keys[entry], this.#runs[entry], count);
      }
      return undefined;
    }
    return combine === undefined ? undefined : this.#combined(entry);
  }

  /**
   * Calls `write` with what a run holds for entry `entry` (0..size-1): one value, combined when
   * there is a combiner and more than one, else every value in emit order.
   */
  write(entry: number, write: (key: string, value: string) => void): void {
    const key = this.#keys[entry];
    const count = this.#counts[entry];
    const values = this.#values[entry];
    if (values === null && count === 1) {
      write(key, this.#runs[entry]);
    } else if (this.#combine !== undefined) {
      write(key, this.#combined(entry));
    } else {
      if (values !== null) { for (const value of values) write(key, value); }
      const run = this.#runs[entry];
      for (let i = 0; i < count; i++) write(key, run);
    }
  }
}

/**
 * combine(key, [value repeated count times]), with arrays of at most RUN_CHUNK + 1 values:
 * RUN_CHUNK copies are combined into one value that stands for them, and the run of those is
 * combined the same way. Valid for any combiner, since one may run any number of times on any
 * group of consecutive values, its own results included (paper §4.3); the values stay in order.
 */
export function combineRun(combine: Combiner, key: string, value: string, count: number): string {
  if (count <= 1) return value;
  if (count <= RUN_CHUNK) return combined(combine, key, new Array<string>(count).fill(value));
  // A loop, not recursion (the JIT inlines a recursive call level after level into a large
  // function): going down, each level's chunk of RUN_CHUNK copies is combined into the value the
  // next level repeats, and what is left over (fewer than RUN_CHUNK copies) is noted; coming
  // back up, the level's result is combined with its leftover copies, after them in order. The
  // same calls, in the same order, as combining level by level recursively.
  const values: string[] = [];
  const rests: number[] = [];
  while (count > RUN_CHUNK) {
    const rest = count % RUN_CHUNK;
    values.push(value);
    rests.push(rest);
    value = combined(combine, key, new Array<string>(RUN_CHUNK).fill(value));
    count = (count - rest) / RUN_CHUNK;
  }
  let result = count <= 1 ? value : combined(combine, key, new Array<string>(count).fill(value));
  for (let level = values.length - 1; level >= 0; level--) {
    const rest = rests[level];
    if (rest === 0) continue;
    const group = new Array<string>(rest + 1).fill(values[level]);
    group[0] = result;
    result = combined(combine, key, group);
  }
  return result;
}

/**
 * FNV-1a over the key's UTF-16 code units from the seeded basis, then a final mix so the low
 * bits the mask keeps depend on every character. Small enough for the JIT to inline into add().
 */
function hashKey(key: string): number {
  let hash = 0x811c9dc5 ^ SEED;
  const length = key.length;
  for (let i = 0; i < length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193);
  return hash ^ (hash >>> 15);
}

function throwBadPair(key: unknown, value: unknown): never {
  throw new TypeError(
    `emit takes (key: string, value: string): got (${typeof key}, ${typeof value})`,
  );
}

/** Runs the combiner and checks that it returned a string. */
export function combined(combine: Combiner, key: string, values: string[]): string {
  const value: unknown = combine(key, values);
  if (typeof value !== "string") {
    throw new TypeError(`combine returned ${typeof value} for key ${key}, expected a string`);
  }
  return value;
}
