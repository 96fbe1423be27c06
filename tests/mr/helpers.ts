/**
 * Shared helpers of the MapReduce process tests: spawning raftmr, free ports, generated inputs,
 * the sequential reference, and reading merged outputs the way the classic lab compares them.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadApp } from "../../mr/app.ts";
import { withTempDir as withScratchDir } from "../lib/run.ts";
import { freePort } from "../lib/cluster.ts";
import { type Running, spawn } from "../lib/roles.ts";

/** A free TCP port on 127.0.0.1 below the ephemeral range (the harness's freePort()). */
export { freePort };
import { sleep } from "../../util/sleep.ts";
import { crc32c } from "../../util/crc32c.ts";
import { Coordinator, type CoordinatorOptions } from "../../mr/coordinator.ts";

/** Generous bound on waiting for a condition: a guard against hangs, not a timing goal. */
const WAIT_MS = 240_000;

/** Asks `probe` every 50 ms until it gives a value (a throw counts as none yet). */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Gave up waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * Uploads `text` as the output of reduce task `reduce` attempt `attempt` the way a worker does
 * (length and CRC-32C announced, the job's token) and checks the coordinator took it (200).
 */
export async function uploadOutput(
  coordinator: Coordinator,
  reduce: number,
  attempt: number,
  text: string,
): Promise<void> {
  const { job, token } = coordinator.credentials;
  const body = new TextEncoder().encode(text);
  const res = await fetch(
    `http://127.0.0.1:${coordinator.httpAddress.port}/mr/${job}/output/${reduce}/${attempt}`,
    {
      method: "PUT",
      headers: {
        authorization: `Bearer ${token}`,
        "x-raftmr-length": String(body.length),
        "x-raftmr-crc32c": crc32c(body).toString(16).padStart(8, "0"),
      },
      body,
    },
  );
  if (res.status !== 200) throw new Error(`Upload refused: ${res.status} ${await res.text()}`);
  await res.body?.cancel();
}

/**
 * Starts an in-process coordinator (RPC and HTTP on 127.0.0.1) for a one-file job in `dir`
 * (`text` in `in.txt`, one reduce), with `options` replacing any of those defaults.
 */
export async function startOneFileJob(
  dir: string,
  options: Partial<CoordinatorOptions> = {},
  text = "hello world",
): Promise<{ input: string; coordinator: Coordinator }> {
  const input = join(dir, "in.txt");
  await Deno.writeTextFile(input, text);
  const coordinator = await Coordinator.start({
    files: [input],
    nReduce: 1,
    taskTimeoutMs: 60_000,
    outputDir: dir,
    listen: { hostname: "127.0.0.1", port: 0 },
    http: { hostname: "127.0.0.1", port: 0 },
    log: () => {},
    ...options,
  });
  return { input, coordinator };
}

/** Absolute path of the repository's main.ts. */
export const MAIN = fileURLToPath(new URL("../../main.ts", import.meta.url));
/** Absolute path of the repository's deno.json (tests run processes from temp dirs). */
export const CONFIG = fileURLToPath(new URL("../../deno.json", import.meta.url));

/** Absolute path of a bundled app, e.g. app("wc"). */
export function app(name: string): string {
  return fileURLToPath(new URL(`../../mr/apps/${name}.ts`, import.meta.url));
}

/**
 * Starts `raftmr mr run ARGS` in `dir` with TMPDIR `tmp`, where its job directory goes (a test
 * then sees whether it is removed); output is collected as it comes (Running.stderr()).
 */
export function startMrRun(dir: string, tmp: string, args: string[]): Running {
  return spawn(
    Deno.execPath(),
    ["run", "-A", "--config", CONFIG, MAIN, "mr", "run", ...args],
    { cwd: dir, env: { TMPDIR: tmp } },
  );
}

/** A spawned raftmr process and its collected output. */
export interface Proc {
  child: Deno.ChildProcess;
  /** Resolves when the process exits, with its status and all output. */
  done: Promise<{ code: number; stdout: string; stderr: string }>;
  /** True once the process has exited. */
  exited(): boolean;
}

/** Starts `raftmr ARGS...` in `cwd`. */
export function raftmr(args: string[], cwd: string): Proc {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, MAIN, ...args],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let exited = false;
  const decoder = new TextDecoder();
  const done = child.output().then((out) => {
    exited = true;
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  });
  return { child, done, exited: () => exited };
}

/**
 * Ports for a coordinator's RPC and HTTP servers. From the harness's freePort(), below the
 * ephemeral range: a port the kernel handed out for bind(0) and released could be taken by any
 * process's outgoing connection before the coordinator (a process still starting) binds it.
 */
export function ports(): { rpc: string; http: string } {
  return { rpc: `127.0.0.1:${freePort()}`, http: `127.0.0.1:${freePort()}` };
}

/** Starts a coordinator in `cwd` and waits until its HTTP status page answers. */
export async function startCoordinator(
  cwd: string,
  files: string[],
  extra: string[] = [],
): Promise<{ proc: Proc; rpc: string; http: string }> {
  const { rpc, http } = ports();
  const proc = raftmr(["coordinator", "--listen", rpc, "--http", http, ...extra, ...files], cwd);
  for (;;) {
    if (proc.exited()) {
      const out = await proc.done;
      throw new Error(`Coordinator exited with ${out.code} before serving: ${out.stderr}`);
    }
    try {
      const res = await fetch(`http://${http}/status`);
      await res.body?.cancel();
      if (res.ok) return { proc, rpc, http };
    } catch {
      // Not listening yet.
    }
    await sleep(100);
  }
}

