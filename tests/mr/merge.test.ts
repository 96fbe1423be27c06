import assert from "node:assert/strict";
import { mergeGroups, reduceRuns, UnsortedRunError } from "../../mr/merge.ts";
import { RecordReader, RecordWriter, sortUtf8 } from "../../mr/record_format.ts";
import { seeded } from "./helpers.ts";

/**
 * Encodes pairs as one run and returns a reader over it that reads `chunk` bytes at a time,
 * with blocking reads too when `sync` (as a local file has).
 */
function run(
  pairs: [string, string][],
  chunk = 1 << 20,
  blockSize = 1 << 20,
  sync = false,
): RecordReader {
  const parts: Uint8Array[] = [];
  const writer = new RecordWriter((b) => void parts.push(b.slice()), 256);
  for (const [key, value] of pairs) writer.add(key, value);
  writer.close();
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    bytes.set(p, pos);
    pos += p.length;
  }
  let at = 0;
  const readSync = (buffer: Uint8Array): number | null => {
    if (at >= bytes.length) return null;
    const n = Math.min(chunk, buffer.length, bytes.length - at);
    buffer.set(bytes.subarray(at, at + n));
    at += n;
    return n;
  };
  const read = (buffer: Uint8Array) => Promise.resolve(readSync(buffer));
  return new RecordReader(sync ? { read, readSync } : { read }, "test", blockSize);
}

function sortedPairs(pairs: [string, string][]): [string, string][] {
  const byKey = new Map<string, string[]>();
  for (const [k, v] of pairs) byKey.set(k, [...(byKey.get(k) ?? []), v]);
  return sortUtf8([...byKey.keys()]).flatMap((k) =>
    byKey.get(k)!.map((v): [string, string] => [k, v])
  );
}

Deno.test("mergeGroups yields each key once, in byte order, with all its values", async () => {
  const rand = seeded(3);
  const words = ["a", "b", "tab\tkey", "space key", "東京", "😀", "\uffff", "", "zz", "é"];
  const runs: [string, string][][] = [];
  const expected = new Map<string, string[]>();
  for (let r = 0; r < 7; r++) {
    const pairs: [string, string][] = [];
    for (let i = 0; i < 200; i++) {
      pairs.push([words[Math.floor(rand() * words.length)], `${r}:${i}`]);
    }
    const sorted = sortedPairs(pairs);
    runs.push(sorted);
    for (const [k, v] of sorted) expected.set(k, [...(expected.get(k) ?? []), v]);
  }
  runs.push([]); // An empty run merges as nothing.
  const seen: [string, string[]][] = [];
  await mergeGroups(
    runs.map((p) => run(p, 13, 64)),
    (key, values) => void seen.push([key, values]),
  );
  assert.deepEqual(seen.map(([k]) => k), sortUtf8([...expected.keys()]));
  // Values come run by run, and within a run in its order.
  for (const [key, values] of seen) assert.deepEqual(values, expected.get(key), key);
});

Deno.test("mergeGroups refuses runs out of order instead of repeating a key", async () => {
  await assert.rejects(
    mergeGroups([run([["b", "1"], ["a", "2"]])], () => {}),
    UnsortedRunError,
  );
});

Deno.test("reduceRuns writes one sorted line per key, awaiting async reducers", async () => {
  const runs = [
    run([["apple", "1"], ["pear", "2"]]),
    run([["apple", "3"], ["fig", ""], ["pear", "4"]]),
  ];
  const chunks: Uint8Array[] = [];
  const stats = await reduceRuns(
    runs,
    (key, values) => Promise.resolve(`${key.length}:${values.join("+")}`),
    (b) => void chunks.push(b.slice()),
  );
  const text = chunks.map((c) => new TextDecoder().decode(c)).join("");
  assert.equal(text, "apple 5:1+3\nfig 3:\npear 4:2+4\n");
  assert.deepEqual(stats, {
    keys: 3,
    records: 5,
    bytesWritten: new TextEncoder().encode(text).length,
  });
  await assert.rejects(
    reduceRuns([run([["k", "v"]])], () => 7 as unknown as string, () => {}),
    /reduce returned number for key k/,
  );
});

Deno.test("reduceRuns calls reduce without a receiver, as a module's function is called", async () => {
  const receivers: unknown[] = [];
  await reduceRuns(
    [run([["a", "1"], ["b", "2"]])],
    function (this: unknown, key: string) {
      receivers.push(this);
      return key;
    },
    () => {},
  );
  assert.deepEqual(receivers.map((r) => typeof r), ["undefined", "undefined"]);
});

