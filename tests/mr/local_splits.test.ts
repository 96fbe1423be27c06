/** `mr run` picks a split size that gives each worker several map tasks of a large input. */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  localSplitSize,
  MAX_LOCAL_SPLIT_SIZE,
  MIN_LOCAL_SPLIT_SIZE,
  SPLITS_PER_WORKER,
} from "../../mr/splits.ts";
import { Coordinator } from "../../mr/coordinator.ts";
import { newWorkerStatus, runWorker } from "../../mr/worker.ts";
import {
  app,
  listDir,
  mergedOutput,
  raftmr,
  reference,
  startOneFileJob,
  withTempDir,
  writeInputs,
} from "./helpers.ts";

const MIB = 1024 * 1024;

Deno.test("localSplitSize aims at several splits per worker, within bounds", () => {
  assert.equal(localSplitSize(64 * MIB, 2), 64 * MIB / (2 * SPLITS_PER_WORKER));
  assert.equal(localSplitSize(1024 * MIB, 2), MAX_LOCAL_SPLIT_SIZE);
  assert.equal(localSplitSize(1 * MIB, 2), MIN_LOCAL_SPLIT_SIZE);
  assert.equal(localSplitSize(0, 1), MIN_LOCAL_SPLIT_SIZE);
  for (const workers of [1, 2, 3]) {
    const total = 150 * MIB;
    const splits = Math.ceil(total / localSplitSize(total, workers));
    assert.ok(splits >= SPLITS_PER_WORKER * workers, `${workers} workers: ${splits} splits`);
  }
});

Deno.test("mr run cuts one large input into several splits and still counts right", async () => {
  await withTempDir(async (dir) => {
    // 12 MiB in one file, one worker: 4 MiB splits, so 3 map tasks instead of 1.
    const line = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu\n";
    await Deno.writeTextFile(join(dir, "big.txt"), line.repeat(Math.ceil(12 * MIB / line.length)));
    const out = await raftmr(
      ["mr", "run", "--app", app("wc"), "--workers", "1", "--reduce", "2", "big.txt"],
      dir,
    ).done;
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stderr, /^mr run: 1 input files in 3 splits, 2 reduce tasks, 1 workers$/m);
    assert.deepEqual(await mergedOutput(dir), await reference("wc", dir, ["big.txt"]));
  });
});

/**
 * Runs a coordinator (splits of 4 KiB) and one in-process worker over `names` in `dir`, after
 * `beforeWorker`; returns the split bytes the coordinator served over HTTP, the partition bytes
 * the worker's shuffle server served (to itself, as reducer) and that its reduces took in, and
 * the number of map tasks.
 */
async function runJob(
  dir: string,
  names: string[],
  localWorkers: boolean,
  minMapTasks?: number,
  beforeWorker?: () => Promise<void>,
): Promise<{ split: number; served: number; shuffled: number; maps: number }> {
  const coordinator = await Coordinator.start({
    files: names.map((name) => join(dir, name)),
    nReduce: 3,
    splitSize: 4096,
    taskTimeoutMs: 60_000,
    outputDir: dir,
    localWorkers,
    minMapTasks,
    listen: { hostname: "127.0.0.1", port: 0 },
    http: { hostname: "127.0.0.1", port: 0 },
    log: () => {},
  });
  try {
    await beforeWorker?.();
    const status = newWorkerStatus("coordinator", "wc");
    const code = await runWorker({
      coordinator: coordinator.rpcAddress,
      appPath: app("wc"),
      status,
      log: () => {},
    });
    assert.equal(code, 0);
    assert.deepEqual(await coordinator.finished, { ok: true });
    return {
      split: coordinator.status().splitBytes,
      served: status.shuffleBytesServed,
      shuffled: coordinator.status().shuffleBytes,
      maps: coordinator.status().nMap,
    };
  } finally {
    await coordinator.close();
  }
}

Deno.test("with localWorkers a worker reads splits and map output in place, not over HTTP", async () => {
  await withTempDir(async (dir) => {
    const names = await writeInputs(dir, 3, 3000);
    const bytes = await runJob(dir, names, true);
    assert.equal(bytes.split, 0, "no split crossed HTTP");
    assert.equal(bytes.served, 0, "no partition crossed HTTP");
    assert.ok(bytes.shuffled > 0, "the reduces still took in every partition");
    assert.deepEqual(await mergedOutput(dir), await reference("wc", dir, names));
  });
});

