/**
 * Inverted index: for each word, how many input files contain it and which ones.
 */
import type { KeyValue } from "../app.ts";

const WORD = /\p{L}+/gu;

/** Emits (word, filename) once per distinct word of the file. */
export function map(filename: string, contents: string): KeyValue[] {
  const words = new Set(contents.match(WORD) ?? []);
  return [...words].map((word) => ({ key: word, value: filename }));
}

/** Returns "<number of files> <sorted, comma-joined file names>". */
export function reduce(_key: string, values: string[]): string {
  const files = [...values].sort();
  return `${files.length} ${files.join(",")}`;
}
