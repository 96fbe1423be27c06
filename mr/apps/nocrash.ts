/**
 * Test app: the crash app without the crashes, giving the reference output for the crash test.
 */
import type { KeyValue } from "../app.ts";

/** Emits a=filename, b=length of the filename, c=UTF-8 length of the contents, d="xyzzy". */
export function map(filename: string, contents: string): KeyValue[] {
  return [
    { key: "a", value: filename },
    { key: "b", value: String(filename.length) },
    { key: "c", value: String(new TextEncoder().encode(contents).length) },
    { key: "d", value: "xyzzy" },
  ];
}

/** Returns the sorted values joined with spaces. */
export function reduce(_key: string, values: string[]): string {
  return [...values].sort().join(" ");
}
