/**
 * Word count: a word is a maximal run of Unicode letters; the output is each word's count.
 * Streaming form: map emits each word as it finds it, and the engine's map-side combiner keeps
 * one partial sum per distinct word.
 */
import type { Emit } from "../app.ts";
import { forEachWord } from "./_words.ts";

/** Emits (word, "1") for every word of the file. */
export function map(_filename: string, contents: string, emit: Emit): void {
  // emit itself is the callback, not a closure made per call: the tokenizer's optimized code
  // calls (and inlines) one function in every map, where a new closure per map is a new call
  // target that throws that code away once more (V8 deopts on "wrong call target").
  forEachWord(contents, emit, "1");
}

/** Sums the counts of one word (values are "1" from map, or partial sums from combine). */
export function reduce(_key: string, values: string[]): string {
  return String(sum(values));
}

/** Pre-sums one map task's counts of a word, so intermediate data has one record per word. */
export function combine(_key: string, values: string[]): string {
  return String(sum(values));
}

function sum(values: string[]): number {
  let total = 0;
  for (const value of values) total += value === "1" ? 1 : Number(value);
  return total;
}
