/**
 * MapReduce with no shared filesystem, with real processes on 127.0.0.1: the coordinator and
 * each worker run in a directory of their own and only the coordinator's holds the inputs. Map
 * output lives on the worker that produced it and moves over HTTP; these tests kill holders,
 * stall tasks, corrupt partitions on disk and send bad data requests, and the job still ends
 * with the sequential run's output.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  app,
  gatedWc,
  listDir,
  mergedOutput,
  type Proc,
  raftmr,
  reference,
  startCoordinator,
  waitFor,
  withTempDir,
  writeInputs,
} from "./helpers.ts";
import { sleep } from "../../util/sleep.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

async function status(http: string): Promise<Json> {
  const res = await fetch(`http://${http}/status`);
  return await res.json();
}

/** Polls /status until the coordinator exits; returns the last report it gave. */
async function watch(proc: Proc, http: string, first?: Json): Promise<Json> {
  let last = first;
  while (!proc.exited()) {
    last = await status(http).catch(() => last);
    await sleep(50);
  }
  return last;
}

/** Makes `root/<name>` directories: the coordinator's and one per worker. */
async function dirs(root: string, names: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of names) {
    out[name] = join(root, name);
    await Deno.mkdir(out[name]);
  }
  return out;
}

/** Starts a worker in `dir`, keeping its intermediate data in `dir/data`. */
function worker(dir: string, rpc: string, appPath: string, extra: string[] = []): Proc {
  return raftmr(
    ["worker", "--coordinator", rpc, "--app", appPath, "--data-dir", join(dir, "data"), ...extra],
    dir,
  );
}

/** Every path under `dir`, relative, sorted. */
async function tree(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const rel = prefix + entry.name;
    out.push(rel);
    if (entry.isDirectory) out.push(...await tree(join(dir, entry.name), `${rel}/`));
  }
  return out.sort();
}

function pidOf(workerId: string): number {
  return Number(workerId.split(":").at(-1));
}

Deno.test("no shared filesystem: wc and indexer in separate directories equal a sequential run", async () => {
  await withTempDir(async (root) => {
    const d = await dirs(root, ["coord", "w1", "w2", "w3"]);
    const files = await writeInputs(d.coord, 4, 3000);
    for (const appName of ["wc", "indexer"]) {
      // 4 KiB splits: each input is cut into several, so map sees parts of files.
      const { proc, rpc, http } = await startCoordinator(d.coord, files, [
        "--split-size",
        "4KiB",
        "--reduce",
        "3",
      ]);
      const before = await status(http);
      assert.ok(before.nMap > files.length, `splits: ${before.nMap} map tasks`);
      assert.ok(before.tasks.idle.some((t: Json) => t.split?.parts > 1));
      const workers = [d.w1, d.w2, d.w3].map((dir) => worker(dir, rpc, app(appName)));
      // Watch the job to the end: the last /status before exit shows the shuffle.
      const last = await watch(proc, http, before);
      const out = await proc.done;
      assert.equal(out.code, 0, out.stderr);
      for (const w of workers) assert.equal((await w.done).code, 0);
      assert.deepEqual(await mergedOutput(d.coord), await reference(appName, d.coord, files));
      assert.equal(last.phase, "done");
      assert.ok(last.splitBytes > 0 && last.shuffleBytes > 0);
      assert.ok(last.workers.every((w: Json) => /^127\.0\.0\.1:\d+$/.test(w.address)));
      // Nothing but the inputs and mr-out-* in the coordinator's directory; workers leave
      // an empty data directory (the job's intermediate data is removed when it ends).
      assert.deepEqual(
        (await tree(d.coord)).filter((name) => !files.includes(name)),
        ["mr-out-0", "mr-out-1", "mr-out-2"],
      );
      for (const dir of [d.w1, d.w2, d.w3]) assert.deepEqual(await tree(dir), ["data"]);
    }
  });
});

