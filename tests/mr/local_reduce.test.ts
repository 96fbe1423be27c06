/**
 * A reduce on the mapper's machine (mr run): partitions read in place with their length and
 * CRC-32C checked as they are read, and the output staged beside its final name and committed by
 * rename, whole or not at all, by the first attempt the coordinator accepts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadApp } from "../../mr/app.ts";
import { runMap, runReduce } from "../../mr/engine.ts";
import { ChecksummedSource, CorruptInputError } from "../../mr/checked_source.ts";
import { LocalOutputs } from "../../mr/local_output.ts";
import { Coordinator } from "../../mr/coordinator.ts";
import { newWorkerStatus, runWorker } from "../../mr/worker.ts";
import { fileChecksum, IntegrityError } from "../../mr/transfer.ts";
import { RpcClient } from "../../net/rpc.ts";
import { clientHello } from "../../net/handshake.ts";
import {
  app,
  gatedWc,
  listDir,
  mergedOutput,
  reference,
  waitFor,
  withTempDir,
  writeInputs,
} from "./helpers.ts";

/** Writes the runs of two maps over `texts` (one partition each) and returns their paths. */
async function twoRuns(dir: string, texts: string[]): Promise<string[]> {
  const wc = await loadApp(app("wc"));
  const paths: string[] = [];
  for (const [m, text] of texts.entries()) {
    const path = join(dir, `run-${m}`);
    await runMap(wc, `in-${m}`, text, {
      nReduce: 1,
      partitionPath: () => path,
      spillDir: dir,
    });
    paths.push(path);
  }
  return paths;
}

Deno.test("runReduce checks in-place inputs as it reads them and names the corrupt one", async () => {
  await withTempDir(async (dir) => {
    const wc = await loadApp(app("wc"));
    // The second run holds 3,000 distinct words: a few kilobytes.
    const texts = [
      "b a c a b a",
      Array.from({ length: 3000 }, (_, i) => `w${letters(i)} a`).join(" "),
    ];
    const paths = await twoRuns(dir, texts);
    const checks = await Promise.all(paths.map((p) => fileChecksum(p)));
    const plain = join(dir, "plain");
    await runReduce(wc, paths, plain);
    const checked = join(dir, "checked");
    const stats = await runReduce(wc, paths, checked, undefined, { checks, sync: true });
    assert.equal(await Deno.readTextFile(checked), await Deno.readTextFile(plain));
    assert.match(await Deno.readTextFile(checked), /^a 3003$/m);
    assert.ok(checks[1].length > 10_000, `run of ${checks[1].length} bytes`);
    assert.equal(stats.bytesRead, checks[0].length + checks[1].length);

    const original = await Deno.readFile(paths[1]);
    const damage: [string, Uint8Array, RegExp][] = [
      // A flipped byte in a value or key: the format still parses, only the CRC tells.
      ["flipped", flip(original, original.length - 40), /is corrupt: CRC-32C/],
      // A flipped length prefix breaks the format first: the CRC still gets the blame.
      ["bad length", flip(original, 4, 0x80), /is corrupt|is truncated|is longer/],
      ["truncated", original.subarray(0, original.length - 3), /is truncated/],
      ["longer", concat(original, new Uint8Array([1, 2, 3])), /is longer than/],
    ];
    for (const [what, bytes, message] of damage) {
      await Deno.writeFile(paths[1], bytes);
      const out = join(dir, `out-${what}`);
      await assert.rejects(
        runReduce(wc, paths, out, undefined, { checks }),
        (err: unknown) => {
          assert.ok(err instanceof CorruptInputError, `${what}: ${err}`);
          assert.equal(err.input, 1, what);
          assert.match(err.message, message, `${what}: ${err.message}`);
          return true;
        },
      );
    }
    // Gone (its mapper's directory removed): as unusable as damaged, and named the same way.
    await Deno.remove(paths[1]);
    await assert.rejects(
      runReduce(wc, paths, join(dir, "out-gone"), undefined, { checks }),
      (err: unknown) =>
        err instanceof CorruptInputError && err.input === 1 &&
        /Cannot read .*run-1/.test(err.message),
    );
    // An unchecked input (a fetched copy) that is gone is an ordinary error.
    await assert.rejects(
      runReduce(wc, paths, join(dir, "out-gone2")),
      (err: unknown) => err instanceof Deno.errors.NotFound,
    );
  });
});

