import assert from "node:assert/strict";
import { forEachWord } from "../../mr/apps/_words.ts";
import { seeded } from "./helpers.ts";

function words(text: string): string[] {
  const found: string[] = [];
  forEachWord(text, (word) => found.push(word));
  return found;
}

Deno.test("forEachWord finds exactly the matches of /\\p{L}+/gu", () => {
  const rand = seeded(99);
  const pieces = [
    "a",
    "Z",
    " ",
    "\n",
    "'",
    "-",
    "7",
    "é",
    "ß",
    "東",
    "日本",
    "Ω",
    "𝒜",
    "😀",
    "\u0301",
    "\ud800",
    "\udc00",
    "\u00a0",
    "ǅ",
    "ª",
    "\uffff",
    "_",
    "\t",
  ];
  for (let i = 0; i < 3000; i++) {
    let text = "";
    const n = Math.floor(rand() * 40);
    for (let j = 0; j < n; j++) text += pieces[Math.floor(rand() * pieces.length)];
    assert.deepEqual(words(text), text.match(/\p{L}+/gu) ?? [], JSON.stringify(text));
  }
});

Deno.test("forEachWord over texts of many chunks: words at every chunk edge come out whole", () => {
  // Texts longer than the tokenizer's chunk of lines, with words touching line breaks and
  // astral letters and lone surrogates beside them, so chunks end in every kind of place.
  const rand = seeded(7);
  const pieces = ["ab", "é", "𝒜", "\n", " ", "\ud800", "日本", "\n\n", "x\n", "\ny"];
  for (let round = 0; round < 12; round++) {
    const parts: string[] = [];
    const length = 20_000 + Math.floor(rand() * 60_000);
    let size = 0;
    // A long run without any line break now and then: a chunk may only end at the text's end.
    const lineFree = round % 4 === 0;
    while (size < length) {
      const piece = pieces[Math.floor(rand() * pieces.length)];
      const part = lineFree ? piece.replaceAll("\n", " ") : piece;
      parts.push(part);
      size += part.length;
    }
    const text = parts.join("") + (round % 2 === 0 ? "tail" : "");
    assert.deepEqual(words(text), text.match(/\p{L}+/gu) ?? [], `round ${round}`);
  }
});