Deno.test("kill -9 of a worker holding completed maps during the reduce phase: maps re-run, output right", async () => {
  await withTempDir(async (root) => {
    const d = await dirs(root, ["coord", "w1", "w2", "w3"]);
    const files = await writeInputs(d.coord, 6, 400);
    // Reduces take a while (a pause per key), so the reduce phase is long enough to kill in.
    const slow = join(root, "slow_reduce.ts");
    await Deno.writeTextFile(
      slow,
      [
        `import * as wc from ${JSON.stringify(app("wc"))};`,
        "export const map = wc.map;",
        "export async function reduce(key: string, values: string[]) {",
        "  await new Promise((resolve) => setTimeout(resolve, 100));",
        "  return wc.reduce(key, values);",
        "}",
      ].join("\n"),
    );
    const { proc, rpc, http } = await startCoordinator(d.coord, files, ["--reduce", "6"]);
    const w1 = worker(d.w1, rpc, slow);
    const w2 = worker(d.w2, rpc, slow);
    const byPid = new Map([[w1.child.pid, w1], [w2.child.pid, w2]]);
    const reducing = await waitFor("the reduce phase", async () => {
      const s = await status(http);
      return s.phase === "reduce" ? s : undefined;
    });
    // The victim holds completed maps; the reduces still need them.
    const holder = reducing.tasks.done.find((t: Json) => t.kind === "map").worker;
    const victim = byPid.get(pidOf(holder))!;
    victim.child.kill("SIGKILL");
    const survivor = victim === w1 ? w2 : w1;
    const w3 = worker(d.w3, rpc, slow); // a replacement joins
    const after = await watch(proc, http, reducing);
    const out = await proc.done;
    assert.equal(out.code, 0, out.stderr);
    assert.ok(after.mapReruns >= 1, `maps re-run: ${JSON.stringify(after.mapReruns)}`);
    const dead = after.workers.find((w: Json) => w.id === holder);
    assert.equal(dead.alive, false);
    assert.ok(
      [...after.tasks.idle, ...after.tasks.running, ...after.tasks.done].some((t: Json) =>
        t.reruns >= 1
      ),
    );
    assert.match(out.stderr, /is gone .*will run again/);
    assert.deepEqual(await mergedOutput(d.coord), await reference("wc", d.coord, files));
    assert.equal((await survivor.done).code, 0);
    assert.equal((await w3.done).code, 0);
    await victim.done;
  });
});

Deno.test("crash: apps that exit or stall at random, workers in their own directories", async () => {
  await withTempDir(async (root) => {
    const d = await dirs(root, ["coord", "w0", "w1", "w2", "w3"]);
    const files = await writeInputs(d.coord, 8, 50);
    const expected = await reference("nocrash", d.coord, files);
    // 6 s: see the classic crash test in faults.test.ts.
    const { proc, rpc } = await startCoordinator(d.coord, files, ["--task-timeout", "6s"]);
    const workers: Proc[] = [];
    const loops = [d.w0, d.w1, d.w2, d.w3].map(async (dir, i) => {
      for (let n = 0; !proc.exited(); n++) {
        const w = worker(dir, rpc, app("crash"), ["--data-dir", join(dir, `data-${i}-${n}`)]);
        workers.push(w);
        await Promise.race([w.done, proc.done]);
        await sleep(300);
      }
    });
    const out = await proc.done;
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(await mergedOutput(d.coord), expected);
    for (const w of workers) if (!w.exited()) w.child.kill("SIGKILL");
    await Promise.all(loops);
    const outputs = await Promise.all(workers.map((w) => w.done));
    // The faults happened: an app that exits ends its task thread (the worker says so and
    // reports the failure), a stall past --task-timeout is re-issued (the coordinator says so).
    const said = [out.stderr, ...outputs.map((o) => o.stderr)].join("\n");
    assert.match(said, /timed out|failed|ended its task thread/);
  });
});

