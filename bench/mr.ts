/**
 * MapReduce word-count benchmark:
 * `deno task bench mr [--mb 60] [--workers 2] [--files 16] [--runs 3] [--keep]`.
 * Generates a corpus (the books in data/gutenberg repeated, else generated words), then times
 * `raftmr mr run` with the wc app against a single-process hash-map count in Deno and against
 * `LC_ALL=C tr -cs A-Za-z '\n' | sort | uniq -c`, all on the same files.
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import process from "node:process";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const BOOKS = ["/work/shared/data/gutenberg", join(REPO, "..", "shared", "data", "gutenberg")];

async function readBooks(): Promise<Uint8Array[]> {
  for (const dir of BOOKS) {
    try {
      const books: Uint8Array[] = [];
      for await (const entry of Deno.readDir(dir)) {
        if (entry.isFile && entry.name.endsWith(".txt")) {
          books.push(await Deno.readFile(join(dir, entry.name)));
        }
      }
      if (books.length > 0) return books;
    } catch {
      // Try the next place, then fall back to generated text.
    }
  }
  return [];
}

/** Deterministic filler text when no books are around: Zipf-ish words from a seeded PRNG. */
function generatedText(bytes: number): Uint8Array {
  let seed = 12345;
  const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const vocabulary = Array.from({ length: 20000 }, (_, i) => {
    let word = "";
    for (let n = i + 1; n > 0; n = Math.floor(n / 26)) word += String.fromCharCode(97 + (n % 26));
    return word;
  });
  const parts: string[] = [];
  let size = 0;
  while (size < bytes) {
    const word = vocabulary[Math.floor(vocabulary.length * rand() ** 3)];
    const sep = rand() < 0.1 ? ".\n" : " ";
    parts.push(word, sep);
    size += word.length + sep.length;
  }
  return new TextEncoder().encode(parts.join(""));
}

async function makeCorpus(dir: string, totalBytes: number, files: number): Promise<string[]> {
  let sources = await readBooks();
  if (sources.length === 0) sources = [generatedText(4 << 20)];
  const perFile = Math.ceil(totalBytes / files);
  const names: string[] = [];
  let next = 0;
  for (let i = 0; i < files; i++) {
    const chunks: Uint8Array[] = [];
    let size = 0;
    while (size < perFile) {
      const source = sources[next++ % sources.length];
      chunks.push(source);
      size += source.length;
    }
    const name = join(dir, `corpus-${String(i).padStart(2, "0")}.txt`);
    const file = await Deno.open(name, { write: true, create: true, truncate: true });
    for (const chunk of chunks) await file.write(chunk);
    file.close();
    names.push(name);
  }
  return names;
}

/** Wall and CPU seconds of one run. */
interface Timing {
  wall: number;
  cpu: number;
}

function bestOf(timings: Timing[]): Timing {
  return timings.reduce((best, t) => (t.wall < best.wall ? t : best));
}

function parseTimes(line: string): number {
  // bash `times` prints "0m1.234s 0m0.056s" (user, system).
  let total = 0;
  for (const [, minutes, seconds] of line.matchAll(/(\d+)m([\d.]+)s/g)) {
    total += Number(minutes) * 60 + Number(seconds);
  }
  return total;
}