Deno.test("a worker fetches its splits over HTTP when the input is not the file the coordinator cut", async () => {
  await withTempDir(async (dir) => {
    const names = await writeInputs(dir, 2, 3000);
    const expected = await reference("wc", dir, names);
    // Without localWorkers (`raftmr coordinator`): every split crosses HTTP.
    const total = (await Promise.all(names.map((n) => Deno.stat(join(dir, n))))).reduce(
      (sum, info) => sum + info.size,
      0,
    );
    const remote = await runJob(dir, names, false);
    assert.equal(remote.split, total);
    assert.equal(remote.served, remote.shuffled, "every partition crossed HTTP");
    assert.ok(remote.served > 0);
    assert.deepEqual(await mergedOutput(dir), expected);
    // The coordinator named a file whose identity no longer matches (a file of the same path
    // on another machine looks like this): the worker does not trust it and fetches.
    const stale = await localWorkersAfterTouch(dir, names);
    assert.equal(stale, total);
    assert.deepEqual(await mergedOutput(dir), expected);
  });
});

/** Runs the job with localWorkers while every input's mtime changes under the coordinator. */
async function localWorkersAfterTouch(
  dir: string,
  names: string[],
  minMapTasks?: number,
): Promise<number> {
  // Same bytes, another modification time: not provably the file that was cut.
  const touch = async () => {
    for (const name of names) await Deno.utime(join(dir, name), 1, 1_000_000);
  };
  return (await runJob(dir, names, true, minMapTasks, touch)).split;
}

Deno.test("a map that keeps emitting for longer than the task timeout is not re-issued", async () => {
  await withTempDir(async (dir) => {
    // The map emits for as many milliseconds as its input says, a little over twice the task
    // timeout, in bursts of 2,048 pairs (progress is reported every 1,024) 20 ms apart: it sleeps
    // between bursts (Atomics.wait) rather than spin, leaving the CPU to the worker's heartbeats
    // on a loaded machine; the timeout leaves 5 s of slack over the 1 s heartbeats that carry its
    // progress.
    const appPath = join(dir, "steady.ts");
    await Deno.writeTextFile(
      appPath,
      [
        "export function map(_f: string, text: string, emit: (k: string, v: string) => void) {",
        "  const end = Date.now() + Number(text);",
        "  const pause = new Int32Array(new SharedArrayBuffer(4));",
        "  let n = 0;",
        "  while (Date.now() < end) {",
        "    for (let i = 0; i < 2048; i++) emit(`k${n++ % 100}`, '1');",
        "    Atomics.wait(pause, 0, 0, 20);",
        "  }",
        "}",
        "export function reduce(_k: string, v: string[]) { return String(v.length); }",
        // Keeps the table (and the reduce) small: the test is about a map that emits.
        "export function combine(_k: string, v: string[]) { return v[0]; }",
      ].join("\n"),
    );
    const { coordinator } = await startOneFileJob(
      dir,
      // Heartbeats (and so progress reports) every second.
      { taskTimeoutMs: 6000, workerTimeoutMs: 5000 },
      "13000",
    );
    try {
      const code = await runWorker({ coordinator: coordinator.rpcAddress, appPath, log: () => {} });
      assert.equal(code, 0);
      assert.deepEqual(await coordinator.finished, { ok: true });
      const status = coordinator.status();
      assert.equal(status.timeouts, 0, "the attempt kept reporting progress");
      assert.equal(status.tasks.done.find((t) => t.kind === "map")?.attempts, 1);
    } finally {
      await coordinator.close();
    }
  });
});

Deno.test("mr run maps many small files a few per task; local or fetched, the output is the same", async () => {
  await withTempDir(async (dir) => {
    const names = await writeInputs(dir, 12, 400);
    const expected = await reference("wc", dir, names);
    // One worker wants at least 4 map tasks: the 12 files make fewer than 12.
    const out = await raftmr(
      ["mr", "run", "--app", app("wc"), "--workers", "1", "--reduce", "2", ...names],
      dir,
    ).done;
    assert.equal(out.code, 0, out.stderr);
    const tasks = Number(/^mr run: 12 input files in (\d+) splits/m.exec(out.stderr)?.[1]);
    assert.ok(tasks >= 3 && tasks < 12, out.stderr);
    assert.deepEqual(await mergedOutput(dir), expected);
    for (const name of await listDir(dir, /^mr-out-/)) await Deno.remove(join(dir, name));
    // In place: grouped tasks, no split over HTTP.
    const local = await runJob(dir, names, true, 4);
    assert.ok(local.maps < 12, `${local.maps} map tasks`);
    assert.equal(local.split, 0);
    assert.deepEqual(await mergedOutput(dir), expected);
    // Files that are not provably the ones cut: every piece of every grouped task is fetched.
    const total = (await Promise.all(names.map((n) => Deno.stat(join(dir, n))))).reduce(
      (sum, info) => sum + info.size,
      0,
    );
    assert.equal(await localWorkersAfterTouch(dir, names, 4), total);
    assert.deepEqual(await mergedOutput(dir), expected);
  });
});
