import assert from "node:assert/strict";
import { fnv1a32, partition, partitionKeys } from "../../mr/partition.ts";
import { seeded } from "./helpers.ts";

function referenceFnv(key: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(key)) hash = Math.imul(hash ^ byte, 0x01000193);
  return hash >>> 0;
}

Deno.test("fnv1a32 matches the published FNV-1a test vectors", () => {
  assert.equal(fnv1a32(""), 0x811c9dc5);
  assert.equal(fnv1a32("a"), 0xe40c292c);
  assert.equal(fnv1a32("foobar"), 0xbf9cf968);
});

Deno.test("fnv1a32 hashes the UTF-8 bytes of any string, lone surrogates included", () => {
  const samples = [
    "café",
    "Straße",
    "東京",
    "𝒜lpha",
    "emoji 😀!",
    "\ud800",
    "a\udc00b",
    "\u07ff\u0800",
  ];
  const rand = seeded(42);
  for (let i = 0; i < 500; i++) {
    let s = "";
    const length = Math.floor(rand() * 8);
    for (let j = 0; j < length; j++) s += String.fromCharCode(Math.floor(rand() * 0x10000));
    samples.push(s);
  }
  for (const sample of samples) assert.equal(fnv1a32(sample), referenceFnv(sample), sample);
});

Deno.test("partition masks to 31 bits before taking the remainder", () => {
  // fnv1a32("a") = 0xe40c292c has the top bit set: masking changes the result.
  assert.equal(partition("a", 10), (0xe40c292c & 0x7fffffff) % 10);
  assert.equal(partition("a", 10), 2);
  for (const key of ["x", "hello", "Zürich"]) {
    const p = partition(key, 7);
    assert.ok(p >= 0 && p < 7);
  }
});

Deno.test("partitionKeys gives every key its partition and tells whether one holds a surrogate", () => {
  const plain = ["a", "hello", "Zürich", "東京", "\ue000", "\uffff", "\ufffd", ""];
  const parts = new Int32Array(plain.length);
  assert.equal(partitionKeys(plain, 7, parts), false, "no surrogate among BMP keys");
  assert.deepEqual([...parts], plain.map((key) => partition(key, 7)));
  for (const odd of ["\u{1F600}", "x\ud800", "\udc00y", "a\u{10000}b"]) {
    const keys = [...plain, odd];
    const all = new Int32Array(keys.length);
    assert.equal(partitionKeys(keys, 7, all), true, `a key holds ${JSON.stringify(odd)}`);
    assert.deepEqual([...all], keys.map((key) => partition(key, 7)));
    // The flag is per call: the next table without one says so again.
    assert.equal(partitionKeys(plain, 7, parts), false);
  }
});
