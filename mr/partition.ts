/**
 * Partitioning shared by map and reduce workers, and the name of an output file. The
 * intermediate record format is in record_format.ts.
 */

/**
 * Set by fnv1a32 when the key it hashes holds a surrogate code unit (cleared by partitionKeys):
 * the hash loop meets every code unit anyway, so telling such keys apart costs nothing extra.
 */
let surrogateSeen = false;

/** FNV-1a 32-bit hash of the UTF-8 bytes of `key`, as an unsigned integer. */
export function fnv1a32(key: string): number {
  // Encodes UTF-8 on the fly: hashing happens once per distinct key per map task, and a
  // TextEncoder allocation per key would dominate the cost.
  let hash = 0x811c9dc5;
  const length = key.length;
  for (let i = 0; i < length; i++) {
    let code = key.charCodeAt(i);
    if (code < 0x80) {
      hash = Math.imul(hash ^ code, 0x01000193);
      continue;
    }
    if (code < 0x800) {
      hash = Math.imul(hash ^ (0xc0 | (code >> 6)), 0x01000193);
      hash = Math.imul(hash ^ (0x80 | (code & 0x3f)), 0x01000193);
      continue;
    }
    if (code >= 0xd800 && code <= 0xdfff) {
      surrogateSeen = true;
      const next = i + 1 < length ? key.charCodeAt(i + 1) : 0;
      if (code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        code = 0x10000 + ((code - 0xd800) << 10) + (next - 0xdc00);
        i++;
        hash = Math.imul(hash ^ (0xf0 | (code >> 18)), 0x01000193);
        hash = Math.imul(hash ^ (0x80 | ((code >> 12) & 0x3f)), 0x01000193);
        hash = Math.imul(hash ^ (0x80 | ((code >> 6) & 0x3f)), 0x01000193);
        hash = Math.imul(hash ^ (0x80 | (code & 0x3f)), 0x01000193);
        continue;
      }
      // A lone surrogate is not encodable; TextEncoder writes U+FFFD instead, and so do we.
      code = 0xfffd;
    }
    hash = Math.imul(hash ^ (0xe0 | (code >> 12)), 0x01000193);
    hash = Math.imul(hash ^ (0x80 | ((code >> 6) & 0x3f)), 0x01000193);
    hash = Math.imul(hash ^ (0x80 | (code & 0x3f)), 0x01000193);
  }
  return hash >>> 0;
}

/** The reduce task (0..nReduce-1) that owns `key`: FNV-1a masked to 31 bits, mod nReduce. */
export function partition(key: string, nReduce: number): number {
  return (fnv1a32(key) & 0x7fffffff) % nReduce;
}

/**
 * Writes partition(keys[i], nReduce) into parts[i] for every key, and returns whether some key
 * holds a surrogate code unit: only among such keys does JavaScript's string order (UTF-16 code
 * units) differ from the UTF-8 byte order runs are sorted in.
 */
export function partitionKeys(
  keys: readonly string[],
  nReduce: number,
  parts: Int32Array,
): boolean {
  surrogateSeen = false;
  for (let i = 0; i < keys.length; i++) parts[i] = partition(keys[i], nReduce);
  return surrogateSeen;
}

/** Name of the partition file for reduce task `reduce` inside a map attempt's directory. */
export function partitionFileName(reduce: number): string {
  return `part-${reduce}`;
}

/** Name of the output file reduce task `reduce` writes. */
export function outputName(reduce: number): string {
  return `mr-out-${reduce}`;
}
