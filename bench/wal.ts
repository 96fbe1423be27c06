/**
 * `deno task bench wal [--dir D] [--ms N]`: appends/s and MB/s of 100-byte entries through
 * DiskStorage.save at batch sizes 1, 16 and 256 (one fdatasync per save), next to a raw
 * write + fdatasync loop of the same bytes on the same disk, which is the physical limit; the two
 * alternate in short slices so that load from other processes hits both alike. A last
 * row has 32 concurrent single-entry writers to show group commit. Data goes to a temporary
 * directory on the normal disk (override with --dir), never tmpfs, or fsync would be free.
 */
import { parseArgs } from "node:util";
import { DiskStorage } from "../persist/disk_storage.ts";
import { encodeBatch } from "../persist/wal_record.ts";
import type { Entry } from "../raft/types.ts";
import { printTable } from "./table.ts";

const ENTRY_BYTES = 100;
const ROUNDS = 6;

interface Figures {
  appends: number; // entries per second
  mb: number; // payload MB per second
  syncMs: number; // median fdatasync duration
}

function payloads(n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => new Uint8Array(ENTRY_BYTES).fill(i & 0xff));
}

/** Entries per second through DiskStorage.save for `ms`; `syncs` collects fdatasync times. */
async function diskRound(
  s: DiskStorage,
  batch: number,
  writers: number,
  ms: number,
): Promise<number> {
  const data = payloads(256);
  let count = 0;
  const deadline = performance.now() + ms;
  const started = performance.now();
  await Promise.all(Array.from({ length: writers }, async () => {
    while (performance.now() < deadline) {
      const first = s.lastIndex() + 1;
      const entries: Entry[] = new Array(batch);
      for (let i = 0; i < batch; i++) {
        entries[i] = { index: first + i, term: 1, data: data[(first + i) & 255] };
      }
      await s.save({ term: 1, vote: 1, commit: first - 1 }, entries);
      count += batch;
    }
  }));
  return count / ((performance.now() - started) / 1000);
}

/** Entries per second writing the same bytes per batch with write + fdatasync, for `ms`. */
async function rawRound(
  file: Deno.FsFile,
  buf: Uint8Array,
  batch: number,
  ms: number,
  syncs: number[],
): Promise<number> {
  let count = 0;
  const deadline = performance.now() + ms;
  const started = performance.now();
  while (performance.now() < deadline) {
    let off = 0;
    while (off < buf.length) off += await file.write(buf.subarray(off));
    const t0 = performance.now();
    await file.syncData();
    syncs.push(performance.now() - t0);
    count += batch;
  }
  return count / ((performance.now() - started) / 1000);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Measures one workload: DiskStorage and the raw loop alternate in ROUNDS short slices on the
 * same disk, and each side reports its median slice, so a burst of load from other processes
 * hits both sides alike instead of skewing the ratio.
 */
async function measure(
  parent: string,
  batch: number,
  writers: number,
  ms: number,
): Promise<{ disk: Figures; raw: Figures }> {
  const dir = await Deno.makeTempDir({ dir: parent, prefix: ".bench-wal-" });
  const diskSyncs: number[] = [];
  const rawSyncs: number[] = [];
  const s = await DiskStorage.open(`${dir}/data`, { peers: [1], onSync: (t) => diskSyncs.push(t) });
  // The same bytes DiskStorage writes per save: entries record + hard state record.
  const sample = payloads(batch).map((data, i) => ({ index: i + 1, term: 1, data }));
  const buf = encodeBatch({ term: 1, vote: 1, commit: 0 }, sample);
  const file = await Deno.open(`${dir}/raw.dat`, { write: true, create: true, append: true });
  const disk: number[] = [];
  const raw: number[] = [];
  try {
    for (let r = 0; r < ROUNDS; r++) {
      raw.push(await rawRound(file, buf, batch, ms / ROUNDS, rawSyncs));
      disk.push(await diskRound(s, batch, writers, ms / ROUNDS));
    }
  } finally {
    file.close();
    await s.close();
    await Deno.remove(dir, { recursive: true });
  }
  const fig = (rates: number[], syncs: number[]): Figures => ({
    appends: median(rates),
    mb: (median(rates) * ENTRY_BYTES) / 1e6,
    syncMs: median(syncs),
  });
  return { disk: fig(disk, diskSyncs), raw: fig(raw, rawSyncs) };
}

/** Runs the benchmark and prints one table row per batch size. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { dir: { type: "string" }, ms: { type: "string" } },
    strict: true,
  });
  const ms = Number(values.ms ?? Deno.env.get("BENCH_MS") ?? 3000);
  if (!Number.isFinite(ms) || ms <= 0) throw new RangeError(`Invalid --ms: ${values.ms}`);
  const parent = values.dir ?? Deno.cwd();
  const rows: string[][] = [];
  const cases: { label: string; batch: number; writers: number }[] = [
    { label: "batch 1", batch: 1, writers: 1 },
    { label: "batch 16", batch: 16, writers: 1 },
    { label: "batch 256", batch: 256, writers: 1 },
    { label: "batch 1 x 32 writers", batch: 1, writers: 32 },
  ];
  for (const c of cases) {
    const { disk, raw } = await measure(parent, c.batch, c.writers, ms);
    rows.push([
      c.label,
      Math.round(disk.appends).toLocaleString("en-US"),
      disk.mb.toFixed(2),
      disk.syncMs.toFixed(3),
      Math.round(raw.appends).toLocaleString("en-US"),
      raw.mb.toFixed(2),
      raw.syncMs.toFixed(3),
      `${(disk.appends / raw.appends).toFixed(2)}x`,
    ]);
  }
  console.log(
    `100-byte entries, ${ms} ms per row in ${ROUNDS} alternating slices (medians), data under ${parent}`,
  );
  printTable(
    [
      "workload",
      "DiskStorage appends/s",
      "MB/s",
      "fsync ms",
      "raw write+fdatasync appends/s",
      "MB/s",
      "fsync ms",
      "ratio",
    ],
    rows,
  );
}
