/**
 * InstallSnapshot in chunks (Raft §7): the leader's side cuts a snapshot into pieces of at most
 * `snapshotChunkBytes` and tracks what the follower confirmed; the follower's side reassembles
 * the pieces in order and checks length and CRC-32C before anything is installed. etcd leaves
 * this to its transport; here it rides in Raft messages so a slow follower resumes where it was.
 */
import { crc32c } from "../util/crc32c.ts";
import type { ConfState, Snapshot, SnapshotMessage } from "./types.ts";

/** An InstallSnapshot transfer the leader is running for one follower. */
export interface SnapshotTransfer {
  snapshot: Snapshot;
  crc: number;
  /** Next byte to send. */
  offset: number;
  /** Bytes the follower confirmed. */
  acked: number;
  /** Heartbeat rounds without progress; the chunk is resent after a few. */
  stall: number;
}

// One snapshot is usually sent to several followers: checksum its data once.
const crcCache = new WeakMap<Uint8Array, number>();

function cachedCrc(data: Uint8Array): number {
  let c = crcCache.get(data);
  if (c === undefined) {
    c = crc32c(data);
    crcCache.set(data, c);
  }
  return c;
}

/** Starts a transfer of `snapshot` from its first byte. */
export function startTransfer(snapshot: Snapshot): SnapshotTransfer {
  return { snapshot, crc: cachedCrc(snapshot.data), offset: 0, acked: 0, stall: 0 };
}

/** The chunk-specific fields of a "snap" message (the caller adds type, from, to and term). */
export type SnapshotChunk = Omit<SnapshotMessage, "type" | "from" | "to" | "term">;

/** Cuts the next chunk (at most `chunkBytes`) at the transfer's offset and moves past it. */
export function nextChunk(t: SnapshotTransfer, chunkBytes: number): SnapshotChunk {
  const data = t.snapshot.data;
  const end = Math.min(data.length, t.offset + chunkBytes);
  const chunk: SnapshotChunk = {
    index: t.snapshot.meta.index,
    logTerm: t.snapshot.meta.term,
    peers: t.snapshot.meta.conf.peers.slice(),
    conf: t.snapshot.meta.conf,
    offset: t.offset,
    total: data.length,
    crc: t.crc,
    data: data.subarray(t.offset, end),
    done: end === data.length,
  };
  t.offset = end;
  return chunk;
}

/**
 * What a follower does with one chunk: acknowledge the bytes it holds now, reject it (asking the
 * leader to resume from `offset`, 0 = start over), or install the verified whole snapshot.
 */
export type ChunkOutcome =
  | { kind: "ack"; offset: number }
  | { kind: "reject"; offset: number }
  | { kind: "complete"; snapshot: Snapshot };

/** A snapshot being reassembled from chunks on a follower. */
interface Incoming {
  index: number;
  term: number;
  conf: ConfState;
  total: number;
  crc: number;
  chunks: Uint8Array[];
  received: number;
}

/** The follower's side: reassembles one transfer at a time and never yields a damaged snapshot. */
export class SnapshotAssembler {
  #incoming: Incoming | undefined;

  /** Drops a partial transfer (the log already covers it, or it was superseded). */
  reset(): void {
    this.#incoming = undefined;
  }

  /** Takes one chunk; says what to answer or hands back the complete, verified snapshot. */
  accept(m: SnapshotMessage): ChunkOutcome {
    let inc = this.#incoming;
    const same = inc !== undefined && inc.index === m.index && inc.term === m.logTerm &&
      inc.crc === m.crc && inc.total === m.total;
    if (m.offset === 0) {
      inc = this.#incoming = {
        index: m.index,
        term: m.logTerm,
        conf: m.conf ?? { peers: m.peers.slice() },
        total: m.total,
        crc: m.crc,
        chunks: [],
        received: 0,
      };
    } else if (!same || inc === undefined || inc.received !== m.offset) {
      // Out of order, duplicate, or from a transfer we lost (restart): say where we are.
      return { kind: "reject", offset: same && inc ? inc.received : 0 };
    }
    inc.chunks.push(m.data);
    inc.received += m.data.length;
    if (!m.done) return { kind: "ack", offset: inc.received };
    this.#incoming = undefined;
    const data = new Uint8Array(inc.received);
    let off = 0;
    for (const c of inc.chunks) {
      data.set(c, off);
      off += c.length;
    }
    // Never install a damaged snapshot: make the leader start over.
    if (inc.received !== inc.total || crc32c(data) !== inc.crc) {
      return { kind: "reject", offset: 0 };
    }
    return {
      kind: "complete",
      snapshot: { meta: { index: inc.index, term: inc.term, conf: inc.conf }, data },
    };
  }
}
