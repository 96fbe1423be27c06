/** scanSegment and the record codec, on buffers built in memory (no files). */
import assert from "node:assert/strict";
import { scanSegment } from "../../persist/wal_scan.ts";
import { encodeBatch, REC_HARD_STATE, REC_SNAPSHOT } from "../../persist/wal_record.ts";
import { ents } from "./storage_conformance.ts";

/** The bytes of `parts`, one after another (small test buffers only). */
const concat = (...parts: Uint8Array[]) => new Uint8Array(parts.flatMap((p) => [...p]));

Deno.test("wal scan: the two fixed records round-trip through one encoder and decoder", () => {
  const hardState = { term: 7, vote: 2, commit: 40 };
  const buf = encodeBatch(hardState, [], { index: 30, term: 6, kept: 35 });
  const scan = scanSegment(buf);
  assert.equal(scan.damage, undefined);
  assert.equal(scan.end, buf.length);
  assert.deepEqual(scan.records.map((r) => r.record), [
    { type: REC_SNAPSHOT, index: 30, term: 6, kept: 35 },
    { type: REC_HARD_STATE, hardState },
  ]);
  assert.deepEqual(scan.records.map((r) => r.offset), [0, buf.length / 2]);
});

Deno.test("wal scan: zeros after the records end them without damage", () => {
  const records = concat(encodeBatch({ term: 1, vote: 1, commit: 0 }, ents(1, 3, 1)));
  const scan = scanSegment(concat(records, new Uint8Array(4096)));
  assert.equal(scan.damage, undefined);
  assert.equal(scan.end, records.length);
  assert.equal(scan.records.length, 2);
});

Deno.test("wal scan: damage is measured in bytes and records, and valid records after it found", () => {
  const a = encodeBatch({ term: 1, vote: 1, commit: 0 }, ents(1, 2, 1));
  const b = encodeBatch({ term: 1, vote: 1, commit: 2 }, ents(3, 4, 1));
  // b cut inside its hard state record, with a flipped byte in its entries record: two records.
  const torn = concat(a, b.subarray(0, b.length - 5), new Uint8Array(100));
  torn[a.length + 20] ^= 0x01;
  const scan = scanSegment(torn);
  assert.equal(scan.records.length, 2);
  assert.equal(scan.end, a.length);
  let end = a.length + b.length - 5;
  while (torn[end - 1] === 0) end--;
  assert.deepEqual(scan.damage, {
    offset: a.length,
    reason: "CRC mismatch",
    validAfter: -1,
    bytes: end - a.length,
    records: 2,
  });
  // The same flip with b whole: a valid record follows, so it cannot be a torn write.
  const corrupt = concat(a, b);
  corrupt[a.length + 20] ^= 0x01;
  const damage = scanSegment(corrupt).damage!;
  assert.equal(damage.offset, a.length);
  assert.equal(damage.validAfter, a.length + b.length - 33);
});
