/**
 * The WAL's record format, pure: `[u32 length][u32 crc32c][u8 type][payload]` (little-endian;
 * `length` counts the type byte and the payload, the CRC covers the same bytes), encoded a
 * save() batch at a time and decoded one record at a time. persist/wal.ts writes and reads the
 * files; persist/wal_scan.ts walks a segment with decodeRecord.
 */
import type { Entry, HardState } from "../raft/types.ts";
import { crc32c } from "../util/crc32c.ts";

/** Record type: a batch of consecutive entries; `[f64 first index][u32 count]{[f64 term][u32 len][data]}`. */
export const REC_ENTRIES = 1;
/** Record type: the hard state; `[f64 term][f64 vote][f64 commit]`. */
export const REC_HARD_STATE = 2;
/**
 * Record type: an installed snapshot; `[f64 index][f64 term][f64 kept]`. The log after it holds
 * only the entries in (index, kept] that were already there (kept = index when none agreed).
 */
export const REC_SNAPSHOT = 3;

/** Bytes before a record's type byte: u32 length + u32 crc. */
export const RECORD_HEADER_BYTES = 8;

const ENTRY_OVERHEAD = 12; // f64 term + u32 data length
const MAX_RECORD = 0xffff_ff00;
/** `length` of the two fixed records (hard state, snapshot): the type byte and three f64. */
const FIXED_LENGTH = 25;
const FIXED_RECORD_BYTES = RECORD_HEADER_BYTES + FIXED_LENGTH;

/** A decoded record, as handed to the replay callback. */
export type WalRecord =
  | { type: typeof REC_ENTRIES; first: number; entries: Entry[] }
  | { type: typeof REC_HARD_STATE; hardState: HardState }
  | { type: typeof REC_SNAPSHOT; index: number; term: number; kept: number };

function hasRoom(n: number): void {
  if (n > MAX_RECORD) throw new RangeError(`WAL record too large: ${n} bytes`);
}

/** Writes the CRC of the record at `start`, which ends at `end`. */
function seal(buf: Uint8Array, view: DataView, start: number, end: number): void {
  view.setUint32(start + 4, crc32c(buf, 0, start + RECORD_HEADER_BYTES, end), true);
}

/** Encodes a fixed record (hard state or snapshot: a type and three f64) at `off`; returns its end. */
function encodeFixed(
  buf: Uint8Array,
  view: DataView,
  off: number,
  type: typeof REC_HARD_STATE | typeof REC_SNAPSHOT,
  values: readonly [number, number, number],
): number {
  view.setUint32(off, FIXED_LENGTH, true);
  buf[off + RECORD_HEADER_BYTES] = type;
  for (let i = 0; i < 3; i++) view.setFloat64(off + 9 + 8 * i, values[i], true);
  const end = off + FIXED_RECORD_BYTES;
  seal(buf, view, off, end);
  return end;
}

/** Decodes the three f64 of a fixed record whose payload starts at `p`, or undefined when any is not an index. */
function decodeFixed(view: DataView, p: number): [number, number, number] | undefined {
  const values: [number, number, number] = [
    view.getFloat64(p, true),
    view.getFloat64(p + 8, true),
    view.getFloat64(p + 16, true),
  ];
  return values.every(isIndex) ? values : undefined;
}

/**
 * Encodes one save() batch into a single buffer, records in the order recovery must apply them:
 * snapshot marker, entries, hard state. `entries` must be consecutive (the caller checks).
 */
