/**
 * Word count: a word is a maximal run of Unicode letters; the output is each word's count.
 */
import type { KeyValue } from "../app.ts";

const WORD = /\p{L}+/gu;

/** Emits (word, "1") for every word of the file. */
export function map(_filename: string, contents: string): KeyValue[] {
  const words = contents.match(WORD) ?? [];
  const pairs = new Array<KeyValue>(words.length);
  for (let i = 0; i < words.length; i++) pairs[i] = { key: words[i], value: "1" };
  return pairs;
}

/** Sums the counts of one word (values are "1" from map, or partial sums from combine). */
export function reduce(_key: string, values: string[]): string {
  return String(sum(values));
}

/** Pre-sums one map task's counts of a word, so intermediate data has one line per word. */
export function combine(_key: string, values: string[]): string {
  return String(sum(values));
}

function sum(values: string[]): number {
  let total = 0;
  for (const value of values) total += value === "1" ? 1 : Number(value);
  return total;
}
