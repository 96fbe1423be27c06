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

/** Calls `onWord` with every word of `text`, in order. */
export function forEachWord(text: string, onWord: (word: string) => void): void {
  const length = text.length;
  let start = -1;
  let i = 0;
  while (i < length) {
    const code = text.charCodeAt(i);
    // The ASCII test inline: most characters of most texts take this path.
    const width = code < 0x80 ? BMP[code] === 1 ? 1 : 0 : letterAt(text, i);
    if (width > 0) {
      if (start < 0) start = i;
      i += width;
    } else {
      if (start >= 0) {
        onWord(text.slice(start, i));
        start = -1;
      }
      i++;
    }
  }
  if (start >= 0) onWord(text.slice(start, length));
}
