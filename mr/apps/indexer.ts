/**
 * Inverted index: for each word, how many input files contain it and which ones.
 * Streaming form: map emits each distinct word of its input once.
 */
import type { Emit } from "../app.ts";
import { forEachWord } from "./_words.ts";

/** Emits (word, filename) once per distinct word of the file. */
export function map(filename: string, contents: string, emit: Emit): void {
  const words = new Set<string>();
  forEachWord(contents, (word) => words.add(word));
  for (const word of words) emit(word, filename);
}

/** Returns "<number of files> <sorted, comma-joined file names>". */
export function reduce(_key: string, values: string[]): string {
  const files = [...new Set(values)].sort();
  return `${files.length} ${files.join(",")}`;
}
