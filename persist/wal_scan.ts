/**
 * Reading one WAL segment, pure (etcd splits the same way: decoder.go reads, repair.go repairs):
 * scanSegment walks a segment's bytes and says which records it holds, where they end, and what
 * damage follows them, measured so that a repair can say exactly what it drops. Whether damage
 * is a torn tail to repair or corruption to refuse is decided by persist/wal.ts, which also does
 * the repair.
 */
import { decodeRecord, isRecordType, RECORD_HEADER_BYTES, type WalRecord } from "./wal_record.ts";

/** A bad record in a segment, and what lies after it. */
export interface SegmentDamage {
  /** Byte offset of the first bad record. */
  offset: number;
  /** Why that record cannot be read (sentence case, e.g. "CRC mismatch"). */
  reason: string;
  /** Offset of the first valid record after the damage, or -1 when none: then it may be torn. */
  validAfter: number;
  /** Bytes from `offset` to the last non-zero byte: what truncating the tail drops. */
  bytes: number;
  /**
   * Records that start in those bytes, followed by their length fields (the last one may be cut
   * short, and one whose length field is unreadable counts once with all that follows it).
   */
  records: number;
}

/** What a segment holds. */
export interface SegmentScan {
  /** The valid records before any damage, in file order, with their offsets. */
  records: { offset: number; record: WalRecord }[];
  /** Bytes of valid records: where the next record goes (zeros or damage follow). */
  end: number;
  /** The first bad record and what follows it; undefined when the records end cleanly. */
  damage?: SegmentDamage;
}

/** Whether every byte of `buf` from `from` on is zero. */
function isZeroFrom(buf: Uint8Array, from: number): boolean {
  for (let i = from; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

/** Index just past the last non-zero byte of `buf` (0 when all zero). */
function endOfNonZero(buf: Uint8Array): number {
  let end = buf.length;
  while (end > 0 && buf[end - 1] === 0) end--;
  return end;
}

/** Whether any valid record starts after `from`: tells a torn tail from mid-file corruption. */
function validRecordAfter(buf: Uint8Array, view: DataView, from: number): number {
  for (let p = from; p + RECORD_HEADER_BYTES + 1 <= buf.length; p++) {
    const len = view.getUint32(p, true);
    // Cheap filters first: almost every misaligned position fails on length or type.
    if (len < 1 || p + RECORD_HEADER_BYTES + len > buf.length) continue;
    if (!isRecordType(buf[p + RECORD_HEADER_BYTES])) continue;
    if (typeof decodeRecord(buf, view, p) !== "string") return p;
  }
  return -1;
}

/** Records starting in [from, end), chained by their length fields. */
function countRecords(view: DataView, from: number, end: number): number {
  let n = 0;
  let p = from;
  while (p < end) {
    n++;
    if (end - p < 4) break; // Not even a whole length field.
    const len = view.getUint32(p, true);
    if (len < 1) break; // Nothing to follow: the rest belongs to this one.
    p += RECORD_HEADER_BYTES + len;
  }
  return n;
}

/**
 * Walks `buf`, a whole segment file, from its start. Zeros from a record boundary to the end are
 * preallocated space, not damage.
 */
export function scanSegment(buf: Uint8Array): SegmentScan {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const records: { offset: number; record: WalRecord }[] = [];
  let off = 0;
  while (off < buf.length) {
    if (buf[off] === 0 && isZeroFrom(buf, off)) break;
    const r = decodeRecord(buf, view, off);
    if (typeof r === "string") {
      const damagedEnd = endOfNonZero(buf);
      return {
        records,
        end: off,
        damage: {
          offset: off,
          reason: r,
          validAfter: validRecordAfter(buf, view, off + 1),
          bytes: damagedEnd - off,
          records: countRecords(view, off, damagedEnd),
        },
      };
    }
    records.push({ offset: off, record: r.record });
    off = r.end;
  }
  return { records, end: off };
}