Deno.test("backup task: a map stalled on one worker gets a backup attempt that wins", async () => {
  await withTempDir(async (root) => {
    const d = await dirs(root, ["coord", "w1", "w2"]);
    const names = [...Array.from({ length: 9 }, (_, i) => `fast-${i}.txt`), "last.txt"];
    const files = await writeInputs(d.coord, 10, 50, names);
    // The first attempt at last.txt stalls (for far longer than the job); any later one runs.
    const marker = join(root, "stalled-once");
    const stall = join(root, "stall_once.ts");
    await Deno.writeTextFile(
      stall,
      [
        `import * as wc from ${JSON.stringify(app("wc"))};`,
        "export async function map(file: string, contents: string, emit: (k: string, v: string) => void) {",
        '  if (file === "last.txt") {',
        "    let first = true;",
        `    try { Deno.mkdirSync(${JSON.stringify(marker)}); } catch { first = false; }`,
        "    if (first) await new Promise((resolve) => setTimeout(resolve, 600_000));",
        "  }",
        "  return wc.map(file, contents, emit);",
        "}",
        "export const reduce = wc.reduce;",
      ].join("\n"),
    );
    // A task timeout far beyond the test: only a backup attempt can finish last.txt.
    const { proc, rpc, http } = await startCoordinator(d.coord, files, [
      "--task-timeout",
      "1h",
      "--reduce",
      "2",
    ]);
    const w1 = worker(d.w1, rpc, stall);
    const w2 = worker(d.w2, rpc, stall);
    const s = await watch(proc, http);
    const out = await proc.done;
    assert.equal(out.code, 0, out.stderr);
    const last = s.tasks.done.find((t: Json) => t.kind === "map" && t.index === 9);
    assert.equal(last.input, "last.txt");
    assert.equal(last.doneByBackup, true);
    assert.equal(last.backups, 1);
    assert.equal(last.attempts, 2);
    assert.equal(s.backupAttempts, 1);
    assert.equal(s.backupWins, 1);
    assert.deepEqual(await mergedOutput(d.coord), await reference("wc", d.coord, files));
    // Both workers exit on their own: the stalled one hears in a heartbeat that the job is
    // over and abandons its app's sleep.
    assert.equal((await w1.done).code, 0);
    assert.equal((await w2.done).code, 0);
  });
});

Deno.test("a partition corrupted and truncated on the mapper's disk is detected, and its map runs again", async () => {
  await withTempDir(async (root) => {
    const d = await dirs(root, ["coord", "w1", "w2"]);
    const names = [...Array.from({ length: 3 }, (_, i) => `early-${i}.txt`), "late.txt"];
    const files = await writeInputs(d.coord, 4, 400, names);
    // late.txt's map waits for the test's go-ahead, so the test can damage the other maps'
    // partitions before any reduce fetches them.
    const { app: gated, go } = await gatedWc(root, "late.txt");
    const { proc, rpc, http } = await startCoordinator(d.coord, files, [
      "--reduce",
      "2",
      "--no-backup-tasks",
    ]);
    const w1 = worker(d.w1, rpc, gated);
    const w2 = worker(d.w2, rpc, gated);
    await waitFor("three maps done", async () => {
      const s = await status(http);
      return s.counts.map.done === 3 ? s : undefined;
    });
    // Damage every partition file that holds data: flip a byte in one, cut the other short.
    const parts: string[] = [];
    for (const dir of [d.w1, d.w2]) {
      // A worker still starting (under load) has no data directory yet: nothing to damage.
      const names = await tree(join(dir, "data")).catch(() => []);
      for (const name of names) {
        if (/\/map-\d+-a\d+\/part-\d+$/.test(name)) parts.push(join(dir, "data", name));
      }
    }
    const nonEmpty = [];
    for (const part of parts) if ((await Deno.stat(part)).size > 8) nonEmpty.push(part);
    assert.ok(nonEmpty.length >= 2, `partitions found: ${parts.join(", ")}`);
    nonEmpty.forEach((part, i) => {
      const bytes = Deno.readFileSync(part);
      if (i % 2 === 0) {
        bytes[Math.floor(bytes.length / 2)] ^= 0xff;
        Deno.writeFileSync(part, bytes);
      } else {
        Deno.writeFileSync(part, bytes.subarray(0, bytes.length - 5));
      }
    });
    await Deno.writeTextFile(go, "");
    const out = await proc.done;
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(await mergedOutput(d.coord), await reference("wc", d.coord, files));
    assert.match(out.stderr, /could not fetch the output of map task \d+: .*(corrupt|truncated)/);
    assert.match(out.stderr, /running that map again/);
    for (const w of [w1, w2]) assert.equal((await w.done).code, 0);
  });
});

