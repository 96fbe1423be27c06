import assert from "node:assert/strict";
import { crc32c } from "../../util/crc32c.ts";

Deno.test("crc32c matches the Castagnoli check values", () => {
  const enc = new TextEncoder();
  assert.equal(crc32c(enc.encode("123456789")), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  const bytes = enc.encode("The quick brown fox jumps over the lazy dog, twice over.");
  assert.equal(crc32c(bytes, crc32c(bytes, 0, 0, 13), 13), crc32c(bytes));
});

Deno.test("crc32c agrees with a bitwise reference at every alignment and length", () => {
  const reference = (b: Uint8Array, start: number, end: number) => {
    let c = 0xffffffff;
    for (let i = start; i < end; i++) {
      c ^= b[i];
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    }
    return ~c >>> 0;
  };
  const backing = new Uint8Array(200);
  for (let i = 0; i < backing.length; i++) backing[i] = (i * 167 + 13) & 0xff;
  for (const lead of [0, 1, 3, 5]) {
    const view = backing.subarray(lead); // non-zero byteOffset exercises the DataView path
    for (let start = 0; start < 20; start += 3) {
      for (let end = start; end < 150; end += 7) {
        assert.equal(crc32c(view, 0, start, end), reference(view, start, end));
      }
    }
  }
});
