/**
 * The write-ahead log: an ordered sequence of segment files `wal/<16-hex seq>.wal`, each a run of
 * records `[u32 length][u32 crc32c][u8 type][payload]` (little-endian; `length` counts the type
 * byte and the payload, the CRC covers the same bytes). Records are appended, never rewritten; a
 * conflict truncation is a later entries record that starts at a lower index. This module only
 * writes, syncs, replays and deletes segments (the record format is persist/wal_record.ts, reading
 * a segment persist/wal_scan.ts); DiskStorage decides what goes in them and serialises the calls.
 *
 * Segments are preallocated: zeros are written (and synced) ahead of the records in the
 * background, so that a record write overwrites allocated blocks and its fdatasync flushes data
 * only. An append that grows the file also has to commit the new size through the filesystem's
 * journal, which on ext4 made each sync 10-40% slower (three processes syncing at once, p50:
 * 0.75-1.0 ms against 0.5-0.65 ms in one hour, 0.42-0.49 against 0.34-0.44 ms in another).
 * A zero record header followed only by zeros is therefore the end of a segment's records, not
 * damage.
 */
import { join } from "node:path";
import type { HardState } from "../raft/types.ts";
import { fsyncDir } from "./atomic_file.ts";
import { encodeBatch, REC_ENTRIES, REC_SNAPSHOT, type WalRecord } from "./wal_record.ts";
import { scanSegment, type SegmentDamage } from "./wal_scan.ts";

/** Thrown when the WAL cannot be trusted: a bad record that is not a torn tail, or a gap. */
export class WalCorruptionError extends Error {
  /** File name of the damaged segment. */
  readonly file: string;
  /** Byte offset of the first bad record in that file. */
  readonly offset: number;
  constructor(file: string, offset: number, reason: string, detail = "") {
    super(`Cannot open WAL segment ${file}: ${reason} at offset ${offset}${detail}`);
    this.name = "WalCorruptionError";
    this.file = file;
    this.offset = offset;
  }
}

/** Default target size of a segment before the next write starts a new one. */
export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;

/** Default size of each run of zeros written ahead of the records (see the module comment). */
export const DEFAULT_PREALLOCATE_BYTES = 4 * 1024 * 1024;

const ZERO_CHUNK = new Uint8Array(256 * 1024);

/**
 * Writes `n` zeros at `file`'s position (its end, in append mode), stopping early once `stop()`
 * says so, then fdatasyncs it.
 */
async function writeZeros(file: Deno.FsFile, n: number, stop = () => false): Promise<void> {
  let left = n;
  while (left > 0 && !stop()) {
    left -= await file.write(ZERO_CHUNK.subarray(0, Math.min(left, ZERO_CHUNK.length)));
  }
  await file.syncData();
}

/** Name of segment `seq`. */
export function segmentName(seq: number): string {
  return `${seq.toString(16).padStart(16, "0")}.wal`;
}

const SEGMENT_RE = /^([0-9a-f]{16})\.wal$/;

/** The segment files of `dir` in order; throws WalCorruptionError when one is missing between. */
async function listSegments(dir: string): Promise<{ seq: number; name: string }[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && SEGMENT_RE.test(e.name)) names.push(e.name);
  }
  names.sort();
  const segments = names.map((name) => ({ seq: parseInt(SEGMENT_RE.exec(name)![1], 16), name }));
  for (let i = 1; i < segments.length; i++) {
    if (segments[i].seq !== segments[i - 1].seq + 1) {
      throw new WalCorruptionError(
        segments[i].name,
        0,
        `segment ${segmentName(segments[i - 1].seq + 1)} is missing`,
      );
    }
  }
  return segments;
}

/**
 * Throws WalCorruptionError unless `damage` in segment `name` can be a torn tail: the last
 * write, cut short by a crash, in the last segment, with no valid record after it.
 */
function refuseUnlessTornTail(name: string, damage: SegmentDamage, isLast: boolean): void {
  if (!isLast) throw new WalCorruptionError(name, damage.offset, damage.reason);
  // Valid records after the damage mean it is not a torn tail. It may still be a last write
  // whose later pages reached the disk before its earlier ones in a power cut, but it may as
  // well be synced records hit by corruption: guessing "torn" would drop acknowledged entries
  // or a vote without a word, so the node refuses to start.
  if (damage.validAfter >= 0) {
    throw new WalCorruptionError(
      name,
      damage.offset,
      damage.reason,
      ` (valid records follow at ${damage.validAfter}: corruption, not a torn write; ` +
        "refusing to start)",
    );
  }
}

/**
 * Repairs a torn tail: zeroes the damaged bytes (rather than cutting them off, so the file keeps
 * its preallocated space), syncs, and logs the file, the offset and exactly what was dropped.
 */