Deno.test("ChecksummedSource: an empty file, and one cut right after a complete read", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "f");
    await Deno.writeFile(path, new Uint8Array([1, 2, 3, 4]));
    const expect = await fileChecksum(path);
    assert.throws(
      () => new ChecksummedSource(emptySource(), { length: 0, crc: 1 }, "empty"),
      IntegrityError,
    );
    assert.ok(new ChecksummedSource(emptySource(), { length: 0, crc: 0 }, "empty").verified);
    using file = await Deno.open(path);
    const source = new ChecksummedSource(file, { ...expect, length: 5 }, "f");
    const buffer = new Uint8Array(16);
    assert.equal(await source.read(buffer), 4);
    assert.equal(source.verified, false);
    await assert.rejects(source.finish(), /f is truncated: 4 of 5 bytes/);
  });
});

Deno.test("LocalOutputs: the first committed attempt wins whole; others leave nothing behind", async () => {
  await withTempDir(async (dir) => {
    const outputs = (await LocalOutputs.create(dir, "0123abcd"))!;
    assert.ok(outputs.dir.startsWith(dir));
    const one = outputs.stage(3, 1);
    const two = outputs.stage(3, 2);
    assert.notEqual(one.path, two.path);
    await Deno.writeTextFile(one.path, "first\n");
    await Deno.writeTextFile(two.path, "second, longer\n");
    assert.equal(outputs.staged(3, 1, 6), true);
    assert.equal(outputs.staged(3, 1, 5), false, "a staged file of another length is not it");
    assert.equal(outputs.staged(3, 4, 0), false);
    // A link is not an output, even to a file of the right length.
    Deno.symlinkSync(one.path, outputs.stage(3, 5).path);
    assert.equal(outputs.staged(3, 5, 6), false);
    await outputs.discard(3, 5);
    assert.deepEqual(await listDir(dir, /^mr-out-/), []);
    outputs.commit(3, 1);
    await outputs.discard(3, 2);
    assert.equal(await Deno.readTextFile(join(dir, "mr-out-3")), "first\n");
    assert.deepEqual([...Deno.readDirSync(outputs.dir)], []);
    await outputs.close();
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["mr-out-3"]);
  });
});

