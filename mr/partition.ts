/**
 * Partitioning and the intermediate file encoding shared by map and reduce workers.
 */

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

/** Name of the intermediate file map task `map` writes for reduce task `reduce`. */
export function intermediateName(map: number, reduce: number): string {
  return `mr-${map}-${reduce}`;
}

/** Name of the output file reduce task `reduce` writes. */
export function outputName(reduce: number): string {
  return `mr-out-${reduce}`;
}

const NEEDS_ESCAPE = /[\\\t\n]/;
const ESCAPED = /\\[\\tn]/g;

function escapeField(text: string): string {
  if (!NEEDS_ESCAPE.test(text)) return text;
  return text.replaceAll("\\", "\\\\").replaceAll("\t", "\\t").replaceAll("\n", "\\n");
}

function unescapeField(text: string): string {
  if (!text.includes("\\")) return text;
  return text.replace(ESCAPED, (m) => (m === "\\\\" ? "\\" : m === "\\t" ? "\t" : "\n"));
}

/**
 * Encodes one intermediate pair as a `key<TAB>value<LF>` line; backslash, tab and newline are
 * escaped so any string round-trips, while the common case costs one regex test per field.
 */
export function encodePair(key: string, value: string): string {
  return `${escapeField(key)}\t${escapeField(value)}\n`;
}

/**
 * Decodes the lines of an intermediate file, calling `onPair` for each; throws on a malformed
 * line (a truncated or foreign file), which fails the reduce attempt rather than the output.
 */
export function decodePairs(
  text: string,
  onPair: (key: string, value: string) => void,
): void {
  let start = 0;
  const length = text.length;
  while (start < length) {
    const end = text.indexOf("\n", start);
    if (end < 0) throw new Error(`Intermediate data is truncated at character ${start}`);
    const tab = text.indexOf("\t", start);
    if (tab < 0 || tab > end) {
      throw new Error(`Intermediate line at character ${start} has no tab`);
    }
    onPair(unescapeField(text.slice(start, tab)), unescapeField(text.slice(tab + 1, end)));
    start = end + 1;
  }
}
