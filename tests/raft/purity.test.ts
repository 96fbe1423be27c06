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

Deno.test("Purity: raft/ except node.ts does no I/O, no clock, no randomness, no timers", async () => {
  const dir = new URL("../../raft/", import.meta.url);
  const checked: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile || !e.name.endsWith(".ts") || e.name === "node.ts") continue;
    const src = await Deno.readTextFile(new URL(e.name, dir));
    const code = codeOnly(src);
    for (const [re, what] of FORBIDDEN) {
      const imports = what.startsWith("imports") ? src : code;
      assert.ok(!re.test(imports), `raft/${e.name} uses ${what}`);
    }
    checked.push(e.name);
  }
  for (const f of ["log.ts", "raft.ts", "raw_node.ts", "storage.ts", "types.ts"]) {
    assert.ok(checked.includes(f), `raft/${f} was not checked`);
  }
});

Deno.test("Purity: the checker itself catches a forbidden call", () => {
  const bad = codeOnly("const x = 1; // await in a comment is fine\nconst t = Date.now();");
  assert.ok(/\bDate\b/.test(bad));
  assert.ok(!/\bawait\b/.test(bad));
});