Deno.test("coordinator with local workers: a reduce assignment carries its inputs and a stage; a late attempt is discarded", async () => {
  await withTempDir(async (dir) => {
    const input = join(dir, "in.txt");
    await Deno.writeTextFile(input, "hello world");
    const out = join(dir, "out");
    await Deno.mkdir(out);
    const coordinator = await Coordinator.start({
      files: [input],
      nReduce: 1,
      taskTimeoutMs: 60_000,
      outputDir: out,
      localWorkers: true,
      backupTasks: false,
      listen: { hostname: "127.0.0.1", port: 0 },
      http: { hostname: "127.0.0.1", port: 0 },
      log: () => {},
    });
    const client = new RpcClient(coordinator.rpcAddress, { hello: clientHello() });
    try {
      const stageDir = coordinator.localStageDir!;
      assert.ok(stageDir.startsWith(out), stageDir);
      await client.call("mr.ask", { workerId: "w1" });
      const output = { address: "127.0.0.1:1", sizes: [20], crcs: [7], dir: join(dir, "m0") };
      const report = {
        workerId: "w1",
        kind: "map",
        task: 0,
        attempt: 1,
        ok: true,
        bytesRead: 11,
        bytesWritten: 20,
        output,
      };
      assert.deepEqual(await client.call("mr.report", report), { accepted: true });
      type Reduce = { attempt: number; maps: unknown[]; stage: { path: string } };
      const first = await client.call<Reduce>("mr.ask", { workerId: "w1" });
      assert.deepEqual(first.maps, [
        { map: 0, attempt: 1, address: output.address, size: 20, crc: 7, dir: output.dir },
      ]);
      assert.ok(first.stage.path.startsWith(stageDir), first.stage.path);
      await Deno.writeTextFile(first.stage.path, "hello 1\nworld 1\n");
      const reduce = { ...report, kind: "reduce", staged: true, output: undefined };
      // A report whose staged file is not the length it claims is not committed: the task goes
      // back, and its file is removed.
      assert.deepEqual(
        await client.call("mr.report", { ...reduce, bytesWritten: 3 }),
        { accepted: false },
      );
      assert.deepEqual(await listDir(out, /^mr-out-/), []);
      assert.deepEqual([...Deno.readDirSync(stageDir)], []);
      const again = await client.call<Reduce>("mr.ask", { workerId: "w2" });
      assert.equal(again.attempt, 2);
      await Deno.writeTextFile(again.stage.path, "hello 1\nworld 1\n");
      assert.deepEqual(
        await client.call("mr.report", { ...reduce, workerId: "w2", attempt: 2, bytesWritten: 16 }),
        { accepted: true },
      );
      assert.deepEqual(await coordinator.finished, { ok: true });
      assert.equal(await Deno.readTextFile(join(out, "mr-out-0")), "hello 1\nworld 1\n");
      // The first attempt reports again, late: its output is not needed and is removed.
      const late = await client.call<Reduce>("mr.ask", { workerId: "w3" });
      assert.deepEqual(late, { type: "done" });
      await Deno.writeTextFile(first.stage.path, "stale\n");
      assert.deepEqual(
        await client.call("mr.report", { ...reduce, bytesWritten: 6 }),
        { accepted: false },
      );
      assert.deepEqual([...Deno.readDirSync(stageDir)], []);
    } finally {
      client.close();
      await coordinator.close();
    }
    assert.deepEqual([...Deno.readDirSync(out)].map((e) => e.name), ["mr-out-0"]);
  });
});

Deno.test("mr run's local mode: partitions are read in place and outputs renamed into place", async () => {
  await withTempDir(async (dir) => {
    const names = await writeInputs(dir, 3, 3000);
    const { status, uploaded } = await localJob(dir, names);
    assert.equal(status.shuffleBytesServed, 0, "no partition crossed HTTP");
    assert.equal(uploaded, 0, "no output crossed HTTP");
    assert.deepEqual(await mergedOutput(dir), await reference("wc", dir, names));
    // Nothing but the inputs and the outputs: no staging directory, no temporary file.
    const left = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => !names.includes(n));
    assert.deepEqual(left.sort(), ["mr-out-0", "mr-out-1", "mr-out-2"]);
  });
});

Deno.test("a local-workers coordinator that cannot listen leaves no staging directory behind", async () => {
  await withTempDir(async (dir) => {
    const input = join(dir, "in.txt");
    await Deno.writeTextFile(input, "hello world");
    const out = join(dir, "out");
    await Deno.mkdir(out);
    using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    await assert.rejects(
      Coordinator.start({
        files: [input],
        nReduce: 1,
        taskTimeoutMs: 60_000,
        outputDir: out,
        localWorkers: true,
        listen: { hostname: "127.0.0.1", port: 0 },
        http: { hostname: "127.0.0.1", port: taken.addr.port },
        log: () => {},
      }),
      Deno.errors.AddrInUse,
    );
    assert.deepEqual([...Deno.readDirSync(out)], []);
  });
});

Deno.test("without local workers (a standalone coordinator) partitions and outputs still cross HTTP", async () => {
  await withTempDir(async (dir) => {
    const names = await writeInputs(dir, 3, 3000);
    const { status, uploaded } = await localJob(dir, names, { localWorkers: false });
    assert.ok(status.shuffleBytesServed > 0, "partitions were fetched over HTTP");
    assert.ok((uploaded ?? 0) > 0, "outputs were uploaded");
    assert.deepEqual(await mergedOutput(dir), await reference("wc", dir, names));
    const left = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => !names.includes(n));
    assert.deepEqual(left.sort(), ["mr-out-0", "mr-out-1", "mr-out-2"]);
  });
});

