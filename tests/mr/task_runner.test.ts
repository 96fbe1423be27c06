/**
 * The task thread: app code runs in a Web Worker, so an app that exits or throws from a timer
 * ends that thread only; the runner reports it and starts a fresh thread for the next task.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { AppLoadError } from "../../mr/app.ts";
import { partitionFileName } from "../../mr/shuffle_server.ts";
import { TaskExitedError, TaskFailedError, TaskRunner } from "../../mr/task_runner.ts";
import { withTempDir } from "./helpers.ts";

const APP = [
  "export function map(file: string, contents: string) {",
  '  if (contents.startsWith("exit")) Deno.exit(3);',
  '  if (contents.startsWith("throw")) throw new RangeError("bad input " + file);',
  '  if (contents.startsWith("later")) setTimeout(() => { throw new Error("from a timer"); }, 0);',
  '  return contents.split(/\\s+/).filter(Boolean).map((w) => ({ key: w, value: "1" }));',
  "}",
  "export function reduce(_k: string, v: string[]) { return String(v.length); }",
].join("\n");

Deno.test("task runner: an app that exits or throws ends its task, never the worker", async () => {
  await withTempDir(async (dir) => {
    const appPath = join(dir, "app.ts");
    await Deno.writeTextFile(appPath, APP);
    const runner = await TaskRunner.start(appPath);
    assert.equal(runner.isolated, true);
    const split = async (name: string, text: string) => {
      const path = join(dir, name);
      await Deno.writeTextFile(path, text);
      const out = join(dir, `${name}.out`);
      await Deno.mkdir(out, { recursive: true });
      return { path, out };
    };
    try {
      const run = async (name: string, text: string) => {
        const { path, out } = await split(name, text);
        const io = await runner.run({
          type: "map",
          filename: name,
          splitPath: path,
          nReduce: 2,
          dir: out,
        });
        return { io, out };
      };
      const ok = await run("a.txt", "x y x\n");
      assert.equal(ok.io.bytesRead, 6);
      const parts = [0, 1].map((r) => Deno.statSync(join(ok.out, partitionFileName(r))).size);
      assert.ok(parts[0] + parts[1] > 0 && ok.io.bytesWritten === parts[0] + parts[1]);

      await assert.rejects(run("b.txt", "exit now"), TaskExitedError);
      // A fresh thread serves the next task.
      assert.equal((await run("c.txt", "z\n")).io.bytesRead, 2);
      await assert.rejects(run("d.txt", "throw it"), (err: unknown) => {
        assert.ok(err instanceof TaskFailedError);
        assert.equal(err.message, "RangeError: bad input d.txt");
        return true;
      });
      // An error thrown from a timer after the map returned ends the thread. When its death is
      // reported decides who sees it: the "later" task itself, the one task running on that
      // thread then, or no task at all (reported between tasks). At most one task fails, and
      // once a fresh thread took over tasks succeed again; the process lives on.
      const threadsBefore = runner.threadsStarted;
      const outcomes: string[] = [];
      for (let i = 0; outcomes.at(-1) !== "ok" || runner.threadsStarted === threadsBefore; i++) {
        assert.ok(i < 50, `the thread that threw never ended: ${outcomes.join(", ")}`);
        const text = i === 0 ? "later\n" : "w\n";
        outcomes.push(
          await run(`e${i}.txt`, text).then(
            ({ io }) => (io.bytesRead === text.length ? "ok" : `read ${io.bytesRead}`),
            (err) => (err instanceof TaskExitedError ? "exited" : String(err)),
          ),
        );
      }
      assert.ok(outcomes.filter((o) => o === "exited").length <= 1, outcomes.join(", "));
      assert.deepEqual(outcomes.filter((o) => o !== "exited" && o !== "ok"), []);
      assert.equal(runner.threadsStarted, threadsBefore + 1);
    } finally {
      runner.close();
    }
  });
});

Deno.test("task runner: an app that cannot be loaded is an AppLoadError at start", async () => {
  await withTempDir(async (dir) => {
    const half = join(dir, "half.ts");
    await Deno.writeTextFile(half, "export function map() { return []; }\n");
    await assert.rejects(TaskRunner.start(half), (err: unknown) => {
      assert.ok(err instanceof AppLoadError);
      assert.match(err.message, /does not export reduce/);
      return true;
    });
    await assert.rejects(TaskRunner.start(join(dir, "missing.ts")), AppLoadError);
  });
});

Deno.test("task runner: a map that keeps emitting reports progress while it runs, and reads a local range", async () => {
  await withTempDir(async (dir) => {
    const appPath = join(dir, "app.ts");
    // Streaming form: every word goes to emit, so a long split makes thousands of calls.
    await Deno.writeTextFile(
      appPath,
      [
        "export function map(_f: string, text: string, emit: (k: string, v: string) => void) {",
        "  for (const w of text.split(/\\s+/)) if (w) emit(w, '1');",
        "}",
        "export function reduce(_k: string, v: string[]) { return String(v.length); }",
      ].join("\n"),
    );
    const runner = await TaskRunner.start(appPath);
    let progress = 0;
    runner.onProgress = () => progress++;
    try {
      // 5,000 words surrounded by bytes that are not the split: only the range is mapped.
      const words = Array.from({ length: 5000 }, (_, i) => `w${i % 700}`).join(" ") + "\n";
      const path = join(dir, "input.txt");
      await Deno.writeTextFile(path, `skip me\n${words}and me`);
      const out = join(dir, "out");
      await Deno.mkdir(out);
      const io = await runner.run({
        type: "map",
        filename: "input.txt",
        splitPath: path,
        range: { offset: "skip me\n".length, length: words.length },
        nReduce: 1,
        dir: out,
      });
      assert.equal(io.bytesRead, words.length);
      assert.ok(progress >= 1, "at least one progress report during 5,000 emits");
      // Each partition's checksum came back with the result.
      const bytes = await Deno.readFile(join(out, partitionFileName(0)));
      assert.equal(io.partitions?.[0].length, bytes.length);
      assert.ok(!new TextDecoder().decode(bytes).includes("skip"), "only the range was mapped");
    } finally {
      runner.close();
    }
  });
});
