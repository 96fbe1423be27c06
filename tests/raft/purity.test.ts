/**
 * The Raft core must be a deterministic state machine: nothing in raft/ except the driver
 * (node.ts) may await, read a clock, touch Deno APIs, use Math.random or timers, or import the
 * I/O layers. This test reads the sources and proves it.
 */
import assert from "node:assert/strict";

const FORBIDDEN: [RegExp, string][] = [
  [/\bawait\b/, "await"],
  [/\basync\b/, "async"],
  [/\bDate\b/, "Date"],
  [/\bperformance\b/, "performance"],
  [/\bDeno\./, "Deno.*"],
  [/Math\.random/, "Math.random"],
  [/\bset(Timeout|Interval|Immediate)\b/, "timers"],
  [/\bqueueMicrotask\b/, "queueMicrotask"],
  [/\bfetch\(/, "fetch"],
  [/from\s+["']\.\.\/(net|persist|kv|mr|cli)\//, "imports of I/O layers"],
];

/** Removes comments and string/template contents so prose cannot trigger a false positive. */
function codeOnly(src: string): string {
  return src
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/\/\/.*$/gm, "")
    .replace(/`(?:\\.|[^`\\])*`/g, "``")
    .replace(/"(?:\\.|[^"\\\n])*"/g, '""')
    .replace(/'(?:\\.|[^'\\\n])*'/g, "''");
}

/** Module specifiers a source imports or re-exports. */
function importsOf(src: string): string[] {
  return [...src.matchAll(/\bfrom\s+["']([^"']+)["']/g)].map((m) => m[1]);
}

/** Throws unless `src` (named `name`) is free of every forbidden construct. */
function assertPure(name: string, src: string): void {
  const code = codeOnly(src);
  for (const [re, what] of FORBIDDEN) {
    const imports = what.startsWith("imports") ? src : code;
    assert.ok(!re.test(imports), `${name} uses ${what}`);
  }
}

Deno.test("Purity: raft/ except node.ts does no I/O, no clock, no randomness, no timers", async () => {
  const dir = new URL("../../raft/", import.meta.url);
  const checked: string[] = [];
  const leaves = new Set<string>();
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile || !e.name.endsWith(".ts") || e.name === "node.ts") continue;
    const src = await Deno.readTextFile(new URL(e.name, dir));
    assertPure(`raft/${e.name}`, src);
    // Only sibling files and the leaf modules of util/ (which import nothing): anything else
    // could bring I/O in through a side door.
    for (const spec of importsOf(src)) {
      const leaf = /^\.\.\/util\/([a-z0-9_]+\.ts)$/.exec(spec);
      assert.ok(spec.startsWith("./") || leaf, `raft/${e.name} imports ${spec}`);
      if (leaf) leaves.add(leaf[1]);
    }
    checked.push(e.name);
  }
  for (
    const f of [
      "bounds.ts",
      "log.ts",
      "progress.ts",
      "raft.ts",
      "raw_node.ts",
      "read_only.ts",
      "snapshot_chunks.ts",
      "snapshot_policy.ts",
      "storage.ts",
      "types.ts",
    ]
  ) {
    assert.ok(checked.includes(f), `raft/${f} was not checked`);
  }
  assert.ok(leaves.has("crc32c.ts"), "the shared checksum was not checked");
  const util = new URL("../../util/", import.meta.url);
  for (const f of leaves) {
    const src = await Deno.readTextFile(new URL(f, util));
    assertPure(`util/${f}`, src);
    assert.deepEqual(importsOf(src), [], `util/${f} imported by raft/ must be a leaf`);
  }
});

Deno.test("Purity: the checker itself catches a forbidden call", () => {
  const bad = codeOnly("const x = 1; // await in a comment is fine\nconst t = Date.now();");
  assert.ok(/\bDate\b/.test(bad));
  assert.ok(!/\bawait\b/.test(bad));
  assert.throws(() => assertPure("x.ts", 'import { Wal } from "../persist/wal.ts";'), /imports/);
  assert.deepEqual(importsOf('import { a } from "./a.ts";\nexport { b } from "../util/b.ts";'), [
    "./a.ts",
    "../util/b.ts",
  ]);
});
