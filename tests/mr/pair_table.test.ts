/** The map side's hash table keeps every pair of every key, in emit order, across growth. */
import assert from "node:assert/strict";
import { type Combiner, combineRun, PairTable } from "../../mr/pair_table.ts";
import { seeded } from "./helpers.ts";

/** What the table writes for every key, as a Map (key -> values). */
function contents(table: PairTable): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const keys = table.keys();
  for (let entry = 0; entry < keys.length; entry++) {
    const key = keys[entry];
    assert.equal(table.entryOf(key), entry);
    table.write(entry, (k, v) => {
      assert.equal(k, key);
      out.set(k, [...(out.get(k) ?? []), v]);
    });
  }
  return out;
}

Deno.test("without a combiner: every value of every key in emit order, through many growths", () => {
  const rand = seeded(7);
  const table = new PairTable();
  const expected = new Map<string, string[]>();
  // Keys of all kinds: empty, spaces and tabs, multibyte, astral (surrogate pairs), and enough
  // distinct ones (20,000) for the 1,024-slot table to double several times.
  const special = ["", " ", "a\tb", "é", "日本語", "\u{1F600}x", "\ud800"];
  for (let i = 0; i < 60_000; i++) {
    const key = i % 10 === 0 ? special[i % special.length] : `k${Math.floor(20_000 * rand())}`;
    // Mostly repeats of one value (the counted run), sometimes another or an empty string.
    const r = rand();
    const value = r < 0.7 ? "1" : r < 0.9 ? String(i % 5) : "";
    table.add(key, value);
    expected.set(key, [...(expected.get(key) ?? []), value]);
  }
  assert.equal(table.size, expected.size);
  assert.ok(table.bytes > 0);
  assert.deepEqual(contents(table), expected);
});

Deno.test("with a combiner: one value per key, equal to combining all its values", () => {
  const rand = seeded(3);
  let calls = 0;
  const sum = (_key: string, values: string[]) => {
    calls++;
    return String(values.reduce((n, v) => n + Number(v), 0));
  };
  const table = new PairTable(sum);
  const expected = new Map<string, number>();
  for (let i = 0; i < 200_000; i++) {
    // A few hot keys (long runs of "1", combined every few thousand) and many cold ones.
    const key = rand() < 0.5 ? `hot${i % 3}` : `cold${Math.floor(5000 * rand())}`;
    const value = rand() < 0.95 ? "1" : "2";
    table.add(key, value);
    expected.set(key, (expected.get(key) ?? 0) + Number(value));
  }
  assert.ok(calls > 0, "long runs are combined as they come");
  const got = new Map([...contents(table)].map(([k, v]) => [k, v.map(Number)]));
  assert.deepEqual(got, new Map([...expected].map(([k, n]) => [k, [n]])));
});

Deno.test("a key or value that is not a string, or a combiner result that is not, throws TypeError", () => {
  const table = new PairTable();
  assert.throws(() => table.add(1 as unknown as string, "v"), TypeError);
  assert.throws(() => table.add("k", undefined as unknown as string), TypeError);
  table.add("k", "v");
  assert.throws(() => table.add("k", 2 as unknown as string), TypeError);
  assert.equal(table.size, 1);
  const bad = new PairTable(() => 5 as unknown as string);
  // Distinct values pile up until the combiner runs, and its number is refused.
  assert.throws(() => {
    for (let i = 0; i < 100; i++) bad.add("x", String(i));
  }, /combine returned number for key x/);
});

Deno.test("a run of a million repeats is combined in calls of a few values each", () => {
  let calls = 0;
  let most = 0;
  const sum = (_key: string, values: string[]) => {
    calls++;
    most = Math.max(most, values.length);
    return String(values.reduce((n, v) => n + Number(v), 0));
  };
  const table = new PairTable(sum);
  for (let i = 0; i < 1_000_003; i++) table.add("the", "1");
  assert.deepEqual(contents(table), new Map([["the", ["1000003"]]]));
  assert.ok(most <= 17, `a call got ${most} values`);
  assert.ok(calls < 100, `${calls} combiner calls`);
  // The same directly: combineRun keeps the values' order (here a concatenation shows it).
  const concat = (_key: string, values: string[]) => values.join("");
  assert.equal(combineRun(concat, "k", "ab", 1000), "ab".repeat(1000));
  assert.equal(combineRun(concat, "k", "ab", 1), "ab");
});

