import assert from "node:assert/strict";
import {
  compareUtf8,
  decodeUtf8,
  RecordFormatError,
  RecordReader,
  RecordWriter,
  sortUtf8,
  TextWriter,
  utf8Length,
} from "../../mr/record_format.ts";
import { seeded } from "./helpers.ts";

/** Collects a writer's blocks; `async` makes the sink return promises. */
function collector(async = false) {
  const parts: Uint8Array[] = [];
  const sink = (bytes: Uint8Array) => {
    parts.push(bytes.slice());
    return async ? Promise.resolve() : undefined;
  };
  const bytes = () => {
    const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let pos = 0;
    for (const p of parts) {
      all.set(p, pos);
      pos += p.length;
    }
    return all;
  };
  return { sink, bytes, parts };
}

/** A byte source that hands out at most `chunk` bytes per read, like a slow socket. */
function source(bytes: Uint8Array, chunk: number) {
  let pos = 0;
  return {
    read(buffer: Uint8Array): Promise<number | null> {
      if (pos >= bytes.length) return Promise.resolve(null);
      const n = Math.min(chunk, buffer.length, bytes.length - pos);
      buffer.set(bytes.subarray(pos, pos + n));
      pos += n;
      return Promise.resolve(n);
    },
  };
}

async function readAll(bytes: Uint8Array, chunk: number, blockSize?: number) {
  const reader = new RecordReader(source(bytes, chunk), "test-run", blockSize);
  const pairs: [string, string][] = [];
  while (await reader.next()) pairs.push([reader.key(), reader.value()]);
  return pairs;
}

const AWKWARD = [
  "",
  "plain",
  "with space",
  "tab\there",
  "new\nline",
  "back\\slash",
  "café",
  "東京",
  "😀 emoji",
  "x".repeat(5000),
  "\u0000nul",
];

Deno.test("records round-trip any key and value, across every read size and block size", async () => {
  const pairs: [string, string][] = [];
  for (const key of AWKWARD) for (const value of AWKWARD) pairs.push([key, value]);
  for (const async of [false, true]) {
    const out = collector(async);
    const writer = new RecordWriter(out.sink, 64);
    for (const [key, value] of pairs) {
      const pending = writer.add(key, value);
      if (pending) await pending;
    }
    await writer.close();
    assert.equal(writer.records, pairs.length);
    assert.ok(out.parts.length > 10, "small blocks should produce many sink calls");
    const bytes = out.bytes();
    assert.equal(writer.bytes, bytes.length);
    for (const chunk of [1, 7, 4096, 1 << 20]) {
      assert.deepEqual(await readAll(bytes, chunk, 32), pairs, `chunk ${chunk}`);
    }
  }
});

Deno.test("an empty run is valid and has no records", async () => {
  const out = collector();
  const writer = new RecordWriter(out.sink);
  writer.close();
  assert.deepEqual(await readAll(out.bytes(), 3), []);
});

Deno.test("a truncated, foreign or padded run is refused, never read short", async () => {
  const out = collector();
  const writer = new RecordWriter(out.sink);
  for (let i = 0; i < 100; i++) writer.add(`key${i}`, `value${i}`);
  writer.close();
  const bytes = out.bytes();
  for (const cut of [0, 3, 10, bytes.length - 5, bytes.length - 1]) {
    await assert.rejects(readAll(bytes.subarray(0, cut), 4096), RecordFormatError, `cut ${cut}`);
  }
  const foreign = new TextEncoder().encode("hello\tworld\n");
  await assert.rejects(readAll(foreign, 4096), /bad magic/);
  const padded = new Uint8Array(bytes.length + 1);
  padded.set(bytes);
  await assert.rejects(readAll(padded, 1 << 20), /after the end marker/);
});

Deno.test("utf8Length and decodeUtf8 agree with TextEncoder and TextDecoder", () => {
  const rand = seeded(7);
  const alphabet = ["a", "Z", " ", "\t", "é", "ß", "東", "😀", "\ud800", "\udfff", "1", "~"];
  for (let i = 0; i < 2000; i++) {
    let s = "";
    const n = Math.floor(rand() * 30);
    for (let j = 0; j < n; j++) s += alphabet[Math.floor(rand() * alphabet.length)];
    const bytes = new TextEncoder().encode(s);
    assert.equal(utf8Length(s), bytes.length, JSON.stringify(s));
    assert.equal(decodeUtf8(bytes, 0, bytes.length), new TextDecoder().decode(bytes));
  }
});

