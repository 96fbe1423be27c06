/**
 * A reduce partition several times larger than the worker's heap: the engine merges sorted runs
 * one key at a time, so a worker started with a small V8 heap completes it (a design that holds
 * a partition in memory runs out of heap here).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CONFIG, MAIN, startCoordinator, withTempDir } from "./helpers.ts";

const SORT_APP = fileURLToPath(new URL("./fixtures/sort_stream.ts", import.meta.url));
// The worker's main thread alone holds about 9 MiB once its modules are loaded (10 MiB fails at
// start), and a map of a 4 MiB split needs several more. Maps once ran out of heap here on a
// loaded machine (1 run in about 8 at 16 MiB, 2 in 26 at 24): the young generation outgrew the
// old space, which a task thread's trim before each map now prevents (mr/heap_trim.ts); under a
// busy loop the task thread's old generation peaked at 11-17 MiB without it. The partition is
// 4x the heap.
const HEAP_MB = 24;
// 24 files of 65,536 keys: 4 MiB per map, as with 16 files of 64 MiB in all.
const FILES = 24;
const KEYS = 3 << 19;
const TAIL = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRST"; // 56 bytes: ~96 MiB in all.

/** The i-th key: sorting the keys by bytes sorts them by i. */
const keyOf = (i: number) => `${String(i).padStart(8, "0")}${TAIL}`;

Deno.test(`a ${KEYS * 64 / 2 ** 20} MiB partition on a worker with a ${HEAP_MB} MiB heap`, async () => {
  await withTempDir(async (dir) => {
    const files: string[] = [];
    for (let f = 0; f < FILES; f++) {
      // Keys interleave across files, so the reduce merges all runs at every point.
      const lines: string[] = [];
      for (let i = f; i < KEYS; i += FILES) lines.push(keyOf(i));
      const name = `keys-${f}.txt`;
      await Deno.writeTextFile(join(dir, name), lines.join("\n") + "\n");
      files.push(name);
    }
    // What is tested is memory, not time: on a loaded machine the one worker's 96 MiB reduce
    // may outlast the default 10 s task timeout, and is not re-issued for it here.
    const { proc, rpc } = await startCoordinator(dir, files, [
      "--reduce",
      "1",
      "--task-timeout",
      "10m",
      "--worker-timeout",
      "10m",
    ]);
    const worker = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        `--v8-flags=--max-old-space-size=${HEAP_MB}`,
        "-A",
        "--config",
        CONFIG,
        MAIN,
        "worker",
        "--coordinator",
        rpc,
        "--app",
        SORT_APP,
      ],
      cwd: dir,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = await worker;
    if (out.code !== 0) proc.child.kill("SIGKILL");
    const coordinator = await proc.done;
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr).slice(-2000));
    assert.equal(coordinator.code, 0, coordinator.stderr);
    // The one output file has every key once, in order, with its count.
    const file = await Deno.open(join(dir, "mr-out-0"));
    let next = 0;
    let rest = "";
    const decoder = new TextDecoder();
    for await (const chunk of file.readable) {
      const lines = (rest + decoder.decode(chunk, { stream: true })).split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        if (line !== `${keyOf(next)} 1`) assert.fail(`line ${next} is ${line}`);
        next++;
      }
    }
    assert.equal(rest, "");
    assert.equal(next, KEYS);
  });
});
