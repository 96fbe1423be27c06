import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Emit, loadApp, type MapReduceApp } from "../../mr/app.ts";
import { runMap, runMapInputs, runReduce } from "../../mr/engine.ts";
import { RecordReader } from "../../mr/record_format.ts";
import { app, reference, seeded, withTempDir, writeInputs } from "./helpers.ts";

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}.ts`, import.meta.url));

/**
 * Runs a whole job in this process through the engine (map tasks, then reduce tasks over their
 * partition runs) and returns each output file's text, in partition order.
 */
async function engineJob(
  appPath: string,
  dir: string,
  files: string[],
  nReduce: number,
  memoryLimit?: number,
): Promise<string[]> {
  const mr = await loadApp(appPath);
  const work = await Deno.makeTempDir({ dir, prefix: "work-" });
  for (let m = 0; m < files.length; m++) {
    const contents = await Deno.readTextFile(join(dir, files[m]));
    await runMap(mr, files[m], contents, {
      nReduce,
      partitionPath: (r) => join(work, `mr-${m}-${r}`),
      spillDir: work,
      memoryLimit,
    });
  }
  const outputs: string[] = [];
  for (let r = 0; r < nReduce; r++) {
    const inputs = files.map((_, m) => join(work, `mr-${m}-${r}`));
    await runReduce(mr, inputs, join(work, `out-${r}`));
    outputs.push(await Deno.readTextFile(join(work, `out-${r}`)));
  }
  await Deno.remove(work, { recursive: true });
  return outputs;
}

/** Every output file's lines are sorted by the UTF-8 bytes of their keys. */
function assertSortedByKey(outputs: string[], keyOf: (line: string) => string): void {
  const encoder = new TextEncoder();
  for (const text of outputs) {
    const keys = text.split("\n").filter((l) => l !== "").map(keyOf);
    for (let i = 1; i < keys.length; i++) {
      const a = encoder.encode(keys[i - 1]);
      const b = encoder.encode(keys[i]);
      let c = 0;
      for (let j = 0; j < Math.min(a.length, b.length) && c === 0; j++) c = a[j] - b[j];
      if (c === 0) c = a.length - b.length;
      assert.ok(c < 0, `${JSON.stringify(keys[i - 1])} before ${JSON.stringify(keys[i])}`);
    }
  }
}

const lastSpace = (line: string) => line.slice(0, line.lastIndexOf(" "));

for (
  const [name, stream, classic] of [
    ["wc", app("wc"), fixture("wc_classic")],
    ["indexer", app("indexer"), fixture("indexer_classic")],
  ]
) {
  Deno.test(`${name}: streaming and classic forms give identical, sorted output`, async () => {
    await withTempDir(async (dir) => {
      const files = await writeInputs(dir, 6, 3000);
      const a = await engineJob(stream, dir, files, 4);
      const b = await engineJob(classic, dir, files, 4);
      // Spilling after every few kilobytes changes nothing either.
      const c = await engineJob(stream, dir, files, 4, 8192);
      assert.deepEqual(a, b);
      assert.deepEqual(c, a);
      const lines = a.join("").split("\n").filter((l) => l !== "").sort();
      assert.deepEqual(lines, (await reference(name, dir, files)).sort());
      const keyOf = name === "wc" ? lastSpace : (l: string) => l.slice(0, l.indexOf(" "));
      assertSortedByKey(a, keyOf);
    });
  });
}

Deno.test("a sort job with distinct keys: streaming and classic agree, every key once", async () => {
  await withTempDir(async (dir) => {
    const rand = seeded(5);
    const pieces = ["a", "B", " ", "\t", "é", "東", "😀", "z", "0", "\u00a0"];
    const keys = new Set<string>();
    while (keys.size < 5000) {
      let key = "";
      const n = 1 + Math.floor(rand() * 12);
      for (let i = 0; i < n; i++) key += pieces[Math.floor(rand() * pieces.length)];
      keys.add(key);
    }
    const all = [...keys];
    const files = ["s0.txt", "s1.txt", "s2.txt"];
    for (let f = 0; f < files.length; f++) {
      const mine = all.filter((_, i) => i % files.length === f);
      await Deno.writeTextFile(join(dir, files[f]), mine.join("\n") + "\n");
    }
    const a = await engineJob(fixture("sort_stream"), dir, files, 3);
    const b = await engineJob(fixture("sort_classic"), dir, files, 3);
    const c = await engineJob(fixture("sort_stream"), dir, files, 3, 4096);
    assert.deepEqual(a, b);
    assert.deepEqual(c, a);
    const lines = a.join("").split("\n").filter((l) => l !== "");
    assert.deepEqual(lines.map(lastSpace).sort(), all.sort());
    assert.ok(lines.every((l) => l.endsWith(" 1")));
    assertSortedByKey(a, lastSpace);
  });
});

Deno.test("empty inputs give empty partitions and empty, existing outputs", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "empty.txt"), "");
    await Deno.writeTextFile(join(dir, "digits.txt"), "123 456\n");
    const outputs = await engineJob(app("wc"), dir, ["empty.txt", "digits.txt"], 3);
    assert.deepEqual(outputs, ["", "", ""]);
  });
});

Deno.test("a failing map leaves no partition and no spill behind", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "bad_app.ts");
    await Deno.writeTextFile(
      path,
      `export function map(_f, c, emit) { for (let i = 0; i < 5000; i++) emit("k" + i, c); ` +
        `throw new Error("boom"); }\nexport function reduce() { return ""; }\n`,
    );
    const mr = await loadApp(path);
    const work = join(dir, "work");
    await Deno.mkdir(work);
    await assert.rejects(
      runMap(mr, "in", "x", {
        nReduce: 2,
        partitionPath: (r) => join(work, `p${r}`),
        spillDir: work,
        memoryLimit: 4096,
      }),
      /boom/,
    );
    assert.deepEqual([...Deno.readDirSync(work)], []);
  });
});

Deno.test("one key with a million values, empty ones among them, reaches reduce whole", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "many_app.ts");
    await Deno.writeTextFile(
      path,
      `export function map(_f, _c, emit) {\n` +
        `  for (let i = 0; i < 1000000; i++) emit("one key\\t東", i % 3 === 0 ? "" : "v");\n` +
        `  emit("other", "");\n}\n` +
        `export function reduce(key, values) {\n` +
        `  const empty = values.filter((v) => v === "").length;\n` +
        `  return values.length + "/" + empty;\n}\n`,
    );
    const mr = await loadApp(path);
    const work = join(dir, "work");
    await Deno.mkdir(work);
    // A small bound: the key's values are spilled in pieces and merged back.
    const stats = await runMap(mr, "in", "", {
      nReduce: 1,
      partitionPath: () => join(work, "run"),
      spillDir: work,
      memoryLimit: 1 << 20,
    });
    assert.ok(stats.spills > 1, `expected spills, got ${stats.spills}`);
    assert.equal(stats.records, 1_000_001);
    await runReduce(mr, [join(work, "run")], join(work, "out"));
    assert.equal(
      await Deno.readTextFile(join(work, "out")),
      `one key\t東 1000000/${Math.ceil(1_000_000 / 3)}\nother 1/1\n`,
    );
  });
});

/** A streaming app built in the test: map is given, reduce joins the values. */
function inlineApp(mapEmit: MapReduceApp["mapEmit"]): MapReduceApp {
  return {
    map: () => [],
    mapEmit,
    reduce: (_key, values) => values.join(","),
  };
}

/** Every key and value of every partition run under `dir` named `<prefix>-<r>`. */
async function runPairs(dir: string, prefix: string, nReduce: number): Promise<string[]> {
  const pairs: string[] = [];
  for (let r = 0; r < nReduce; r++) {
    const path = join(dir, `${prefix}-${r}`);
    const file = await Deno.open(path);
    try {
      const reader = new RecordReader(file, path);
      while (await reader.next()) pairs.push(`${reader.key()}=${reader.value()}`);
    } finally {
      file.close();
    }
  }
  return pairs.sort();
}

/** Map task options writing `<dir>/<task>-<r>`. */
function taskOptions(dir: string, task: string, nReduce: number) {
  return { nReduce, partitionPath: (r: number) => join(dir, `${task}-${r}`), spillDir: dir };
}

Deno.test("two maps running at once in one isolate keep their outputs apart", async () => {
  await withTempDir(async (dir) => {
    const mr = inlineApp((filename, contents, emit) => {
      for (const word of contents.split(" ")) emit(`${filename}:${word}`, filename);
    });
    const options = (task: string) => taskOptions(dir, task, 3);
    // Task a's second input arrives only after task b has mapped its first: both outputs are
    // in use at the same time.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => release = resolve);
    const a = runMapInputs(mr, [
      Promise.resolve({ filename: "a1", contents: "x y" }),
      gate.then(() => ({ filename: "a2", contents: "z" })),
    ], options("a"));
    const b = runMapInputs(mr, [
      Promise.resolve({ filename: "b1", contents: "x" }),
      Promise.resolve().then(() => {
        release();
        return { filename: "b2", contents: "y z" };
      }),
    ], options("b"));
    await Promise.all([a, b]);
    assert.deepEqual(await runPairs(dir, "a", 3), ["a1:x=a1", "a1:y=a1", "a2:z=a2"]);
    assert.deepEqual(await runPairs(dir, "b", 3), ["b1:x=b1", "b2:y=b2", "b2:z=b2"]);
    // The outputs go on serving later maps, each starting clean.
    for (const task of ["c", "d"]) {
      await runMap(mr, task, "only", options(task));
      assert.deepEqual(await runPairs(dir, task, 3), [`${task}:only=${task}`]);
    }
  });
});

Deno.test("an emit an app kept from a finished map never lands in a later map", async () => {
  await withTempDir(async (dir) => {
    const options = (task: string) => taskOptions(dir, task, 2);
    // A synchronous map: the output is reused, so a kept emit that is called after its map
    // finished must make it unusable for later maps.
    let kept: Emit | undefined;
    const staleErrors: unknown[] = [];
    const tryStale = () => {
      try {
        kept!("stale", "1");
      } catch (err) {
        staleErrors.push(err);
      }
    };
    const sync = inlineApp((filename, _contents, emit) => {
      if (kept === undefined) kept = emit;
      else tryStale();
      emit(filename, "1");
    });
    await runMap(sync, "s1", "", options("s1"));
    tryStale();
    await runMap(sync, "s2", "", options("s2"));
    assert.equal(staleErrors.length, 2);
    for (const err of staleErrors) assert.match(String(err), /after the map task finished/);
    assert.deepEqual(await runPairs(dir, "s2", 2), ["s2=1"]);

    // An asynchronous map may emit from a continuation after it settled: its output is never
    // reused, so that emit fails even while a later map is running.
    staleErrors.length = 0;
    kept = undefined;
    const later = inlineApp(async (filename, _contents, emit) => {
      if (kept === undefined) kept = emit;
      else tryStale();
      await Promise.resolve();
      emit(filename, "1");
    });
    await runMap(later, "a1", "", options("a1"));
    await runMap(later, "a2", "", options("a2"));
    assert.equal(staleErrors.length, 1);
    assert.match(String(staleErrors[0]), /after the map task finished/);
    assert.deepEqual(await runPairs(dir, "a2", 2), ["a2=1"]);
  });
});

Deno.test("an emit an app kept and calls between a later map's inputs never lands in that map", async () => {
  await withTempDir(async (dir) => {
    const options = (task: string) => taskOptions(dir, task, 2);
    // The first map keeps its emit; the later map's output is the same object, reused, and its
    // second input is read (awaited) after its first was mapped: a timer of the first map's app
    // could call the kept emit just then, as this input's read does.
    let kept: Emit | undefined;
    let firstMapped!: () => void;
    const mapped = new Promise<void>((resolve) => firstMapped = resolve);
    const sync = inlineApp((filename, _contents, emit) => {
      kept ??= emit;
      emit(filename, "1");
      if (filename === "t2a") firstMapped();
    });
    await runMap(sync, "t1", "", options("t1"));
    const staleErrors: unknown[] = [];
    await runMapInputs(sync, [
      Promise.resolve({ filename: "t2a", contents: "" }),
      mapped.then(() => {
        try {
          kept!("stale", "1");
        } catch (err) {
          staleErrors.push(err);
        }
        return { filename: "t2b", contents: "" };
      }),
    ], options("t2"));
    assert.deepEqual(await runPairs(dir, "t2", 2), ["t2a=1", "t2b=1"]);
    assert.equal(staleErrors.length, 1);
    assert.match(String(staleErrors[0]), /outside a call of the app's map/);
  });
});
