/**
 * MapReduce word-count benchmark:
 * `deno task bench mr [--mb 64] [--runs 3] [--scale 64,256,1024]
 * [--only compare,workers,scale,splits,shuffle]
 * [--keep]`.
 *
 * - compare: on the same corpus (the books in data/gutenberg repeated to --mb, else generated
 *   text), `raftmr mr run --workers 2` with the bundled wc (its workers task threads, and with
 *   --processes worker processes) against one Deno process counting
 *   with the same tokenizer into a Map (bench/wc_single.ts) and against
 *   `LC_ALL=C tr -cs A-Za-z '\n' | sort | uniq -c`. Contenders alternate within each round, and
 *   the ratio is taken per round, so the host's drift hits every contender alike.
 * - workers: the same corpus with 1 worker and with 2 (the speed-up).
 * - scale: generated text of each size in --scale (MiB): wall, MB/s, peak RSS of the largest
 *   process (mr run's own, which holds its workers).
 * - splits, shuffle: one 64 MiB file with default and 8 MiB splits, and the shuffle's transfer
 *   rate (bench/mr_network.ts).
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { printTable } from "./table.ts";
import { shuffleBench, splitsBench } from "./mr_network.ts";
import { UsageError } from "../cli/command.ts";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const BOOKS = ["/work/shared/data/gutenberg", join(REPO, "..", "shared", "data", "gutenberg")];
const MAIN = join(REPO, "main.ts");
const WC = join(REPO, "mr", "apps", "wc.ts");
const SINGLE = join(REPO, "bench", "wc_single.ts");
const SECTIONS = ["compare", "workers", "scale", "splits", "shuffle"];
const MIB = 1024 * 1024;

async function readBooks(): Promise<Uint8Array[]> {
  for (const dir of BOOKS) {
    try {
      const books: Uint8Array[] = [];
      for await (const entry of Deno.readDir(dir)) {
        if (entry.isFile && entry.name.endsWith(".txt")) {
          books.push(await Deno.readFile(join(dir, entry.name)));
        }
      }
      if (books.length > 0) return books.sort((a, b) => a.length - b.length);
    } catch {
      // Try the next place, then fall back to generated text.
    }
  }
  return [];
}

/** Deterministic text of about `bytes` bytes: Zipf-ish words of a seeded PRNG, some non-ASCII. */
function generatedText(bytes: number, seed: number): Uint8Array {
  let state = seed >>> 0;
  const rand = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const letters = "etaoinshrdlucmfwypvbgkjqxzéü";
  const vocabulary = Array.from({ length: 50000 }, (_, i) => {
    let word = "";
    for (let n = i + 1; n > 0; n = Math.floor(n / letters.length)) {
      word += letters[n % letters.length];
    }
    return word;
  });
  const parts: string[] = [];
  let size = 0;
  while (size < bytes) {
    const word = vocabulary[Math.floor(vocabulary.length * rand() ** 4)];
    const r = rand();
    const sep = r < 0.08 ? ".\n" : r < 0.12 ? ", " : " ";
    parts.push(word, sep);
    size += word.length + sep.length;
  }
  return new TextEncoder().encode(parts.join(""));
}

/** Writes `files` files of about totalBytes / files bytes each, cycling through `sources`. */
async function writeCorpus(
  dir: string,
  prefix: string,
  sources: Uint8Array[],
  totalBytes: number,
  files: number,
): Promise<{ names: string[]; bytes: number }> {
  const perFile = Math.ceil(totalBytes / files);
  const names: string[] = [];
  let bytes = 0;
  let next = 0;
  for (let i = 0; i < files; i++) {
    const name = join(dir, `${prefix}-${String(i).padStart(3, "0")}.txt`);
    const file = await Deno.open(name, { write: true, create: true, truncate: true });
    let size = 0;
    while (size < perFile) {
      const source = sources[next++ % sources.length];
      await file.write(source);
      size += source.length;
    }
    file.close();
    bytes += size;
    names.push(name);
  }
  return { names, bytes };
}

/**
 * Wall and CPU seconds of one run, the largest peak RSS among its processes, and the
 * attempts beyond one per task that mr run reported (work done twice: timeouts, backups).
 */
interface Timing {
  wall: number;
  cpu: number;
  peakRss?: number;
  extraAttempts: number;
}

