/** net/sha256.ts: the digest node:crypto gives, for every padding case; equalBytes. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { equalBytes, sha256 } from "../../net/sha256.ts";
import { tokenDigest, tokenMatches } from "../../net/handshake.ts";

function reference(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(data).digest());
}

Deno.test("sha256 of the FIPS 180-4 examples", () => {
  const hex = (bytes: Uint8Array) =>
    Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  assert.equal(
    hex(sha256("abc")),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  assert.equal(
    hex(sha256("")),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
  assert.equal(
    hex(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
  );
});

Deno.test("sha256 matches node:crypto at every length around the block boundaries", () => {
  // Lengths 0..300 cover one, two and several blocks, and the 55/56/64 padding edges.
  let seed = 7;
  for (let length = 0; length <= 300; length++) {
    const data = new Uint8Array(length);
    for (let i = 0; i < length; i++) data[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    assert.deepEqual(sha256(data), reference(data), `length ${length}`);
  }
  const text = "wörd-\u{1F600}-token";
  assert.deepEqual(sha256(text), reference(new TextEncoder().encode(text)));
});

Deno.test("equalBytes and tokenMatches", () => {
  assert.equal(equalBytes(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3])), true);
  assert.equal(equalBytes(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4])), false);
  assert.equal(equalBytes(new Uint8Array([1, 2]), new Uint8Array([1, 2, 3])), false);
  const digests = ["first-token-0123456789", "second-token-0123456789"].map(tokenDigest);
  assert.equal(tokenMatches("second-token-0123456789", digests), true);
  assert.equal(tokenMatches("third-token-0123456789", digests), false);
});