Deno.test("sortUtf8 and compareUtf8 order strings by their UTF-8 bytes", () => {
  const keys = ["b", "a", "\uffff", "😀", "\ue000", "é", "", "ab", "a\u0000", "𝒜", "東"];
  const byBytes = [...keys].sort((x, y) => {
    const a = new TextEncoder().encode(x);
    const b = new TextEncoder().encode(y);
    for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
    return a.length - b.length;
  });
  assert.deepEqual(sortUtf8([...keys]), byBytes);
  assert.deepEqual([...keys].sort(compareUtf8), byBytes);
  // Without astral characters the native sort path is used: same order.
  const bmp = keys.filter((k) => !/[\ud800-\udfff]/.test(k));
  assert.deepEqual(sortUtf8([...bmp]), byBytes.filter((k) => bmp.includes(k)));
});

Deno.test("TextWriter writes UTF-8 text through blocks", () => {
  const out = collector();
  const writer = new TextWriter(out.sink, 8);
  const lines = ["héllo 1\n", "東京 2\n", "x".repeat(100) + "\n"];
  for (const line of lines) writer.add(line);
  writer.close();
  assert.equal(new TextDecoder().decode(out.bytes()), lines.join(""));
});

Deno.test("TextWriter.line writes the bytes add() writes for the same line, from the key's bytes", () => {
  const rand = seeded(11);
  const alphabet = ["a", "Z", " ", "\t", "\0", "é", "東", "😀", "\ud800", "1", "~", "\x7f"];
  const pick = (n: number) => {
    let s = "";
    for (let j = 0; j < n; j++) s += alphabet[Math.floor(rand() * alphabet.length)];
    return s;
  };
  for (const blockSize of [8, 64, 1 << 16]) {
    const byLine = collector();
    const byAdd = collector();
    const lines = new TextWriter(byLine.sink, blockSize);
    const adds = new TextWriter(byAdd.sink, blockSize);
    for (let i = 0; i < 500; i++) {
      // Keys as a merge has them: decoded from their bytes (valid UTF-8, lone surrogates
      // already U+FFFD), in a buffer longer than the key.
      const keyBytes = new TextEncoder().encode(pick(Math.floor(rand() * 12)));
      const key = new TextDecoder().decode(keyBytes);
      const buffer = new Uint8Array(keyBytes.length + 5).fill(0xff);
      buffer.set(keyBytes);
      const value = pick(Math.floor(rand() ** 3 * 60));
      lines.line(buffer, keyBytes.length, key, value);
      adds.add(`${key} ${value}\n`);
    }
    lines.close();
    adds.close();
    assert.deepEqual(byLine.bytes(), byAdd.bytes(), `block size ${blockSize}`);
    assert.equal(lines.bytes, byAdd.bytes().length);
  }
});

Deno.test("decodeUtf8 of every one- and two-byte sequence agrees with TextDecoder, twice", () => {
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(3);
  for (let pass = 0; pass < 2; pass++) {
    for (let a = 0; a < 256; a++) {
      buffer[1] = a;
      assert.equal(decodeUtf8(buffer, 1, 2), decoder.decode(buffer.subarray(1, 2)));
      for (let b = 0; b < 256; b++) {
        buffer[2] = b;
        assert.equal(decodeUtf8(buffer, 1, 3), decoder.decode(buffer.subarray(1, 3)));
      }
    }
  }
});

Deno.test("short and long records around the one-byte length prefix round-trip, lone surrogates as U+FFFD", async () => {
  // 41 UTF-16 units is the longest string written without a length pass; 3-byte characters
  // make it 123 bytes, still a one-byte prefix; 42 units take the general path.
  const edges = [
    "東".repeat(41),
    "東".repeat(42),
    "東".repeat(43),
    "東".repeat(50),
    "a".repeat(41),
    "a".repeat(42),
    "a".repeat(40) + "é",
    "😀".repeat(20) + "x",
    "\ud800",
    "a\udc00b",
    "x\ud83d",
    "",
  ];
  const out = collector();
  const writer = new RecordWriter(out.sink, 256);
  for (const key of edges) for (const value of edges) writer.add(key, value);
  writer.close();
  // What a lone surrogate becomes in UTF-8: what TextEncoder writes for it.
  const wellFormed = (text: string) => new TextDecoder().decode(new TextEncoder().encode(text));
  const expected = edges.flatMap((key) => edges.map((v) => [wellFormed(key), wellFormed(v)]));
  assert.deepEqual(await readAll(out.bytes(), 100), expected);
  assert.equal(writer.bytes, out.bytes().length);
});
