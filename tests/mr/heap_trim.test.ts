/** A task thread's heap is collected between tasks once it has grown, and only then. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { heapCollector, TRIM_BYTES, trimHeap } from "../../mr/heap_trim.ts";
import { app, CONFIG, MAIN, mergedOutput, withTempDir } from "./helpers.ts";

const MIB = 1024 * 1024;
const PROBE = new URL("./fixtures/trim_probe.ts", import.meta.url).pathname;

Deno.test("trimHeap leaves a small heap alone and collects what a large task left", () => {
  const small = Deno.memoryUsage();
  if (small.heapUsed + small.external <= TRIM_BYTES) assert.equal(trimHeap(), false);
  // What a map leaves behind: its split's bytes, garbage once it returned.
  let split: Uint8Array[] | undefined = Array.from({ length: 16 }, () => new Uint8Array(8 * MIB));
  split[15][0] = 1;
  split = undefined;
  const before = Deno.memoryUsage();
  assert.ok(before.heapTotal + before.external > TRIM_BYTES, "the garbage is still counted");
  assert.equal(trimHeap(), true);
  const after = Deno.memoryUsage();
  assert.ok(
    after.external < before.external - 64 * MIB,
    `external memory ${Math.round(before.external / MIB)} -> ${
      Math.round(after.external / MIB)
    } MiB`,
  );
});

/** Runs the probe in a process of its own with `flags`; returns what it printed. */
async function probe(flags: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...flags, PROBE],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  return JSON.parse(new TextDecoder().decode(out.stdout)) as {
    collector: string;
    first: boolean;
    second: boolean;
    before: number;
    after: number;
  };
}

Deno.test("trimHeap uses V8's gc where the process exposes it, and trims only what it can free", async () => {
  for (const [flags, collector] of [[["--v8-flags=--expose-gc"], "major"], [[], "low-memory"]]) {
    const result = await probe(flags as string[]);
    assert.equal(result.collector, collector, `flags ${flags}`);
    assert.equal(result.first, true, `flags ${flags}: the leftovers are past the bound`);
    assert.ok(
      result.after < result.before - 64 * MIB,
      `flags ${flags}: ${Math.round(result.before / MIB)} -> ${Math.round(result.after / MIB)} MiB`,
    );
    // The heap's pages stay committed after a collection; what is left to free is not past the
    // bound, so a second trim right after the first does not collect again.
    assert.equal(result.second, false, `flags ${flags}: a second trim found nothing to free`);
  }
});

const SMALL_PROBE = new URL("./fixtures/small_heap_probe.ts", import.meta.url).pathname;

Deno.test("trimHeap in a small heap: a quarter of the old space is the bound, and the young generation shrinks", async () => {
  for (const collector of ["major", "low-memory"]) {
    const gc = collector === "major" ? ",--expose-gc" : "";
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", `--v8-flags=--max-old-space-size=24${gc}`, SMALL_PROBE],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const result = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.equal(result.collector, collector);
    assert.equal(result.oldSpace, 24 * MIB);
    assert.equal(result.bound, 6 * MIB);
    assert.equal(result.trimmed, true, `${collector}: what the probe left is past the bound`);
    // Grown by the surviving batches, and back to V8's first semi-space after the trim: the next
    // map's young collections are scavenges again (mr/heap_trim.ts on why that matters).
    assert.ok(result.before >= 8 * MIB, `${collector}: young generation grew to ${result.before}`);
    assert.ok(
      result.after <= result.before / 8,
      `${collector}: young generation ${result.before} -> ${result.after} bytes`,
    );
  }
});

Deno.test("mr run gives its workers V8's gc when it has it, and its own V8 flags only", async () => {
  await withTempDir(async (dir) => {
    // An app that counts what kind of gc its map sees (mr run's task threads run the app).
    await Deno.writeTextFile(
      join(dir, "gc_kind.ts"),
      [
        `import * as wc from ${JSON.stringify(app("wc"))};`,
        "export function map(_file: string, _contents: string) {",
        "  return [{ key: `gc-${typeof (globalThis as { gc?: unknown }).gc}`, value: '1' }];",
        "}",
        "export const reduce = wc.reduce;",
      ].join("\n"),
    );
    await Deno.writeTextFile(join(dir, "a.txt"), "one line\n");
    const cases: [string[], string, string[]][] = [];
    // Task threads share their process's V8 flags; worker processes are given them.
    for (const mode of [[], ["--processes"]]) {
      cases.push([["--v8-flags=--expose-gc"], "function", mode], [[], "undefined", mode]);
    }
    for (const [flags, seen, mode] of cases) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", ...flags, "--config", CONFIG, MAIN, "mr", "run", "--app", "gc_kind.ts"]
          .concat(["--workers", "1", "--reduce", "1", ...mode, "a.txt"]),
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      assert.deepEqual(
        await mergedOutput(dir),
        [`gc-${seen} 1`],
        `mr run ${mode} with flags ${flags}`,
      );
    }
  });
});

Deno.test("heapCollector names how this process trims", () => {
  const exposed = typeof (globalThis as { gc?: unknown }).gc === "function";
  assert.equal(heapCollector(), exposed ? "major" : "low-memory");
});
