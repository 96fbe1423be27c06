/**
 * The network side of the MapReduce benchmark (`deno task bench mr --only splits,shuffle`):
 *
 * - splits: one 64 MiB file through `raftmr mr run --workers 2`, with the coordinator's default
 *   split size (64 MiB: one map task) and with 8 MiB splits (eight map tasks the two workers share).
 * - shuffle: a worker's data server handing one partition file to a reducer over loopback HTTP,
 *   the reducer writing it to disk while checking its length and CRC-32C (the shuffle's per-byte
 *   path), against the CRC-32C alone and a plain local file copy.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { printTable } from "./table.ts";
import { mapAttemptDir, partitionFileName, startShuffleServer } from "../mr/shuffle_server.ts";
import { fetchToFile, fileChecksum } from "../mr/transfer.ts";
import { partitionPath } from "../mr/protocol.ts";
import { crc32c } from "../util/crc32c.ts";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const MAIN = join(REPO, "main.ts");
const WC = join(REPO, "mr", "apps", "wc.ts");
const MIB = 1024 * 1024;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function timeMrRun(dir: string, file: string, splitSize?: string): Promise<number> {
  const args = ["run", "-A", MAIN, "mr", "run", "--app", WC, "--workers", "2", "--reduce", "10"];
  if (splitSize) args.push("--split-size", splitSize);
  const start = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...args, file],
    cwd: dir,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`mr run failed: ${new TextDecoder().decode(out.stderr)}`);
  return (performance.now() - start) / 1000;
}

/** One 64 MiB file with 64 MiB splits (the default) and with 8 MiB splits; prints a table. */
export async function splitsBench(
  dir: string,
  runs: number,
  text: (bytes: number) => Uint8Array,
): Promise<void> {
  const file = join(dir, "one-64mib.txt");
  await Deno.writeFile(file, text(64 * MIB).subarray(0, 64 * MIB));
  const bytes = (await Deno.stat(file)).size;
  const whole: number[] = [];
  const eight: number[] = [];
  for (let i = 0; i < runs; i++) {
    // Alternate the order, so a slow phase of the host is shared.
    if (i % 2 === 0) {
      // Explicitly 64 MiB: without --split-size, mr run now picks splits for its workers.
      whole.push(await timeMrRun(dir, file, "64MiB"));
      eight.push(await timeMrRun(dir, file, "8MiB"));
    } else {
      eight.push(await timeMrRun(dir, file, "8MiB"));
      whole.push(await timeMrRun(dir, file, "64MiB"));
    }
  }
  const ratios = whole.map((w, i) => w / eight[i]);
  console.log(
    `splits: one ${(bytes / MIB).toFixed(0)} MiB file, mr run --workers 2 --reduce 10 (wc), ` +
      `median of ${runs}; speed-up = default wall / 8 MiB wall in the same round`,
  );
  const row = (name: string, t: number[], speed: string) => [
    name,
    median(t).toFixed(2),
    (bytes / MIB / median(t)).toFixed(1),
    speed,
  ];
  printTable(["split size", "wall s", "MiB/s", "speed-up"], [
    row("default (64 MiB: 1 map task)", whole, "1.00x"),
    row("8 MiB (8 map tasks)", eight, `${median(ratios).toFixed(2)}x`),
  ]);
  console.log(`per-round speed-ups: ${ratios.map((r) => r.toFixed(2)).join(", ")}\n`);
}

/** Serves one partition of `sizeMb` MiB to a reducer `runs` times; prints MiB/s. */
export async function shuffleBench(dir: string, runs: number, sizeMb = 256): Promise<void> {
  const job = "0123456789abcdef";
  const token = "benchmark-token-0123456789";
  const dataDir = join(dir, "shuffle-data");
  const attemptDir = mapAttemptDir(dataDir, job, 0, 1);
  await Deno.mkdir(attemptDir, { recursive: true });
  const part = join(attemptDir, partitionFileName(0));
  // Incompressible-looking bytes, written in 1 MiB blocks.
  const block = new Uint8Array(MIB);
  let seed = 7;
  for (let i = 0; i < block.length; i++) {
    block[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
  }
  const file = await Deno.open(part, { write: true, create: true, truncate: true });
  for (let i = 0; i < sizeMb; i++) await file.write(block);
  file.close();
  const expect = await fileChecksum(part);
  const server = startShuffleServer({ hostname: "127.0.0.1", port: 0 }, dataDir, () => ({
    id: job,
    token,
  }));
  const url = `http://127.0.0.1:${server.addr.port}${partitionPath(job, 0, 1, 0)}`;
  const fetched: number[] = [];
  const copied: number[] = [];
  const crcOnly: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const target = join(dir, "fetched");
      let start = performance.now();
      await fetchToFile(url, token, target, expect);
      fetched.push((performance.now() - start) / 1000);
      await Deno.remove(target);
      start = performance.now();
      await Deno.copyFile(part, target);
      copied.push((performance.now() - start) / 1000);
      await Deno.remove(target);
      start = performance.now();
      let crc = 0;
      for (let b = 0; b < sizeMb; b++) crc = crc32c(block, crc);
      crcOnly.push((performance.now() - start) / 1000);
    }
  } finally {
    await server.shutdown();
  }
  const row = (name: string, t: number[]) => {
    const rate = sizeMb / median(t);
    return [
      name,
      median(t).toFixed(3),
      rate.toFixed(0),
      `${(rate / (sizeMb / median(fetched))).toFixed(2)}x`,
    ];
  };
  console.log(
    `shuffle: one ${sizeMb} MiB partition, median of ${runs}; ratio = rate / shuffle fetch rate`,
  );
  printTable(["path", "s", "MiB/s", "vs fetch"], [
    row("fetch over loopback HTTP + length/CRC-32C check + write", fetched),
    row("local file copy (no network, no check)", copied),
    row("CRC-32C alone (in memory)", crcOnly),
  ]);
  console.log("");
}
