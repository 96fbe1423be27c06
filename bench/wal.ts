/**
 * `deno task bench wal [--dir D] [--ms N]`: appends/s and MB/s of 100-byte entries through
 * DiskStorage.save at batch sizes 1, 16 and 256 (one fdatasync per save), next to a raw
 * write + fdatasync loop of the same bytes on the same disk, which is the physical limit. A last
 * row has 32 concurrent single-entry writers to show group commit. Data goes to a temporary
 * directory on the normal disk (override with --dir), never tmpfs, or fsync would be free.
 */
import { parseArgs } from "node:util";
import { DiskStorage } from "../persist/disk_storage.ts";
import { encodeBatch } from "../persist/wal.ts";
import type { Entry } from "../raft/types.ts";
import { printTable } from "./table.ts";

const ENTRY_BYTES = 100;

interface Figures {
  appends: number; // entries per second
  mb: number; // payload MB per second
  syncMs: number; // mean fdatasync duration
}

function payloads(n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => new Uint8Array(ENTRY_BYTES).fill(i & 0xff));
}

async function diskStorage(
  dir: string,
  batch: number,
  writers: number,
  ms: number,
): Promise<Figures> {
  const syncs: number[] = [];
  const s = await DiskStorage.open(dir, { peers: [1], onSync: (t) => syncs.push(t) });
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
  const secs = (performance.now() - started) / 1000;
  await s.close();
  return {
    appends: count / secs,
    mb: (count * ENTRY_BYTES) / secs / 1e6,
    syncMs: syncs.reduce((a, b) => a + b, 0) / Math.max(1, syncs.length),
  };
}

async function rawLoop(dir: string, batch: number, ms: number): Promise<Figures> {
  // The same bytes DiskStorage writes per save: entries record + hard state record.
  const entries = payloads(batch).map((data, i) => ({ index: i + 1, term: 1, data }));
  const buf = encodeBatch({ term: 1, vote: 1, commit: 0 }, entries);
  const file = await Deno.open(`${dir}/raw.dat`, { write: true, create: true, append: true });
  let count = 0;
  let syncTotal = 0;
  let syncs = 0;
  const deadline = performance.now() + ms;
  const started = performance.now();
  while (performance.now() < deadline) {
    let off = 0;
    while (off < buf.length) off += await file.write(buf.subarray(off));
    const t0 = performance.now();
    await file.syncData();
    syncTotal += performance.now() - t0;
    syncs++;
    count += batch;
  }
  const secs = (performance.now() - started) / 1000;
  file.close();
  return {
    appends: count / secs,
    mb: (count * ENTRY_BYTES) / secs / 1e6,
    syncMs: syncTotal / Math.max(1, syncs),
  };
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
    const dir = await Deno.makeTempDir({ dir: parent, prefix: ".bench-wal-" });
    try {
      const raw = await rawLoop(dir, c.batch, ms);
      const disk = await diskStorage(`${dir}/data`, c.batch, c.writers, ms);
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
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
  console.log(`100-byte entries, ${ms} ms per row, data under ${parent}`);
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
