/**
 * The Storage contract the Raft core reads from, and the durable half the driver writes through.
 * Modelled on etcd's raft.Storage: the core only ever reads storage synchronously; everything it
 * has not yet seen persisted lives in its own unstable log until the driver's save() resolves.
 */
import type { ConfState, Entry, HardState, Snapshot } from "./types.ts";

/** Thrown by reads below firstIndex(): those entries now live only in the snapshot. */
export class CompactedError extends Error {
  constructor(index: number, firstIndex: number) {
    super(`Log entry ${index} is compacted: first available index is ${firstIndex}`);
    this.name = "CompactedError";
  }
}

/** Thrown by reads above lastIndex(). */
export class UnavailableError extends Error {
  constructor(index: number, lastIndex: number) {
    super(`Log entry ${index} is unavailable: last index is ${lastIndex}`);
    this.name = "UnavailableError";
  }
}

/** Synchronous read view of the persisted log, used by the consensus core. */
export interface Storage {
  /** Hard state and membership as last persisted. */
  initialState(): { hardState: HardState; conf: ConfState };
  /** Entries with index in [lo, hi), cut after maxBytes of data (always at least one). */
  entries(lo: number, hi: number, maxBytes?: number): Entry[];
  /** Term of entry `index`; valid from snapshot index (firstIndex() - 1) to lastIndex(). */
  term(index: number): number;
  /** Index of the first entry still in the log: snapshot index + 1. */
  firstIndex(): number;
  /** Index of the last persisted entry (the snapshot index when the log is empty). */
  lastIndex(): number;
  /** The newest snapshot (the empty snapshot when none was taken). */
  snapshot(): Snapshot;
}

/** Storage the driver writes to; every mutation is durable once its promise resolves. */
export interface DurableStorage extends Storage {
  /**
   * Persists, in this order and with one sync: an incoming snapshot (replacing the log it
   * covers), the entries (an entry at an existing index truncates the log from there), and the
   * hard state. Reads reflect the write as soon as the call returns; durability on resolve.
   */
  save(hardState: HardState | undefined, entries: Entry[], snapshot?: Snapshot): Promise<void>;
  /**
   * Stores a snapshot the local state machine made at `snapshot.meta.index` (≤ last applied)
   * and drops the log it covers. Durable on resolve.
   */
  compact(snapshot: Snapshot): Promise<void>;
  /** Releases files and handles; no call is valid afterwards. */
  close(): Promise<void>;
}
