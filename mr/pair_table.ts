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
 */

/** Combines some values of one key into one; may run any number of times (paper §4.3). */
export type Combiner = (key: string, values: string[]) => string;

/** Distinct pending values of one key after which the combiner runs. */
const COMBINE_VALUES = 32;
/** Repeats of one value (a run, like wc's "1") after which the combiner runs. */
const COMBINE_RUN = 4096;
/** Estimated heap bytes of a table entry (slots in four arrays, key string header). */
const ENTRY_COST = 112;
/** Estimated heap bytes of one pending value besides its characters. */
const VALUE_COST = 24;
/** Heap bytes of one more reference to a value already held. */
const REF_COST = 8;
/** Slots of a new table (a power of two). */
const INITIAL_CAPACITY = 1024;

/**
 * A per-process random hash seed: keys from an input chosen to collide under a fixed FNV basis
 * would turn every probe into a scan (hash flooding); a seeded basis makes such keys collide
 * only by chance, like V8's own seeded string hash.
 */
const SEED = (Math.random() * 0x100000000) >>> 0;

/**
 * Pending pairs of one map task, keyed by string. A key's values are kept as `values` (distinct
 * values in emit order, when there were any) followed by `run` repeated `count` times: repeating
 * the previous value, the common case, is counted rather than stored.
 */
export class PairTable {
  readonly #combine?: Combiner;
  #mask = INITIAL_CAPACITY - 1;
  #keys: (string | undefined)[] = new Array(INITIAL_CAPACITY).fill(undefined);
  #hashes = new Int32Array(INITIAL_CAPACITY);
  #runs: string[] = new Array(INITIAL_CAPACITY).fill("");
  #counts = new Float64Array(INITIAL_CAPACITY);
  #values: (string[] | undefined)[] = new Array(INITIAL_CAPACITY).fill(undefined);
  #size = 0;
  #bytes = 0;

  /** An empty table; with `combine`, a key's values are combined as they pile up. */
  constructor(combine?: Combiner) {
    this.#combine = combine;
  }

  /** Distinct keys held. */
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
    const keys = this.#keys;
    const hashes = this.#hashes;
    let slot = hash & mask;
    for (;;) {
      const held = keys[slot];
      if (held === undefined) break;
      if (hashes[slot] === hash && held === key) {
        if (value === this.#runs[slot]) {
          // The hot path: the same value again (wc's "1"): a counter increment.
          const count = ++this.#counts[slot];
          if (count >= COMBINE_RUN && this.#combine !== undefined) this.#combineSlot(slot);
        } else {
          this.#addOther(slot, value);
        }
        return;
      }
      slot = (slot + 1) & mask;
    }
    if (typeof value !== "string") throwBadPair(key, value);
    keys[slot] = key;
    hashes[slot] = hash;
    this.#runs[slot] = value;
    this.#counts[slot] = 1;
    this.#values[slot] = undefined;
    this.#bytes += ENTRY_COST + 2 * key.length + VALUE_COST + 2 * value.length;
    if (++this.#size * 2 > mask) this.#grow();
  }

  /** A value other than the key's current run: the run's repeats become stored references. */
  #addOther(slot: number, value: string): void {
    if (typeof value !== "string") throwBadPair(this.#keys[slot], value);
    const count = this.#counts[slot];
    const run = this.#runs[slot];
    const values = this.#values[slot] ?? (this.#values[slot] = []);
    for (let i = 0; i < count; i++) values.push(run);
    this.#bytes += count * REF_COST + VALUE_COST + 2 * value.length;
    this.#runs[slot] = value;
    this.#counts[slot] = 1;
    if (this.#combine !== undefined && values.length >= COMBINE_VALUES) this.#combineSlot(slot);
  }

  /** Replaces a key's pending values with their combination (paper §4.3: any number of times). */
  #combineSlot(slot: number): void {
    let freed = 2 * this.#runs[slot].length;
    const values = this.#values[slot];
    if (values !== undefined) {
      for (let i = 0; i < values.length; i++) freed += REF_COST + 2 * values[i].length;
    }
    const one = combined(this.#combine!, this.#keys[slot]!, this.#all(slot));
    this.#values[slot] = undefined;
    this.#runs[slot] = one;
    this.#counts[slot] = 1;
    this.#bytes += 2 * one.length - freed;
  }

  /** Every pending value of the key in `slot`, in emit order. */
  #all(slot: number): string[] {
    const values = this.#values[slot];
    const count = this.#counts[slot];
    if (values === undefined) return new Array<string>(count).fill(this.#runs[slot]);
    const run = this.#runs[slot];
    for (let i = 0; i < count; i++) values.push(run);
    return values;
  }

  /** Doubles the capacity, re-placing every key by its stored hash (no string is hashed again). */
  #grow(): void {
    const oldKeys = this.#keys;
    const oldHashes = this.#hashes;
    const oldRuns = this.#runs;
    const oldCounts = this.#counts;
    const oldValues = this.#values;
    const capacity = oldKeys.length * 2;
    const mask = capacity - 1;
    this.#mask = mask;
    this.#keys = new Array(capacity).fill(undefined);
    this.#hashes = new Int32Array(capacity);
    this.#runs = new Array(capacity).fill("");
    this.#counts = new Float64Array(capacity);
    this.#values = new Array(capacity).fill(undefined);
    for (let old = 0; old < oldKeys.length; old++) {
      const key = oldKeys[old];
      if (key === undefined) continue;
      let slot = oldHashes[old] & mask;
      while (this.#keys[slot] !== undefined) slot = (slot + 1) & mask;
      this.#keys[slot] = key;
      this.#hashes[slot] = oldHashes[old];
      this.#runs[slot] = oldRuns[old];
      this.#counts[slot] = oldCounts[old];
      this.#values[slot] = oldValues[old];
    }
  }

  /** Every key held, in no particular order. */
  keys(): string[] {
    const out: string[] = [];
    const keys = this.#keys;
    for (let slot = 0; slot < keys.length; slot++) {
      const key = keys[slot];
      if (key !== undefined) out.push(key);
    }
    return out;
  }

  /**
   * Calls `write` with what a run holds for `key` (a key of keys()): one value, combined when
   * there is a combiner and more than one, else every value in emit order.
   */
  writeKey(key: string, write: (key: string, value: string) => void): void {
    const slot = this.#find(key);
    const count = this.#counts[slot];
    const values = this.#values[slot];
    if (values === undefined && count === 1) {
      write(key, this.#runs[slot]);
    } else if (this.#combine !== undefined) {
      write(key, combined(this.#combine, key, this.#all(slot)));
    } else {
      if (values !== undefined) { for (const value of values) write(key, value); }
      const run = this.#runs[slot];
      for (let i = 0; i < count; i++) write(key, run);
    }
  }

  /** The slot of a key held (it must be held). */
  #find(key: string): number {
    let slot = hashKey(key) & this.#mask;
    for (;;) {
      const held = this.#keys[slot];
      if (held === key) return slot;
      if (held === undefined) throw new Error(`Key not in the table: ${key}`);
      slot = (slot + 1) & this.#mask;
    }
  }
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
