/**
 * Sorting a map's keys in UTF-8 byte order, by entry number: a partition's run is written in the
 * order of its keys' bytes, and the table hands out keys by entry number.
 *
 * A most-significant-digit radix step on the JIT's terms: each key's first two UTF-16 code units
 * become one number, packed with the key's position into a float64, and a Float64Array is sorted
 * by the engine's native numeric sort (no comparator call per comparison, unlike Array.sort);
 * keys that share those two units are sorted the same way on the next two, and small groups by
 * insertion. Measured on the benchmark corpus (22,000 distinct words in 10 partitions), this
 * took about half the time of Array.prototype.sort on the key strings.
 */
import { compareUtf8, utf8Order } from "./record_format.ts";

/** Keys sorted per numeric pass: a group at most this large is finished by insertion sort. */
const INSERTION = 24;
/** Distinct values of one code unit's rank, 0 (past the end of the key) included. */
const RANK_SPAN = 0x10001;
/** Positions packed beside a two-unit prefix: 2^53 / RANK_SPAN^2 leaves 20 bits. */
const POSITIONS = 2 ** 20;
/** Positions packed beside a one-unit prefix (a group of a million keys or more). */
const WIDE_POSITIONS = 2 ** 36;
/**
 * Code units of shared prefix after which a group is finished by comparison instead: each radix
 * pass is a level of recursion, so keys sharing tens of thousands of units would overflow the
 * stack, and such a group is better served by comparisons that run along the prefix in a loop.
 */
const MAX_RADIX_DEPTH = 64;

/**
 * The rank of `key`'s code unit at `i` in UTF-8 byte order, plus one; 0 past the key's end. UTF-8
 * orders code points, which differs from UTF-16 order only where a surrogate (an astral code
 * point, four UTF-8 bytes) meets U+E000..U+FFFF: surrogates rank above those; and a lone
 * surrogate, written as U+FFFD, ranks as that (record_format.ts utf8Order).
 */
function rank(key: string, i: number): number {
  if (i >= key.length) return 0;
  const code = key.charCodeAt(i);
  return (code < 0xd800 ? code : utf8Order(key, i, code)) + 1;
}

/**
 * Sorts distinct `keys` in place in UTF-8 byte order. `surrogates` says whether some key may hold
 * a surrogate code unit (partition.ts partitionKeys tells): without one, UTF-16 order is code
 * point order, which is UTF-8 byte order, so the engine's own string sort does it (no
 * comparator call per comparison, and no code of ours for the JIT to compile: measured on the
 * benchmark's 22,000 words in 10 partitions, as fast as the radix sort below and without its
 * 10-45 ms of background compilation per worker); with one, the radix sort below does.
 */
export function sortKeys(keys: string[], surrogates: boolean): void {
  if (!surrogates) {
    keys.sort();
    return;
  }
  const order = Int32Array.from(keys, (_, i) => i);
  sortByKey(keys, order);
  const sorted = Array.from(order, (entry) => keys[entry]);
  for (let i = 0; i < sorted.length; i++) keys[i] = sorted[i];
}

/**
 * Sorts `order[from, to)`, entry numbers whose keys `keys[entry]` gives, so that the keys are in
 * ascending UTF-8 byte order. Keys whose bytes are equal (a lone surrogate and U+FFFD) keep no
 * particular order.
 */
export function sortByKey(
  keys: readonly string[],
  order: Int32Array,
  from = 0,
  to: number = order.length,
): void {
  sortRange(keys, order, from, to, 0);
}

function sortRange(
  keys: readonly string[],
  order: Int32Array,
  from: number,
  to: number,
  depth: number,
): void {
  const n = to - from;
  if (n <= INSERTION) {
    insertionSort(keys, order, from, to);
    return;
  }
  if (depth >= MAX_RADIX_DEPTH) {
    const entries = Array.from(order.subarray(from, to));
    entries.sort((a, b) => compareUtf8(keys[a], keys[b]));
    order.set(entries, from);
    return;
  }
  // Two code units per pass; one when the positions would not fit beside two.
  const units = n < POSITIONS ? 2 : 1;
  const positions = units === 2 ? POSITIONS : WIDE_POSITIONS;
  const packed = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const key = keys[order[from + i]];
    const prefix = units === 2
      ? rank(key, depth) * RANK_SPAN + rank(key, depth + 1)
      : rank(key, depth);
    packed[i] = prefix * positions + i;
  }
  packed.sort();
  const entries = order.slice(from, to);
  let start = 0;
  let prefix = -1;
  for (let i = 0; i <= n; i++) {
    let next = -1;
    if (i < n) {
      const value = packed[i];
      const position = value % positions;
      order[from + i] = entries[position];
      next = (value - position) / positions;
    }
    if (next !== prefix) {
      // Keys of one prefix that continue past it are told apart by the next units; keys that
      // ended within it (rank 0 last) are equal, and a table holds no equal keys.
      const ended = units === 2 ? prefix % RANK_SPAN === 0 : prefix === 0;
      if (i - start > 1 && !ended) sortRange(keys, order, from + start, from + i, depth + units);
      start = i;
      prefix = next;
    }
  }
}

/** Sorts a few entries by their keys. */
function insertionSort(
  keys: readonly string[],
  order: Int32Array,
  from: number,
  to: number,
): void {
  for (let i = from + 1; i < to; i++) {
    const entry = order[i];
    const key = keys[entry];
    let j = i - 1;
    while (j >= from && compareUtf8(keys[order[j]], key) > 0) {
      order[j + 1] = order[j];
      j--;
    }
    order[j + 1] = entry;
  }
}