/** Runs a shell command in `cwd`; CPU time is its children's user+system time (bash `times`). */
async function shell(script: string, cwd: string): Promise<Timing> {
  const start = performance.now();
  const out = await new Deno.Command("bash", {
    args: ["-c", `${script} >/dev/null\nstatus=$?\ntimes\nexit $status`],
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const wall = (performance.now() - start) / 1000;
  if (!out.success) {
    throw new Error(`${script} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  return { wall, cpu: parseTimes(lines[lines.length - 1]) };
}

function quote(arg: string): string {
  return `'${arg.replaceAll("'", "'\\''")}'`;
}

/** Runs the benchmark and prints a table of wall times. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      mb: { type: "string", default: "60" },
      workers: { type: "string", default: "2" },
      files: { type: "string", default: "16" },
      runs: { type: "string", default: "3" },
      keep: { type: "boolean", default: false },
    },
  });
  const mb = Number(values.mb);
  const workers = Number(values.workers);
  const fileCount = Number(values.files);
  const runs = Math.max(1, Number(values.runs));
  const dir = await Deno.makeTempDir({ prefix: "raftmr-bench-mr-" });
  try {
    const files = await makeCorpus(dir, mb * 1024 * 1024, fileCount);
    let bytes = 0;
    for (const file of files) bytes += (await Deno.stat(file)).size;
    console.log(
      `corpus: ${files.length} files, ${(bytes / 1024 / 1024).toFixed(1)} MiB in ${dir}; ` +
        `${navigator.hardwareConcurrency} CPUs`,
    );
    // Warm the page cache so the first contender does not pay for the disk.
    for (const file of files) await Deno.readFile(file);

    const wc = join(REPO, "mr", "apps", "wc.ts");
    const main = join(REPO, "main.ts");
    const mrScript = [Deno.execPath(), "run", "-A", main, "mr", "run", "--app", wc, "--workers"]
      .map(quote).join(" ") + ` ${workers} --reduce 10 ${files.map(quote).join(" ")}`;
    const shellScript = `cat ${files.map(quote).join(" ")} | LC_ALL=C tr -cs A-Za-z '\\n' | ` +
      "sort | uniq -c";
    const counts = new Map<string, number>();
    const inProcess = async (): Promise<Timing> => {
      counts.clear();
      const start = performance.now();
      const cpuStart = process.cpuUsage();
      const decoder = new TextDecoder();
      for (const file of files) {
        const text = decoder.decode(await Deno.readFile(file));
        for (const word of text.match(/\p{L}+/gu) ?? []) {
          counts.set(word, (counts.get(word) ?? 0) + 1);
        }
      }
      const cpu = process.cpuUsage(cpuStart);
      return { wall: (performance.now() - start) / 1000, cpu: (cpu.user + cpu.system) / 1e6 };
    };
    const mrRuns: Timing[] = [];
    const hashRuns: Timing[] = [];
    const shellRuns: Timing[] = [];
    for (let i = 0; i < runs; i++) {
      mrRuns.push(await shell(mrScript, dir));
      hashRuns.push(await inProcess());
      shellRuns.push(await shell(shellScript, dir));
    }

    // Sanity: the MR output must agree with the in-process count.
    let mrWords = 0;
    let mrTotal = 0;
    for (let r = 0; r < 10; r++) {
      const text = await Deno.readTextFile(join(dir, `mr-out-${r}`));
      for (const line of text.split("\n")) {
        if (line === "") continue;
        mrWords++;
        const value = Number(line.slice(line.lastIndexOf(" ") + 1));
        mrTotal += value;
        const key = line.slice(0, line.lastIndexOf(" "));
        if (counts.get(key) !== value) {
          throw new Error(`MR count of ${key} is ${value}, expected ${counts.get(key)}`);
        }
      }
    }
    if (mrWords !== counts.size) {
      throw new Error(`MR found ${mrWords} words, expected ${counts.size}`);
    }

    const mr = bestOf(mrRuns);
    const rows: [string, Timing][] = [
      [`raftmr mr run (wc, ${workers} workers, 10 reduces)`, mr],
      ["single-process Deno hash map (same regex)", bestOf(hashRuns)],
      ["LC_ALL=C tr -cs A-Za-z '\\n' | sort | uniq -c", bestOf(shellRuns)],
    ];
    console.log(`${mrWords} distinct words, ${mrTotal} words; best of ${runs} runs\n`);
    const width = Math.max(...rows.map(([name]) => name.length)) + 2;
    console.log(
      `${"contender".padEnd(width)}${"wall s".padStart(8)}${"wall/mr".padStart(9)}${
        "CPU s".padStart(8)
      }`,
    );
    for (const [name, t] of rows) {
      console.log(
        `${name.padEnd(width)}${t.wall.toFixed(2).padStart(8)}${
          (t.wall / mr.wall).toFixed(2).padStart(8)
        }x${t.cpu.toFixed(2).padStart(8)}`,
      );
    }
  } finally {
    if (!values.keep) await Deno.remove(dir, { recursive: true });
  }
}