Deno.test("with an order-sensitive combiner, runs and distinct values combine in emit order", () => {
  // Concatenation is associative but not commutative: any grouping of consecutive values gives
  // the same string, and any reordering shows.
  const concat = (_key: string, values: string[]) => values.join("");
  const rand = seeded(21);
  const table = new PairTable(concat);
  let expected = "";
  for (let run = 0; run < 400; run++) {
    const value = ["a", "b", "c", ""][Math.floor(rand() * 4)];
    // Runs from 1 to a few hundred repeats; more than 32 distinct runs make the combiner run.
    const repeats = 1 + Math.floor(rand() ** 3 * 300);
    for (let i = 0; i < repeats; i++) table.add("key", value);
    expected += value.repeat(repeats);
  }
  assert.deepEqual(contents(table), new Map([["key", [expected]]]));
});

Deno.test("value() gives an entry's one value, the same when asked again; undefined for several", () => {
  const concat = (_key: string, values: string[]) => values.join("");
  const table = new PairTable(concat);
  for (const value of ["a", "a", "b", "a"]) table.add("k", value);
  table.add("single", "x");
  assert.equal(table.value(0), "aaba");
  assert.equal(table.value(0), "aaba");
  assert.equal(table.value(1), "x");
  const plain = new PairTable();
  plain.add("k", "1");
  assert.equal(plain.value(0), "1");
  plain.add("k", "1");
  assert.equal(plain.value(0), undefined, "two values without a combiner");
});

Deno.test("clear() empties the table for reuse, with a new combiner, small or grown past what it keeps", () => {
  const sum = (_key: string, values: string[]) => String(values.reduce((n, v) => n + Number(v), 0));
  const table = new PairTable(sum);
  // 300,000 distinct keys grow the table past the capacity clear() keeps; 2,000 do not.
  for (const distinct of [300_000, 2000, 2000]) {
    for (let i = 0; i < distinct * 2; i++) table.add(`k${i % distinct}`, "2");
    assert.equal(table.size, distinct);
    assert.equal(table.value(0), "4");
    table.clear();
    assert.equal(table.size, 0);
    assert.equal(table.bytes, 0);
    assert.deepEqual(table.keys(), []);
    // Without a combiner now: every value kept, none of the cleared keys' values among them.
    const expected = new Map<string, string[]>();
    for (let i = 0; i < 3000; i++) {
      const key = `k${i % 1000}`;
      table.add(key, String(i % 3));
      expected.set(key, [...(expected.get(key) ?? []), String(i % 3)]);
    }
    assert.deepEqual(contents(table), expected);
    table.clear(sum);
  }
});

Deno.test("entryOf finds every key's entry, through growth, and -1 for a key not held", () => {
  const table = new PairTable();
  const keys = Array.from({ length: 5_000 }, (_, i) => `key ${i} ${"é".repeat(i % 3)}`);
  for (const key of keys) table.add(key, "v");
  keys.forEach((key, entry) => assert.equal(table.entryOf(key), entry, key));
  // An equal string made apart from the stored one is found too.
  assert.equal(table.entryOf(["key", "6", ""].join(" ")), 6);
  assert.equal(table.entryOf("not there"), -1);
  table.clear();
  assert.equal(table.entryOf(keys[0]), -1);
});

Deno.test("combineRun makes the calls of combining chunk by chunk, level by level, in order", () => {
  // The definition: chunks of 16 copies combined into a value standing for them, that value's
  // run combined the same way, then the leftover copies after it.
  const reference = (combine: Combiner, key: string, value: string, count: number): string => {
    if (count <= 1) return value;
    if (count <= 16) return combine(key, new Array<string>(count).fill(value));
    const rest = count % 16;
    const chunk = combine(key, new Array<string>(16).fill(value));
    const head = reference(combine, key, chunk, (count - rest) / 16);
    if (rest === 0) return head;
    return combine(key, [head, ...new Array<string>(rest).fill(value)]);
  };
  const recorder = (calls: string[][]) => (_key: string, values: string[]) => {
    calls.push([...values]);
    return `(${values.join(",")})`.length > 40 ? `#${calls.length}` : `(${values.join(",")})`;
  };
  const counts = [0, 1, 2, 15, 16, 17, 31, 32, 255, 256, 257, 4095, 4096, 4097, 65_537, 1_000_003];
  for (const count of counts) {
    const got: string[][] = [];
    const want: string[][] = [];
    const result = combineRun(recorder(got), "k", "v", count);
    assert.equal(result, reference(recorder(want), "k", "v", count), `count ${count}`);
    assert.deepEqual(got, want, `count ${count}: the same calls in the same order`);
  }
});
