import assert from "node:assert/strict";
import { join } from "node:path";
import { MapOutput } from "../../mr/map_output.ts";
import { partition } from "../../mr/partition.ts";
import { RecordReader, sortUtf8 } from "../../mr/record_format.ts";
import { withTempDir } from "../lib/run.ts";
import { crc32c } from "../../util/crc32c.ts";
import { seeded } from "./helpers.ts";

async function readRun(path: string): Promise<[string, string][]> {
  const file = await Deno.open(path);
  try {
    const reader = new RecordReader(file, path);
    const pairs: [string, string][] = [];
    while (await reader.next()) pairs.push([reader.key(), reader.value()]);
    return pairs;
  } finally {
    file.close();
  }
}

const sum = (_key: string, values: string[]) => String(values.reduce((n, v) => n + Number(v), 0));

/** Emits `count` random words with value "1"; returns the expected count per word. */
function emitWords(emit: (k: string, v: string) => void, count: number, seed: number) {
  const rand = seeded(seed);
  const words = Array.from({ length: 3000 }, (_, i) => `w${i}${i % 7 === 0 ? " é\t" : ""}`);
  const expected = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const word = words[Math.floor(words.length * rand() ** 2)];
    emit(word, "1");
    expected.set(word, (expected.get(word) ?? 0) + 1);
  }
  return expected;
}

for (const memoryLimit of [undefined, 64 * 1024]) {
  const label = memoryLimit ? "spilling past a small bound" : "in memory";
  Deno.test(`map output with a combiner, ${label}: sorted partitions, one record per key`, async () => {
    await withTempDir("mr-mapout-", async (dir) => {
      const nReduce = 5;
      const output = new MapOutput({
        nReduce,
        combine: sum,
        partitionPath: (r) => join(dir, `part-${r}`),
        spillDir: dir,
        memoryLimit,
      });
      const expected = emitWords(output.emit, 100_000, 11);
      const stats = await output.finish();
      if (memoryLimit) assert.ok(stats.spills > 1, `expected spills, got ${stats.spills}`);
      else assert.equal(stats.spills, 0);
      const got = new Map<string, number>();
      for (let r = 0; r < nReduce; r++) {
        // The checksum finish() reports is the one of the bytes on disk.
        const bytes = await Deno.readFile(join(dir, `part-${r}`));
        assert.deepEqual(stats.partitions[r], { length: bytes.length, crc: crc32c(bytes) });
        const pairs = await readRun(join(dir, `part-${r}`));
        const keys = pairs.map(([k]) => k);
        assert.deepEqual(keys, sortUtf8([...new Set(keys)]), "sorted, one record per key");
        for (const [key, value] of pairs) {
          assert.equal(partition(key, nReduce), r);
          got.set(key, Number(value));
        }
      }
      assert.deepEqual(got, expected);
      assert.equal(stats.records, expected.size);
      // Only the partitions are left: spills and temporaries are gone.
      const names = [];
      for await (const entry of Deno.readDir(dir)) names.push(entry.name);
      assert.deepEqual(names.sort(), Array.from({ length: nReduce }, (_, r) => `part-${r}`));
    });
  });
}

Deno.test("map output without a combiner keeps every value; empty partitions are written", async () => {
  await withTempDir("mr-mapout-", async (dir) => {
    const nReduce = 50;
    const output = new MapOutput({
      nReduce,
      partitionPath: (r) => join(dir, `part-${r}`),
      spillDir: dir,
      memoryLimit: 4096,
      renameIntoPlace: false,
    });
    const emitted: [string, string][] = [];
    for (let i = 0; i < 300; i++) {
      const pair: [string, string] = [i % 3 === 0 ? "same key" : `k${i % 10}`, i % 4 ? `${i}` : ""];
      output.emit(...pair);
      emitted.push(pair);
    }
    const stats = await output.finish();
    assert.ok(stats.spills > 1);
    const all: [string, string][] = [];
    let empty = 0;
    for (let r = 0; r < nReduce; r++) {
      const pairs = await readRun(join(dir, `part-${r}`));
      if (pairs.length === 0) empty++;
      all.push(...pairs);
    }
    assert.ok(empty > 0, "with 11 keys and 50 partitions some partitions are empty");
    const key = ([k, v]: [string, string]) => `${k}\u0001${v}`;
    assert.deepEqual(all.map(key).sort(), emitted.map(key).sort());
    assert.throws(() => output.emit("late", "1"), /after the map task finished/);
  });
});

Deno.test("emit refuses keys and values that are not strings", () => {
  const output = new MapOutput({ nReduce: 1, partitionPath: () => "unused", spillDir: "." });
  assert.throws(() => output.emit(1 as unknown as string, "v"), TypeError);
  assert.throws(() => output.emit("k", undefined as unknown as string), TypeError);
});