Deno.test("mr run's local mode: a partition corrupted in place is detected, and its map runs again", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "job");
    await Deno.mkdir(dir);
    const names = [...Array.from({ length: 3 }, (_, i) => `early-${i}.txt`), "late.txt"];
    await writeInputs(dir, 4, 400, names);
    // late.txt's map waits for the go file: meanwhile the test damages the other maps' output.
    const { app: gated, go } = await gatedWc(root, join(dir, "late.txt"));
    const dataDir = join(root, "data");
    const logs: string[] = [];
    const job = localJob(dir, names, {
      appPath: gated,
      dataDir,
      splitSize: 1 << 20,
      log: (l) => logs.push(l),
    });
    // One split per file, 3 partitions each: the early maps are done at 9 partition files.
    const parts = await waitFor("the early maps' partitions", async () => {
      const found = await partitionFiles(dataDir).catch(() => []);
      return found.length >= 3 * 3 ? found : undefined;
    });
    let damaged = 0;
    for (const part of parts) {
      const bytes = await Deno.readFile(part);
      if (bytes.length <= 8) continue;
      bytes[bytes.length >> 1] ^= 0xff;
      await Deno.writeFile(part, bytes);
      damaged++;
    }
    assert.ok(damaged >= 2, `partitions: ${parts.join(", ")}`);
    await Deno.writeTextFile(go, "");
    const { coordinatorStatus } = await job;
    assert.deepEqual(await mergedOutput(dir), await reference("wc", dir, names));
    assert.ok(coordinatorStatus.mapReruns >= 1, "a damaged map ran again");
    const text = logs.join("\n");
    assert.match(
      text,
      /could not fetch the output of map task \d+: .*CorruptInputError: .* is corrupt/,
    );
    assert.match(text, /running that map again/);
  });
});

/** Every part-<r> file of a completed map attempt under a worker's data directory. */
async function partitionFiles(dataDir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const job of Deno.readDir(dataDir)) {
    if (!job.isDirectory || !job.name.startsWith("job-")) continue;
    for await (const attempt of Deno.readDir(join(dataDir, job.name))) {
      if (!/^map-\d+-a\d+$/.test(attempt.name)) continue;
      for await (const part of Deno.readDir(join(dataDir, job.name, attempt.name))) {
        if (/^part-\d+$/.test(part.name)) {
          found.push(join(dataDir, job.name, attempt.name, part.name));
        }
      }
    }
  }
  return found;
}

/**
 * Runs a local-workers job (as mr run does, unless options.localWorkers is false) with one
 * in-process worker over `names` in `dir`, writing mr-out-* there.
 */
async function localJob(
  dir: string,
  names: string[],
  options: {
    appPath?: string;
    dataDir?: string;
    splitSize?: number;
    localWorkers?: boolean;
    log?: (line: string) => void;
  } = {},
) {
  const log = options.log ?? (() => {});
  const coordinator = await Coordinator.start({
    files: names.map((name) => join(dir, name)),
    nReduce: 3,
    splitSize: options.splitSize ?? 4096,
    taskTimeoutMs: 120_000,
    outputDir: dir,
    localWorkers: options.localWorkers ?? true,
    backupTasks: false,
    listen: { hostname: "127.0.0.1", port: 0 },
    http: { hostname: "127.0.0.1", port: 0 },
    log,
  });
  try {
    const status = newWorkerStatus("", "wc");
    const code = await runWorker({
      coordinator: coordinator.rpcAddress,
      appPath: options.appPath ?? app("wc"),
      dataDir: options.dataDir,
      status,
      log,
    });
    assert.equal(code, 0);
    assert.deepEqual(await coordinator.finished, { ok: true });
    const coordinatorStatus = coordinator.status();
    return { status, uploaded: coordinatorStatus.uploadBytes, coordinatorStatus };
  } finally {
    await coordinator.close();
  }
}

/** `i` written with the letters a-z (a word to wc, unlike digits). */
function letters(i: number): string {
  return [...i.toString(26)].map((d) => String.fromCharCode(97 + parseInt(d, 26))).join("");
}

function flip(bytes: Uint8Array, at: number, mask = 0xff): Uint8Array {
  const copy = bytes.slice();
  copy[at] ^= mask;
  return copy;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function emptySource() {
  return { read: () => Promise.resolve(null) };
}