export function encodeBatch(
  hardState: HardState | undefined,
  entries: readonly Entry[],
  snapshot?: { index: number; term: number; kept: number },
): Uint8Array {
  let size = 0;
  if (snapshot) size += FIXED_RECORD_BYTES;
  let entriesLen = 0;
  if (entries.length > 0) {
    entriesLen = 1 + 12;
    for (let i = 0; i < entries.length; i++) entriesLen += ENTRY_OVERHEAD + entries[i].data.length;
    hasRoom(entriesLen);
    size += RECORD_HEADER_BYTES + entriesLen;
  }
  if (hardState) size += FIXED_RECORD_BYTES;
  const buf = new Uint8Array(size);
  const view = new DataView(buf.buffer);
  let off = 0;
  if (snapshot) {
    off = encodeFixed(buf, view, off, REC_SNAPSHOT, [snapshot.index, snapshot.term, snapshot.kept]);
  }
  if (entries.length > 0) {
    const start = off;
    view.setUint32(off, entriesLen, true);
    buf[off + 8] = REC_ENTRIES;
    view.setFloat64(off + 9, entries[0].index, true);
    view.setUint32(off + 17, entries.length, true);
    off += 21;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      view.setFloat64(off, e.term, true);
      view.setUint32(off + 8, e.data.length, true);
      buf.set(e.data, off + 12);
      off += ENTRY_OVERHEAD + e.data.length;
    }
    seal(buf, view, start, off);
  }
  if (hardState) {
    off = encodeFixed(buf, view, off, REC_HARD_STATE, [
      hardState.term,
      hardState.vote,
      hardState.commit,
    ]);
  }
  return buf;
}

function isIndex(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

/** Whether `type` is a record type this version writes. */
export function isRecordType(type: number): boolean {
  return type === REC_ENTRIES || type === REC_HARD_STATE || type === REC_SNAPSHOT;
}

/**
 * Decodes the record at `off` if it is whole and valid, else returns a reason string. Data is
 * copied out so that the segment buffer can be collected while entries live on.
 */
export function decodeRecord(
  buf: Uint8Array,
  view: DataView,
  off: number,
): { record: WalRecord; end: number } | string {
  if (buf.length - off < RECORD_HEADER_BYTES + 1) return "truncated record header";
  const len = view.getUint32(off, true);
  if (len < 1) return "zero record length";
  const end = off + RECORD_HEADER_BYTES + len;
  if (end > buf.length) return `record length ${len} past end of file`;
  const crc = view.getUint32(off + 4, true);
  if (crc32c(buf, 0, off + 8, end) !== crc) return "CRC mismatch";
  const type = buf[off + 8];
  const p = off + 9;
  switch (type) {
    case REC_ENTRIES: {
      if (len < 13) return "short entries record";
      const first = view.getFloat64(p, true);
      const count = view.getUint32(p + 8, true);
      if (!isIndex(first) || first < 1) return "bad entry index";
      if (count > (len - 13) / ENTRY_OVERHEAD) return "bad entry count";
      const entries: Entry[] = new Array(count);
      let q = p + 12;
      for (let i = 0; i < count; i++) {
        if (q + ENTRY_OVERHEAD > end) return "entries record overrun";
        const term = view.getFloat64(q, true);
        const n = view.getUint32(q + 8, true);
        if (!isIndex(term) || q + ENTRY_OVERHEAD + n > end) return "bad entry";
        entries[i] = { index: first + i, term, data: buf.slice(q + 12, q + 12 + n) };
        q += ENTRY_OVERHEAD + n;
      }
      if (q !== end) return "entries record has trailing bytes";
      return { record: { type, first, entries }, end };
    }
    case REC_HARD_STATE: {
      if (len !== FIXED_LENGTH) return "bad hard state record length";
      const values = decodeFixed(view, p);
      if (values === undefined) return "bad hard state";
      const [term, vote, commit] = values;
      return { record: { type, hardState: { term, vote, commit } }, end };
    }
    case REC_SNAPSHOT: {
      if (len !== FIXED_LENGTH) return "bad snapshot record length";
      const values = decodeFixed(view, p);
      if (values === undefined || values[2] < values[0]) return "bad snapshot record";
      const [index, term, kept] = values;
      return { record: { type, index, term, kept }, end };
    }
    default:
      return `unknown record type ${type}`;
  }
}