async function repairTornTail(
  path: string,
  damage: SegmentDamage,
  recordsKept: number,
  log: (line: string) => void,
): Promise<void> {
  const f = await Deno.open(path, { write: true });
  try {
    await f.seek(damage.offset, Deno.SeekMode.Start);
    await writeZeros(f, damage.bytes);
  } finally {
    f.close();
  }
  log(
    `WAL ${path}: repaired a torn tail at offset ${damage.offset}: dropped ${damage.bytes} ` +
      `bytes in ${plural(damage.records, "record")} (the first: ${damage.reason}) after ` +
      `${plural(recordsKept, "valid record")}`,
  );
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

interface Segment {
  seq: number;
  name: string;
  /** Bytes of records: the write position. */
  bytes: number;
  /** Size of the file: records plus the preallocated zeros after them. */
  allocated: number;
  /** Highest entry (or snapshot) index any record in it mentions: deletable once covered. */
  maxIndex: number;
}

/** Options for Wal.open. */
export interface WalOptions {
  segmentBytes?: number;
  /** Zeros written ahead of the records at a time; 0 turns preallocation off. */
  preallocateBytes?: number;
  log?: (line: string) => void;
  onSync?: (ms: number) => void;
}

/**
 * Writer over the segment files of one directory. Not re-entrant: the caller issues one write()
 * or deleteCovered() at a time (DiskStorage's queue does).
 */
export class Wal {
  #dir: string;
  #segments: Segment[];
  #file: Deno.FsFile;
  #segmentBytes: number;
  #preallocateBytes: number;
  /** The run of zeros being written ahead of the records, if any. */
  #preallocating: Promise<void> | undefined;
  #onSync: (ms: number) => void;
  #log: (line: string) => void;
  #hardState: HardState;
  #closed = false;

  private constructor(
    dir: string,
    segments: Segment[],
    file: Deno.FsFile,
    opts: WalOptions,
    hardState: HardState,
  ) {
    this.#dir = dir;
    this.#segments = segments;
    this.#file = file;
    this.#segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.#preallocateBytes = Math.min(
      opts.preallocateBytes ?? DEFAULT_PREALLOCATE_BYTES,
      this.#segmentBytes,
    );
    this.#onSync = opts.onSync ?? (() => {});
    this.#log = opts.log ?? ((line: string) => console.error(line));
    this.#hardState = hardState;
    this.#maybePreallocate();
  }

  /**
   * Opens (creating if needed) the WAL in `dir`, replays every record in order through `apply`
   * (which returns a reason when the record cannot follow the ones before it), repairs a torn
   * tail of the last segment (logging the file, the offset and exactly what was dropped) and
   * returns a writer positioned at the end. Throws WalCorruptionError for any other damage,
   * naming the file and offset.
   */
  static async open(
    dir: string,
    apply: (record: WalRecord) => string | undefined,
    opts: WalOptions = {},
  ): Promise<Wal> {
    const log = opts.log ?? ((line: string) => console.error(line));
    await Deno.mkdir(dir, { recursive: true });
    const names = await listSegments(dir);
    const segments: Segment[] = [];
    let hardState: HardState = { term: 0, vote: 0, commit: 0 };
    for (const [i, { seq, name }] of names.entries()) {
      const path = join(dir, name);
      const buf = await Deno.readFile(path);
      const scan = scanSegment(buf);
      const seg: Segment = { seq, name, bytes: scan.end, allocated: buf.length, maxIndex: 0 };
      for (const { offset, record } of scan.records) {
        const problem = apply(record);
        if (problem !== undefined) throw new WalCorruptionError(name, offset, problem);
        if (record.type === REC_ENTRIES) {
          seg.maxIndex = Math.max(seg.maxIndex, record.first + record.entries.length - 1);
        } else if (record.type === REC_SNAPSHOT) {
          seg.maxIndex = Math.max(seg.maxIndex, record.index);
        } else {
          hardState = record.hardState;
        }
      }
      if (scan.damage) {
        refuseUnlessTornTail(name, scan.damage, i === names.length - 1);
        await repairTornTail(path, scan.damage, scan.records.length, log);
      }
      segments.push(seg);
    }
    let created = false;
    if (segments.length === 0) {
      segments.push({ seq: 0, name: segmentName(0), bytes: 0, allocated: 0, maxIndex: 0 });
      created = true;
    }
    const active = segments[segments.length - 1];
    // Not in append mode: records go at the end of the records, before any preallocated zeros.
    const file = await Deno.open(join(dir, active.name), { write: true, create: true });
    await file.seek(active.bytes, Deno.SeekMode.Start);
    if (created) await fsyncDir(dir);
    return new Wal(dir, segments, file, opts, hardState);
  }

  /** Total bytes of records in all segments. */
  bytes(): number {
    let n = 0;
    for (const s of this.#segments) n += s.bytes;
    return n;
  }

  /** Total size of the segment files: records plus preallocated zeros. */
  allocatedBytes(): number {
    let n = 0;
    for (const s of this.#segments) n += Math.max(s.bytes, s.allocated);
    return n;
  }

  /** Number of segment files. */
  segmentCount(): number {
    return this.#segments.length;
  }

  /**
   * Appends `bufs` (encoded batches) with one write and one fdatasync, starting a new segment
   * first if the active one reached its target size. `hardState` is the hard state in effect
   * after these records and `maxIndex` the highest index they mention. Durable on resolve.
   */
  async write(bufs: Uint8Array[], hardState: HardState, maxIndex: number): Promise<void> {
    if (this.#closed) throw new Error("Cannot write WAL: closed");
    let active = this.#segments[this.#segments.length - 1];
    let header: Uint8Array | undefined;
    if (active.bytes >= this.#segmentBytes) {
      // Every segment opens with the hard state as of its start, so deleting older segments
      // never loses the current term and vote.
      header = encodeBatch(this.#hardState, []);
      const seg: Segment = {
        seq: active.seq + 1,
        name: segmentName(active.seq + 1),
        bytes: 0,
        allocated: 0,
        maxIndex: 0,
      };
      const file = await Deno.open(join(this.#dir, seg.name), { write: true, create: true });
      this.#file.close();
      this.#file = file;
      this.#segments.push(seg);
      await fsyncDir(this.#dir);
      active = seg;
    }
    let buf: Uint8Array;
    if (!header && bufs.length === 1) {
      buf = bufs[0];
    } else {
      let n = header ? header.length : 0;
      for (const b of bufs) n += b.length;
      buf = new Uint8Array(n);
      let off = 0;
      if (header) {
        buf.set(header);
        off = header.length;
      }
      for (const b of bufs) {
        buf.set(b, off);
        off += b.length;
      }
    }
    // The write only copies into the page cache (microseconds): doing it on this thread saves
    // a round trip through the runtime's blocking pool. The fdatasync is what takes time.
    let off = 0;
    while (off < buf.length) off += this.#file.writeSync(buf.subarray(off));
    const t0 = performance.now();
    await this.#file.syncData();
    this.#onSync(performance.now() - t0);
    active.bytes += buf.length;
    if (active.bytes > active.allocated) active.allocated = active.bytes;
    if (maxIndex > active.maxIndex) active.maxIndex = maxIndex;
    this.#hardState = hardState;
    this.#maybePreallocate();
  }

  /**
   * Starts writing the next run of zeros after the active segment's records when less than half
   * a run is left and the segment has not reached its target size. The zeros go through a
   * second descriptor in append mode, so they land after whatever the records have reached.
   */
  #maybePreallocate(): void {
    if (this.#preallocating || this.#closed || this.#preallocateBytes <= 0) return;
    const active = this.#segments[this.#segments.length - 1];
    if (active.allocated >= this.#segmentBytes) return;
    if (active.allocated - active.bytes >= this.#preallocateBytes / 2) return;
    const run = Math.min(this.#preallocateBytes, this.#segmentBytes - active.allocated);
    const path = join(this.#dir, active.name);
    this.#preallocating = (async () => {
      const file = await Deno.open(path, { write: true, append: true });
      try {
        await writeZeros(file, run, () => this.#closed);
        active.allocated = Math.max(active.allocated, (await file.stat()).size);
      } finally {
        file.close();
      }
    })().then(
      () => {
        this.#preallocating = undefined;
        this.#maybePreallocate();
      },
      (err) => {
        // Records still go out, each sync just costs more: say so once and stop trying.
        this.#preallocating = undefined;
        this.#preallocateBytes = 0;
        this.#log(`WAL ${path}: preallocation stopped: ${err?.message ?? err}`);
      },
    );
  }

  /**
   * Deletes the oldest segments whose every record is at or below `index` (never the active
   * one), then fsyncs the directory. Returns how many were deleted.
   */
  async deleteCovered(index: number): Promise<number> {
    const doomed: Segment[] = [];
    while (this.#segments.length > 1 && this.#segments[0].maxIndex <= index) {
      doomed.push(this.#segments.shift()!);
    }
    if (doomed.length === 0) return 0;
    for (const s of doomed) await Deno.remove(join(this.#dir, s.name));
    await fsyncDir(this.#dir);
    return doomed.length;
  }

  /** Closes the active segment once preallocation in progress stops; no call is valid after. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#preallocating;
    this.#file.close();
  }
}