/** Starts a worker for `appName` against the coordinator at `rpc`. */
export function startWorker(cwd: string, rpc: string, appName: string): Proc {
  return raftmr(["worker", "--coordinator", rpc, "--app", app(appName)], cwd);
}

/**
 * Writes a wc app whose map of `gated` waits until the file `root/go` exists, so a test can act
 * while the other maps' output sits on the workers; returns the app's path and the go file.
 */
export async function gatedWc(root: string, gated: string): Promise<{ app: string; go: string }> {
  const go = join(root, "go");
  const path = join(root, "gated.ts");
  await Deno.writeTextFile(
    path,
    [
      `import * as wc from ${JSON.stringify(app("wc"))};`,
      "type Emit = (k: string, v: string) => void;",
      "export async function map(file: string, contents: string, emit: Emit) {",
      `  while (file === ${JSON.stringify(gated)}) {`,
      `    try { Deno.statSync(${JSON.stringify(go)}); break; } catch { /* not yet */ }`,
      "    await new Promise((resolve) => setTimeout(resolve, 50));",
      "  }",
      "  return wc.map(file, contents, emit);",
      "}",
      "export const reduce = wc.reduce;",
    ].join("\n"),
  );
  return { app: path, go };
}

/** A seeded pseudo-random generator (tests must be reproducible). */
export function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

const VOCABULARY = [
  "the",
  "and",
  "of",
  "to",
  "a",
  "in",
  "that",
  "it",
  "was",
  "he",
  "I",
  "his",
  "you",
  "with",
  "Sherlock",
  "Holmes",
  "Watson",
  "Tom",
  "Sawyer",
  "Huck",
  "whale",
  "mapreduce",
  "raft",
  "café",
  "naïve",
  "Straße",
  "über",
  "Ελλάδα",
  "東京",
  "日本語",
  "𝒜lpha",
  "don't",
  "x2y",
  "re-issue",
  "CAPITAL",
  "mixedCase",
  "zebra",
  "apple",
  "Zürich",
  "façade",
];

/**
 * Writes `count` text files of about `words` words each (with punctuation, digits, newlines and
 * non-ASCII letters) into `dir` and returns their names relative to `dir`.
 */
export async function writeInputs(
  dir: string,
  count: number,
  words = 400,
  names?: string[],
): Promise<string[]> {
  const rand = seeded(count * 7919 + words);
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const parts: string[] = [];
    for (let w = 0; w < words; w++) {
      parts.push(VOCABULARY[Math.floor(rand() ** 2 * VOCABULARY.length)]);
      const r = rand();
      parts.push(
        r < 0.05 ? ".\n" : r < 0.1 ? ", " : r < 0.12 ? ` ${Math.floor(rand() * 100)} ` : " ",
      );
    }
    const name = names?.[i] ?? `pg-${i}.txt`;
    await Deno.writeTextFile(join(dir, name), parts.join(""));
    files.push(name);
  }
  return files;
}

/** Orders strings by Unicode code point, which is UTF-8 byte order (LC_ALL=C sort). */
export function byteOrder(a: string, b: string): number {
  const ai = a[Symbol.iterator]();
  const bi = b[Symbol.iterator]();
  for (;;) {
    const x = ai.next();
    const y = bi.next();
    if (x.done || y.done) return x.done ? (y.done ? 0 : -1) : 1;
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

/**
 * Runs an app sequentially in this process (the classic mrsequential): map every file (named
 * as the coordinator is told, read from `dir`), group, reduce; returns sorted non-empty lines.
 */
export async function reference(appName: string, dir: string, files: string[]): Promise<string[]> {
  const mr = await loadApp(app(appName));
  const groups = new Map<string, string[]>();
  for (const file of files) {
    const pairs = await mr.map(file, await Deno.readTextFile(join(dir, file)));
    for (const { key, value } of pairs) {
      const values = groups.get(key);
      if (values) values.push(value);
      else groups.set(key, [value]);
    }
  }
  const lines: string[] = [];
  for (const [key, values] of groups) lines.push(`${key} ${await mr.reduce(key, values)}`);
  return lines.sort(byteOrder);
}

/** All `mr-out-*` files of `dir`, merged, without blank lines, sorted in byte order. */
export async function mergedOutput(dir: string): Promise<string[]> {
  const lines: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.name.startsWith("mr-out-")) continue;
    const text = await Deno.readTextFile(join(dir, entry.name));
    for (const line of text.split("\n")) if (line !== "") lines.push(line);
  }
  return lines.sort(byteOrder);
}

/** Names of the entries of `dir` that match `pattern`. */
export async function listDir(dir: string, pattern: RegExp): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) if (pattern.test(entry.name)) names.push(entry.name);
  return names.sort();
}

/** Makes a temp dir, runs `fn` in it, and removes it. */
export function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  return withScratchDir("raftmr-mr-test-", fn);
}