Deno.test("one key with a million values reaches reduce as one group", async () => {
  const pairs: [string, string][] = [];
  for (let i = 0; i < 500_000; i++) pairs.push(["only", i % 2 === 0 ? "1" : ""]);
  let calls = 0;
  let total = 0;
  await mergeGroups([run(pairs), run(pairs)], (key, values) => {
    calls++;
    assert.equal(key, "only");
    total = values.length;
  });
  assert.equal(calls, 1);
  assert.equal(total, 1_000_000);
});

Deno.test("mergeGroups: runs that end early, late or at once all merge whole", async () => {
  // Runs of very different lengths over a large vocabulary, so runs end while others go on, at
  // keys some other run also holds, and several end at the same key.
  const rand = seeded(17);
  const vocabulary = Array.from({ length: 400 }, (_, i) => `k${(i * 7919) % 1000}`);
  for (let round = 0; round < 20; round++) {
    const runs: [string, string][][] = [];
    const expected = new Map<string, string[]>();
    const count = 1 + Math.floor(rand() * 9);
    for (let r = 0; r < count; r++) {
      const length = Math.floor(rand() ** 2 * 300);
      const from = Math.floor(rand() * vocabulary.length);
      const pairs: [string, string][] = [];
      for (let i = 0; i < length; i++) {
        const word = vocabulary[(from + Math.floor(rand() * 60)) % vocabulary.length];
        pairs.push([word, `${r}:${i}`]);
      }
      const sorted = sortedPairs(pairs);
      runs.push(sorted);
      for (const [k, v] of sorted) expected.set(k, [...(expected.get(k) ?? []), v]);
    }
    const seen: [string, string[]][] = [];
    await mergeGroups(
      runs.map((p) => run(p, 29, 128)),
      (key, values) => void seen.push([key, values]),
    );
    assert.deepEqual(seen.map(([k]) => k), sortUtf8([...expected.keys()]), `round ${round}`);
    for (const [key, values] of seen) assert.deepEqual(values, expected.get(key), key);
  }
});

Deno.test("mergeGroups orders keys that share their first bytes, hold zero bytes or end early", async () => {
  // Around the merge's numeric key heads (the first 6 bytes): keys of 5, 6 and 7 bytes with a
  // common start, trailing and inner zero bytes, long keys that differ only late, bytes >= 0x80.
  const words = [
    "",
    "\0",
    "\0\0\0\0\0\0\0",
    "a",
    "a\0",
    "a\0\0\0\0\0",
    "a\0\0\0\0\0\0",
    "abcde",
    "abcdef",
    "abcdefg",
    "abcdef\0",
    "abcdeg",
    "abcdefghijklmnop",
    "abcdefghijklmnoq",
    "abcdefghijklmno",
    "abcdé",
    "abcdéf",
    "東京東京",
    "\uffff\uffff",
    "😀😀",
    "zzzzzz",
    "zzzzzzz",
  ];
  const rand = seeded(29);
  for (let round = 0; round < 30; round++) {
    const count = 1 + (round % 9);
    const runs: [string, string][][] = [];
    const expected = new Map<string, string[]>();
    for (let r = 0; r < count; r++) {
      const pairs: [string, string][] = [];
      const length = Math.floor(rand() * 40);
      for (let i = 0; i < length; i++) {
        pairs.push([words[Math.floor(rand() * words.length)], `${r}:${i}`]);
      }
      const sorted = sortedPairs(pairs);
      runs.push(sorted);
      for (const [k, v] of sorted) expected.set(k, [...(expected.get(k) ?? []), v]);
    }
    const seen: [string, string[]][] = [];
    await mergeGroups(
      runs.map((p, r) => run(p, 7 + r, 32, (round + r) % 2 === 0)),
      (key, values) => void seen.push([key, values]),
    );
    assert.deepEqual(seen.map(([k]) => k), sortUtf8([...expected.keys()]), `round ${round}`);
    for (const [key, values] of seen) assert.deepEqual(values, expected.get(key), key);
  }
});

Deno.test("mergeGroups refuses a run that goes back to keys sharing their first bytes", async () => {
  const descending: [string, string][] = [
    ["abcdefgh", "1"],
    ["abcdefg\0", "1"],
    ["abcdefg", "1"],
    ["abcdef", "1"],
    ["abc", "1"],
    ["a\0", "1"],
    ["a", "1"],
  ];
  for (let i = 0; i + 1 < descending.length; i++) {
    const pair = descending.slice(i, i + 2);
    await assert.rejects(mergeGroups([run(pair)], () => {}), UnsortedRunError, pair[0][0]);
    // The later key also comes from another run first: the run going back then repeats it.
    await assert.rejects(
      mergeGroups([run([pair[1]]), run(pair)], () => {}),
      UnsortedRunError,
      pair[0][0],
    );
  }
});