/** Sends a raw HTTP/1.1 request (no URL normalization) and returns the status code. */
async function rawStatus(address: string, path: string, token?: string): Promise<number> {
  const [hostname, port] = [address.slice(0, address.lastIndexOf(":")), address.split(":").at(-1)];
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    const auth = token === undefined ? "" : `Authorization: Bearer ${token}\r\n`;
    await conn.write(
      new TextEncoder().encode(
        `GET ${path} HTTP/1.1\r\nHost: ${address}\r\n${auth}Connection: close\r\n\r\n`,
      ),
    );
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    const text = new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
    return Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
  } finally {
    try {
      conn.close();
    } catch {
      // Closed by the server.
    }
  }
}

Deno.test("bad data requests: no token, wrong token, ../../etc/passwd, unknown job or partition", async () => {
  await withTempDir(async (root) => {
    const d = await dirs(root, ["coord", "w1"]);
    const files = await writeInputs(d.coord, 2, 100, ["one.txt", "two.txt"]);
    // two.txt's map waits for the test, so the worker is serving map 0's partitions meanwhile.
    const { app: gated, go } = await gatedWc(root, "two.txt");
    const { proc, rpc, http } = await startCoordinator(d.coord, files, ["--reduce", "2"]);
    const w1 = worker(d.w1, rpc, gated);
    const s = await waitFor("map 0 done", async () => {
      const s = await status(http);
      return s.counts.map.done === 1 ? s : undefined;
    });
    const holder = s.workers[0].address;
    // The job id and token are not in /status; a worker learns them from its heartbeat reply.
    assert.doesNotMatch(JSON.stringify(s), /token/i);
    const job = (await tree(join(d.w1, "data"))).find((n) => n.startsWith("job-"))!.slice(4);
    const good = `/mr/${job}/map/0/1/0`;
    // Without the token, with a wrong one, nothing is served: 403, on both servers.
    assert.equal(await rawStatus(holder, good), 403);
    assert.equal(await rawStatus(holder, good, "x".repeat(64)), 403);
    assert.equal(await rawStatus(http, `/mr/${job}/split/0`), 403);
    assert.equal(await rawStatus(http, `/mr/${job}/split/0`, "wrong-token-000000"), 403);
    assert.equal(await rawStatus(holder, "/../../etc/passwd"), 403);
    // With the token (read from where a worker keeps it: nowhere on disk, so the test plays
    // the coordinator's side by asking over RPC like a worker does).
    const { RpcClient } = await import("../../net/rpc.ts");
    const { clientHello } = await import("../../net/handshake.ts");
    const [host, port] = [rpc.split(":")[0], Number(rpc.split(":")[1])];
    const client = new RpcClient({ hostname: host, port }, { hello: clientHello() });
    const beat = await client.call<{ token: string }>("mr.heartbeat", {
      workerId: "prober",
      address: "127.0.0.1:1",
    });
    client.close();
    const token = beat.token;
    assert.equal(await rawStatus(holder, good, token), 200);
    for (
      const path of [
        `/mr/${job}/map/0/1/../../../../../etc/passwd`,
        "/../../etc/passwd",
        `/mr/${job}/map/0/1/%2e%2e%2f%2e%2e%2fetc%2fpasswd`,
        `/mr/0123456789abcdef/map/0/1/0`, // another job
        `/mr/${job}/map/7/1/0`, // no such map
        `/mr/${job}/map/0/9/0`, // no such attempt
        `/mr/${job}/map/0/1/5`, // no such partition
      ]
    ) {
      assert.equal(await rawStatus(holder, path, token), 404, path);
    }
    assert.equal(await rawStatus(http, `/mr/${job}/split/0/../../../../etc/passwd`, token), 404);
    assert.equal(await rawStatus(http, `/mr/${job}/split/99`, token), 404);
    assert.equal(await rawStatus(http, `/mr/${job}/split/0`, token), 200);
    await Deno.writeTextFile(go, "");
    const out = await proc.done;
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(await mergedOutput(d.coord), await reference("wc", d.coord, files));
    assert.equal((await w1.done).code, 0);
    assert.deepEqual(await listDir(d.coord, /^mr-out-/), ["mr-out-0", "mr-out-1"]);
  });
});
