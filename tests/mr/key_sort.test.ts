/** Keys are sorted by entry number in the byte order of their UTF-8 encodings. */
import assert from "node:assert/strict";
import { sortByKey, sortKeys } from "../../mr/key_sort.ts";
import { compareBytes } from "../../mr/record_format.ts";
import { seeded } from "./helpers.ts";

const encoder = new TextEncoder();

/** The keys in UTF-8 byte order, by encoding each one: the definition sortByKey must meet. */
function byBytes(keys: string[]): string[] {
  const encoded = keys.map((key) => ({ key, bytes: encoder.encode(key) }));
  encoded.sort((a, b) => compareBytes(a.bytes, 0, a.bytes.length, b.bytes, 0, b.bytes.length));
  return encoded.map(({ key }) => key);
}

/** The keys as sortByKey orders them (every entry of `keys`). */
function sorted(keys: string[]): string[] {
  const order = Int32Array.from(keys, (_, i) => i);
  sortByKey(keys, order);
  return Array.from(order, (entry) => keys[entry]);
}

Deno.test("astral characters sort after U+E000..U+FFFF, as their UTF-8 bytes do", () => {
  // JavaScript's < puts "\u{10000}" (surrogates D800 DC00) before "\uffff"; UTF-8 does not.
  const keys = ["\u{10000}", "\uffff", "\ue000", "\ud7ff", "a", "\u{1F600}", "\u{1F600}a", ""];
  assert.deepEqual(sorted(keys), [
    "",
    "a",
    "\ud7ff",
    "\ue000",
    "\uffff",
    "\u{10000}",
    "\u{1F600}",
    "\u{1F600}a",
  ]);
  assert.deepEqual(sorted(keys), byBytes(keys));
});

Deno.test("many keys with shared prefixes, prefixes of each other and every kind of character", () => {
  const rand = seeded(5);
  const alphabet = [
    "a",
    "b",
    "z",
    "A",
    " ",
    "\t",
    "\0",
    "é",
    "ß",
    "日",
    "\ue000",
    "\uffff",
    "\u{1F600}",
    "\u{10000}",
  ];
  const set = new Set<string>();
  // Groups sharing a long prefix force several passes (two code units each) before insertion.
  const prefixes = ["", "common-prefix-", "com", "\u{1F600}\u{1F600}", "aaaa"];
  while (set.size < 20_000) {
    let key = prefixes[Math.floor(rand() * prefixes.length)];
    const length = Math.floor(rand() * 7);
    for (let i = 0; i < length; i++) key += alphabet[Math.floor(rand() * alphabet.length)];
    set.add(key);
  }
  const keys = [...set];
  assert.deepEqual(sorted(keys), byBytes(keys));
});

Deno.test("a range of the order is sorted and the rest left alone", () => {
  const keys = ["d", "c", "b", "a", "f", "e"];
  const order = Int32Array.from([0, 1, 2, 3, 4, 5]);
  sortByKey(keys, order, 1, 4);
  assert.deepEqual([...order], [0, 3, 2, 1, 4, 5]);
});

Deno.test("more than a million keys in one range (positions beside one code unit)", () => {
  const rand = seeded(9);
  const keys = Array.from({ length: 1_100_000 }, (_, i) => `${Math.floor(rand() * 1e9)}:${i}`);
  const order = Int32Array.from(keys, (_, i) => i);
  sortByKey(keys, order);
  // Digits and ":" only: JavaScript's default order is the byte order here.
  const expected = [...keys].sort();
  // Compared one by one: a failing deepEqual of a million strings takes minutes to print.
  const wrong = expected.findIndex((key, i) => keys[order[i]] !== key);
  assert.equal(wrong, -1, `position ${wrong}: ${keys[order[wrong]]}, expected ${expected[wrong]}`);
});

Deno.test("a lone surrogate sorts as U+FFFD, the bytes the record writer writes for it", () => {
  // TextEncoder (and so every run) writes an unpaired surrogate as EF BF BD: a run sorted as if
  // it were an astral character is out of byte order, and the reduce's merge refuses it.
  const rand = seeded(11);
  const alphabet = [
    "a",
    "\ud800",
    "\udc00",
    "\udbff",
    "\ufffd",
    "\ufffe",
    "\uffff",
    "\ue000",
    "\u{10000}",
  ];
  for (const size of [20, 3_000]) {
    const set = new Set<string>();
    while (set.size < size) {
      let key = "";
      const length = Math.floor(rand() * 5);
      for (let i = 0; i < length; i++) key += alphabet[Math.floor(rand() * alphabet.length)];
      set.add(key);
    }
    const keys = [...set];
    const bytes = sorted(keys).map((key) => encoder.encode(key));
    for (let i = 1; i < bytes.length; i++) {
      const [a, b] = [bytes[i - 1], bytes[i]];
      assert.ok(
        compareBytes(a, 0, a.length, b, 0, b.length) <= 0,
        `${size} keys: ${a} sorted before ${b}`,
      );
    }
  }
});

Deno.test("many keys sharing a prefix of 100,000 code units (one radix pass per two would overflow the stack)", () => {
  const prefix = "x".repeat(50_000) + "\u{1F600}".repeat(25_000);
  const keys = Array.from({ length: 100 }, (_, i) => prefix + String(99 - i).padStart(2, "0"));
  keys.push(prefix, prefix + "\ufffd", "x");
  assert.deepEqual(sorted(keys), byBytes(keys));
});

Deno.test("sortKeys: the engine's order where no key holds a surrogate, the radix sort where one does", () => {
  const rand = seeded(21);
  const bmp = ["a", "b", "A", " ", "\0", "é", "日", "\ud7ff", "\ue000", "\ufffd", "\uffff"];
  const astral = [...bmp, "\u{10000}", "\u{1F600}", "\ud800", "\udc00"];
  for (const [alphabet, surrogates] of [[bmp, false], [astral, true]] as const) {
    const set = new Set<string>();
    while (set.size < 5_000) {
      let key = "";
      const length = 1 + Math.floor(rand() * 6);
      for (let i = 0; i < length; i++) key += alphabet[Math.floor(rand() * alphabet.length)];
      set.add(key);
    }
    const keys = [...set];
    const expected = byBytes(keys);
    sortKeys(keys, surrogates);
    if (surrogates) {
      // A lone surrogate and U+FFFD have the same bytes: compare the bytes, not the strings.
      const bytes = (list: string[]) => list.map((key) => [...encoder.encode(key)].join(","));
      assert.deepEqual(bytes(keys), bytes(expected));
    } else {
      assert.deepEqual(keys, expected);
    }
  }
});
