/**
 * The word tokenizer of the bundled apps: a word is a maximal run of Unicode letters (`\p{L}`),
 * found by walking character codes rather than matching a regex into an array (the regex and its
 * array of millions of strings cost about twice the counting itself).
 */

/** Letter classes of BMP code units learnt so far: 0 unknown, 1 letter, 2 other. */
const BMP = new Uint8Array(0x10000);
const LETTER = /^\p{L}$/u;

// ASCII is known up front; other characters are classified by the regex once, on first sight.
for (let c = 0; c < 0x80; c++) BMP[c] = (c >= 65 && c <= 90) || (c >= 97 && c <= 122) ? 1 : 2;

function bmpLetter(code: number): boolean {
  let kind = BMP[code];
  if (kind === 0) {
    kind = LETTER.test(String.fromCharCode(code)) ? 1 : 2;
    BMP[code] = kind;
  }
  return kind === 1;
}

/** Length in UTF-16 units of the letter at `i` of `text` (2 for an astral letter), or 0. */
function letterAt(text: string, i: number): number {
  const code = text.charCodeAt(i);
  if (code < 0xd800 || code > 0xdbff) {
    return (code >= 0xdc00 && code <= 0xdfff) ? 0 : bmpLetter(code) ? 1 : 0;
  }
  const point = text.codePointAt(i)!;
  if (point === code) return 0; // A lone high surrogate.
  return LETTER.test(String.fromCodePoint(point)) ? 2 : 0;
}

/**
 * Characters a call of wordsIn() covers at least (it ends after the next line break): a split
 * of 16 MiB is about a thousand calls.
 */
const CHUNK = 16 * 1024;

/**
 * Calls `onWord(word, tag)` for every word of `text`, in order; `tag` is passed through (wc
 * passes the engine's emit and "1", so its map creates no closure, see wc.ts).
 */
export function forEachWord<T>(
  text: string,
  onWord: (word: string, tag: T) => void,
  tag?: T,
): void {
  // The text is walked a chunk of lines per call, not in one loop: a task thread calls this
  // once per map, so one long loop here would only ever run as on-stack-replacement (OSR) code,
  // which V8 keeps in a cache a full GC may empty, and which it compiles again whenever it was
  // thrown away; wordsIn(), called a thousand times per split, gets ordinary optimized code
  // that stays with the function from one map to the next. A chunk ends after a line break,
  // which is never part of a word, so only the last chunk may end inside a word.
  const length = text.length;
  let from = 0;
  while (from < length) {
    const newline = text.indexOf("\n", from + CHUNK);
    const to = newline < 0 ? length : newline + 1;
    const last = wordsIn(text, from, to, onWord, tag as T);
    if (last >= 0) onWord(text.slice(last, to), tag as T);
    from = to;
  }
}

/**
 * Calls `onWord(word, tag)` for every word of `text` that ends in [from, to), and returns where
 * a word running up to `to` starts (-1 if none). One call site of `onWord`: each site of a call
 * whose target changes (a new closure per map) costs its own deopt and recompile.
 */
function wordsIn<T>(
  text: string,
  from: number,
  to: number,
  onWord: (word: string, tag: T) => void,
  tag: T,
): number {
  let start = -1;
  let i = from;
  while (i < to) {
    const code = text.charCodeAt(i);
    // The ASCII test inline: most characters of most texts take this path.
    const width = code < 0x80 ? BMP[code] === 1 ? 1 : 0 : letterAt(text, i);
    if (width > 0) {
      if (start < 0) start = i;
      i += width;
    } else {
      if (start >= 0) {
        onWord(text.slice(start, i), tag);
        start = -1;
      }
      i++;
    }
  }
  return start;
}