Deno.test("map output reports progress while emitting and while writing a large table out", async () => {
  await withTempDir("mr-mapout-", async (dir) => {
    let progress = 0;
    const output = new MapOutput({
      nReduce: 2,
      partitionPath: (r) => join(dir, `part-${r}`),
      spillDir: dir,
      onProgress: () => progress++,
    });
    // No combiner: every one of the 10,000 values is written out at finish().
    for (let i = 0; i < 10_000; i++) output.emit("key", String(i % 3));
    const emitting = progress;
    assert.ok(emitting >= 9, `${emitting} reports while emitting 10,000 pairs`);
    const stats = await output.finish();
    assert.equal(stats.records, 10_000);
    assert.ok(progress - emitting >= 9, `${progress - emitting} reports while writing them`);
  });
});

Deno.test("a map output reset after a discarded (failed) map starts clean", async () => {
  await withTempDir("mr-mapout-", async (dir) => {
    const output = new MapOutput({
      nReduce: 3,
      partitionPath: (r) => join(dir, `old-${r}`),
      spillDir: dir,
      memoryLimit: 16 * 1024,
    });
    for (let i = 0; i < 5000; i++) output.emit(`old${i % 700}`, "x");
    assert.throws(() => output.reset({ nReduce: 1, partitionPath: () => "", spillDir: dir }), {
      message: /still in use/,
    });
    await output.discard();
    assert.equal(output.reusable, true);
    // Another combiner and partition count: nothing of the failed map's keys, values or spills.
    output.reset({
      nReduce: 2,
      combine: sum,
      partitionPath: (r) => join(dir, `new-${r}`),
      spillDir: dir,
    });
    const expected = emitWords(output.emit, 20_000, 5);
    const stats = await output.finish();
    assert.equal(stats.spills, 0);
    const got = new Map<string, number>();
    for (let r = 0; r < 2; r++) {
      for (const [key, value] of await readRun(join(dir, `new-${r}`))) got.set(key, Number(value));
    }
    assert.deepEqual(got, expected);
    const names = [...Deno.readDirSync(dir)].map((entry) => entry.name).sort();
    assert.deepEqual(names, ["new-0", "new-1"]);
  });
});

Deno.test("emit after finish throws, and an output emitted into late is never reset", async () => {
  await withTempDir("mr-mapout-", async (dir) => {
    const output = new MapOutput({
      nReduce: 1,
      partitionPath: () => join(dir, "p"),
      spillDir: dir,
    });
    output.emit("a", "1");
    await output.finish();
    assert.equal(output.reusable, true);
    assert.throws(() => output.emit("late", "1"), /after the map task finished/);
    assert.equal(output.reusable, false);
    assert.throws(
      () => output.reset({ nReduce: 1, partitionPath: () => join(dir, "q"), spillDir: dir }),
      /still in use/,
    );
    assert.throws(() => output.emit("later", "1"), /after the map task finished/);
  });
});

Deno.test("map output writes each run in UTF-8 byte order, astral characters and lone surrogates included", async () => {
  await withTempDir("mr-mapout-", async (dir) => {
    const encoder = new TextEncoder();
    const bmp = ["a", "z", "é", "日", "\ue000", "\ufffd", "\uffff", "~"];
    const astral = [...bmp, "\u{10000}", "\u{1F600}", "\ud800", "\udc00"];
    // Without a surrogate the engine's string sort orders a run; with one, the radix sort does.
    for (const alphabet of [bmp, astral]) {
      const nReduce = 3;
      const output = new MapOutput({
        nReduce,
        combine: sum,
        partitionPath: (r) => join(dir, `part-${r}`),
        spillDir: dir,
      });
      const rand = seeded(alphabet.length);
      for (let i = 0; i < 20_000; i++) {
        let key = "";
        const length = 1 + Math.floor(rand() * 4);
        for (let j = 0; j < length; j++) key += alphabet[Math.floor(rand() * alphabet.length)];
        output.emit(key, "1");
      }
      const stats = await output.finish();
      let records = 0;
      for (let r = 0; r < nReduce; r++) {
        const path = join(dir, `part-${r}`);
        const file = await Deno.open(path);
        try {
          const reader = new RecordReader(file, path);
          let previous: number[] | undefined;
          while (await reader.next()) {
            records++;
            const key = [...reader.buffer.subarray(reader.keyStart, reader.keyEnd)];
            assert.deepEqual(key, [...encoder.encode(reader.key())]);
            if (previous !== undefined) {
              // Equal bytes only for a lone surrogate beside U+FFFD (two keys, one byte string).
              const order = compareLists(previous, key);
              assert.ok(order <= 0, `part-${r}: ${previous} before ${key}`);
            }
            previous = key;
          }
        } finally {
          file.close();
        }
      }
      assert.equal(records, stats.records);
    }
  });
});

/** Compares two byte lists as unsigned bytes. */
function compareLists(a: number[], b: number[]): number {
  for (let i = 0; i < a.length && i < b.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}
