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