function parseTimes(line: string): number {
  // bash `times` prints "0m1.234s 0m0.056s" (user, system) for the shell's children.
  let total = 0;
  for (const [, minutes, seconds] of line.matchAll(/(\d+)m([\d.]+)s/g)) {
    total += Number(minutes) * 60 + Number(seconds);
  }
  return total;
}

/**
 * Bash that runs `script` in the background and samples the peak RSS (VmHWM) of it and of its
 * direct children every 50 ms, with builtins only, then prints the largest as `peak <kB>`: the
 * mr run process, which holds its workers (task threads), or with --processes the largest
 * worker process. Deno reads /proc only with --allow-all, which the bench task does not grant.
 */
function withRssWatch(script: string): string {
  return [
    `${script} >/dev/null &`,
    "pid=$!; peak=0",
    "while kill -0 $pid 2>/dev/null; do",
    "  procs=($pid)",
    "  for f in /proc/$pid/task/*/children; do",
    // The file has no final newline, so read reports EOF even when it read the pids.
    "    kids=(); read -r -a kids < $f 2>/dev/null",
    "    procs+=(${kids[@]})",
    "  done",
    "  for c in ${procs[@]}; do",
    "    while read -r k v _; do",
    '      if [ "$k" = VmHWM: ] && [ "$v" -gt "$peak" ]; then peak=$v; fi',
    "    done < /proc/$c/status 2>/dev/null",
    "  done",
    "  sleep 0.05",
    "done",
    "wait $pid; status=$?",
    "echo peak $peak",
  ].join("\n");
}

/**
 * Runs a shell command in `cwd`; CPU time is its children's user+system time (bash `times`);
 * with `watchRss`, also the peak RSS of its largest process (withRssWatch).
 */
async function shell(script: string, cwd: string, watchRss = false): Promise<Timing> {
  const start = performance.now();
  const body = watchRss ? withRssWatch(script) : `${script} >/dev/null\nstatus=$?`;
  const out = await new Deno.Command("bash", {
    args: ["-c", `${body}\ntimes\nexit $status`],
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const wall = (performance.now() - start) / 1000;
  if (!out.success) {
    throw new Error(`${script} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  const stdout = new TextDecoder().decode(out.stdout);
  const lines = stdout.trim().split("\n");
  const peak = /^peak (\d+)$/m.exec(stdout);
  const extra = /mr run: (\d+) extra attempts/.exec(new TextDecoder().decode(out.stderr));
  return {
    wall,
    cpu: parseTimes(lines[lines.length - 1]),
    peakRss: peak && Number(peak[1]) > 0 ? Number(peak[1]) * 1024 : undefined,
    extraAttempts: extra ? Number(extra[1]) : 0,
  };
}

function quote(arg: string): string {
  return `'${arg.replaceAll("'", "'\\''")}'`;
}

function mrScript(files: string[], workers: number, flags: string[] = []): string {
  // With V8's gc exposed, as `deno task start` and the installed command run raftmr: mr run's
  // workers then trim their heaps with one collection (mr/cli.ts runLocalJob passes it on).
  const deno = [Deno.execPath(), "run", "-A", "--v8-flags=--expose-gc"];
  return [...deno, MAIN, "mr", "run", "--app", WC].map(quote).join(" ") +
    ` --workers ${workers} --reduce 10 ${flags.join(" ")} ${files.map(quote).join(" ")}`;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Reads the `<word> <count>` lines of `paths` into a map. */
async function readCounts(paths: string[]): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const path of paths) {
    for (const line of (await Deno.readTextFile(path)).split("\n")) {
      if (line === "") continue;
      const space = line.lastIndexOf(" ");
      counts.set(line.slice(0, space), Number(line.slice(space + 1)));
    }
  }
  return counts;
}

/** Checks that the MR output in `dir` equals the single process's counts. */
async function checkSame(dir: string, single: string): Promise<number> {
  const outputs = Array.from({ length: 10 }, (_, r) => join(dir, `mr-out-${r}`));
  const mr = await readCounts(outputs);
  const expected = await readCounts([single]);
  if (mr.size !== expected.size) {
    throw new Error(`MR found ${mr.size} distinct words, the single process ${expected.size}`);
  }
  for (const [word, count] of expected) {
    if (mr.get(word) !== count) {
      throw new Error(`MR count of ${word} is ${mr.get(word)}, not ${count}`);
    }
  }
  return mr.size;
}

const mb = (bytes: number) => bytes / MIB;
const fixed = (n: number, digits = 2) => n.toFixed(digits);

/** Runs the benchmark and prints its tables. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      mb: { type: "string", default: "64" },
      runs: { type: "string", default: "3" },
      scale: { type: "string", default: "64,256,1024" },
      only: { type: "string", default: SECTIONS.join(",") },
      keep: { type: "boolean", default: false },
    },
  });
  const size = Number(values.mb);
  if (!(size > 0)) throw new UsageError(`--mb must be a positive number, got ${values.mb}`);
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) {
    throw new UsageError(`--runs must be a whole number ≥ 1, got ${values.runs}`);
  }
  const scale = values.scale.split(",").map(Number);
  if (scale.some((s) => !(s > 0))) {
    throw new UsageError(`--scale takes sizes in MiB like 64,256,1024, got ${values.scale}`);
  }
  const only = values.only.split(",");
  const unknown = only.filter((s) => !SECTIONS.includes(s));
  if (unknown.length > 0) {
    throw new UsageError(`--only accepts ${SECTIONS.join(", ")}, got ${unknown.join(", ")}`);
  }

  const dir = await Deno.makeTempDir({ prefix: "raftmr-bench-mr-" });
  try {
    console.log(`${navigator.hardwareConcurrency} CPUs; scratch ${dir}`);
    if (only.includes("compare") || only.includes("workers")) {
      let sources = await readBooks();
      if (sources.length === 0) sources = [generatedText(4 * MIB, 1)];
      const corpus = await writeCorpus(dir, "books", sources, size * MIB, 16);
      console.log(
        `corpus: ${corpus.names.length} files, ${fixed(mb(corpus.bytes), 1)} MiB ` +
          `(${sources.length > 1 ? "data/gutenberg repeated" : "generated"})\n`,
      );
      // Warm the page cache so the first contender does not pay for the disk.
      for (const file of corpus.names) await Deno.readFile(file);
      if (only.includes("compare")) await compare(dir, corpus, runs);
      if (only.includes("workers")) await speedup(dir, corpus, runs);
    }
    if (only.includes("scale")) await scaling(dir, scale);
    if (only.includes("splits")) await splitsBench(dir, runs, (bytes) => generatedText(bytes, 5));
    if (only.includes("shuffle")) await shuffleBench(dir, runs);
  } finally {
    if (!values.keep) await Deno.remove(dir, { recursive: true });
  }
}

async function compare(
  dir: string,
  corpus: { names: string[]; bytes: number },
  runs: number,
): Promise<void> {
  const single = join(dir, "single-out");
  const singleScript = [Deno.execPath(), "run", "-A", SINGLE, single, ...corpus.names]
    .map(quote).join(" ");
  const shellScript = `cat ${corpus.names.map(quote).join(" ")} | LC_ALL=C tr -cs A-Za-z '\\n' | ` +
    "sort | uniq -c";
  const mr: Timing[] = [];
  const processes: Timing[] = [];
  const one: Timing[] = [];
  const unix: Timing[] = [];
  // Not counted: Deno compiles and caches a checkout's modules on its first run, which the
  // many-module mr run would pay and the two-module single process hardly.
  await shell(mrScript(corpus.names, 2), dir);
  await shell(singleScript, dir);
  for (let i = 0; i < runs; i++) {
    // Alternate who goes first, so a slow phase of the host is shared.
    if (i % 2 === 0) {
      mr.push(await shell(mrScript(corpus.names, 2), dir));
      processes.push(await shell(mrScript(corpus.names, 2, ["--processes"]), dir));
      one.push(await shell(singleScript, dir));
    } else {
      one.push(await shell(singleScript, dir));
      processes.push(await shell(mrScript(corpus.names, 2, ["--processes"]), dir));
      mr.push(await shell(mrScript(corpus.names, 2), dir));
    }
    unix.push(await shell(shellScript, dir));
  }
  const words = await checkSame(dir, single);
  const ratios = mr.map((t, i) => one[i].wall / t.wall);
  console.log(
    `compare: ${words} distinct words; median of ${runs} rounds; speed-up = single wall / ` +
      `contender wall in the same round (median)`,
  );
  const row = (name: string, t: Timing[], speedup: string) => {
    const wall = median(t.map((x) => x.wall));
    return [
      name,
      fixed(wall),
      fixed(median(t.map((x) => x.cpu))),
      fixed(mb(corpus.bytes) / wall, 1),
      speedup,
    ];
  };
  printTable(["contender", "wall s", "CPU s", "MiB/s", "vs single"], [
    row("raftmr mr run --workers 2 (wc, 10 reduces)", mr, `${fixed(median(ratios))}x`),
    row(
      "  the same with --processes",
      processes,
      `${fixed(median(processes.map((t, i) => one[i].wall / t.wall)))}x`,
    ),
    row("one Deno process, same tokenizer, one Map", one, "1.00x"),
    row(
      "LC_ALL=C tr -cs A-Za-z '\\n' | sort | uniq -c",
      unix,
      `${fixed(median(unix.map((t, i) => one[i].wall / t.wall)))}x`,
    ),
  ]);
  console.log(
    `per-round mr speed-ups: ${ratios.map((r) => fixed(r)).join(", ")}; extra attempts ` +
      `(timeouts, backups): ${mr.map((t) => t.extraAttempts).join(", ")}\n`,
  );
}

async function speedup(
  dir: string,
  corpus: { names: string[]; bytes: number },
  runs: number,
): Promise<void> {
  const one: Timing[] = [];
  const two: Timing[] = [];
  for (let i = 0; i < runs; i++) {
    if (i % 2 === 0) {
      one.push(await shell(mrScript(corpus.names, 1), dir, true));
      two.push(await shell(mrScript(corpus.names, 2), dir, true));
    } else {
      two.push(await shell(mrScript(corpus.names, 2), dir, true));
      one.push(await shell(mrScript(corpus.names, 1), dir, true));
    }
  }
  const ratios = one.map((t, i) => t.wall / two[i].wall);
  console.log(`workers: ${fixed(mb(corpus.bytes), 1)} MiB, median of ${runs} rounds`);
  const row = (name: string, t: Timing[], speed: string) => {
    const wall = median(t.map((x) => x.wall));
    return [
      name,
      fixed(wall),
      fixed(median(t.map((x) => x.cpu))),
      fixed(mb(corpus.bytes) / wall, 1),
      fixed(mb(Math.max(...t.map((x) => x.peakRss ?? 0))), 0),
      speed,
    ];
  };
  printTable(["mr run", "wall s", "CPU s", "MiB/s", "peak RSS MiB (largest process)", "speed-up"], [
    row("--workers 1", one, "1.00x"),
    row("--workers 2", two, `${fixed(median(ratios))}x`),
  ]);
  console.log(
    `per-round speed-ups: ${ratios.map((r) => fixed(r)).join(", ")}; extra attempts ` +
      `(1 worker / 2 workers): ${
        one.map((t, i) => `${t.extraAttempts}/${two[i].extraAttempts}`).join(", ")
      }\n`,
  );
}

async function scaling(dir: string, sizes: number[]): Promise<void> {
  // Four distinct 8 MiB blocks of generated text, written round-robin into 16 MiB files.
  const blocks = [1, 2, 3, 4].map((seed) => generatedText(8 * MIB, seed));
  const rows: string[][] = [];
  let base: { perMb: number } | undefined;
  for (const sizeMb of sizes) {
    const sub = await Deno.makeTempDir({ dir, prefix: `scale-${sizeMb}-` });
    try {
      const corpus = await writeCorpus(sub, "gen", blocks, sizeMb * MIB, Math.ceil(sizeMb / 16));
      const t = await shell(mrScript(corpus.names, 2), sub, true);
      const perMb = t.wall / mb(corpus.bytes);
      base ??= { perMb };
      rows.push([
        `${fixed(mb(corpus.bytes), 0)} MiB (${corpus.names.length} files)`,
        fixed(t.wall),
        fixed(t.cpu),
        fixed(mb(corpus.bytes) / t.wall, 1),
        `${fixed(perMb / base.perMb)}x`,
        fixed(t.cpu / mb(corpus.bytes), 3),
        fixed(mb(t.peakRss ?? 0), 0),
        String(t.extraAttempts),
      ]);
    } finally {
      await Deno.remove(sub, { recursive: true });
    }
  }
  console.log("scale: generated text, mr run --workers 2 --reduce 10 (wc)");
  printTable(
    [
      "input",
      "wall s",
      "CPU s",
      "MiB/s",
      "wall per MiB vs first",
      "CPU s per MiB",
      "peak RSS MiB (largest process)",
      "extra attempts",
    ],
    rows,
  );
}
