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

/**
 * An in-memory DurableStorage: everything is "durable" as soon as save() returns. Used by tests,
 * the simulator, and anyone who wants a Raft group without disks. Like etcd's MemoryStorage it
 * keeps a dummy entry at the snapshot index so term(snapshotIndex) needs no special case.
 */
export class MemoryStorage implements DurableStorage {
  #hardState: HardState = { term: 0, vote: 0, commit: 0 };
  #snapshot: Snapshot;
  /** #ents[0] is the dummy entry at the snapshot index; real entries follow contiguously. */
  #ents: Entry[];
  #closed = false;

  /** Creates an empty log for a cluster of `peers` (the membership recorded in snapshots). */
  constructor(peers: number[] = []) {
    this.#snapshot = {
      meta: { index: 0, term: 0, conf: { peers: [...peers] } },
      data: new Uint8Array(0),
    };
    this.#ents = [{ index: 0, term: 0, data: new Uint8Array(0) }];
  }

  /** Hard state and membership as last saved. */
  initialState(): { hardState: HardState; conf: ConfState } {
    return {
      hardState: { ...this.#hardState },
      conf: structuredClone(this.#snapshot.meta.conf),
    };
  }

  /** Entries in [lo, hi), cut after maxBytes of data but always at least one. */
  entries(lo: number, hi: number, maxBytes = Infinity): Entry[] {
    const offset = this.#ents[0].index;
    if (lo <= offset) throw new CompactedError(lo, offset + 1);
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1, this.lastIndex());
    const out: Entry[] = [];
    let size = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.#ents[i - offset];
      size += e.data.length;
      if (out.length > 0 && size > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  /** Term of entry `index`, from the snapshot index to the last index. */
  term(index: number): number {
    const offset = this.#ents[0].index;
    if (index < offset) throw new CompactedError(index, offset + 1);
    if (index - offset >= this.#ents.length) throw new UnavailableError(index, this.lastIndex());
    return this.#ents[index - offset].term;
  }

  /** Snapshot index + 1. */
  firstIndex(): number {
    return this.#ents[0].index + 1;
  }

  /** Index of the last entry (the snapshot index when the log is empty). */
  lastIndex(): number {
    return this.#ents[0].index + this.#ents.length - 1;
  }

  /** The newest snapshot. */
  snapshot(): Snapshot {
    return this.#snapshot;
  }

  /** Applies snapshot, entries and hard state in that order; synchronous underneath. */
  save(hardState: HardState | undefined, entries: Entry[], snapshot?: Snapshot): Promise<void> {
    this.#check();
    if (snapshot && snapshot.meta.index > this.#ents[0].index) {
      this.#snapshot = snapshot;
      const { index, term } = snapshot.meta;
      // Keep any entries past the snapshot that agree with it (Raft §7); otherwise drop all.
      const offset = this.#ents[0].index;
      const keep = index <= this.lastIndex() && this.#ents[index - offset].term === term;
      const rest = keep ? this.#ents.slice(index - offset + 1) : [];
      this.#ents = [{ index, term, data: new Uint8Array(0) }, ...rest];
    }
    if (entries.length > 0) this.#append(entries);
    if (hardState) this.#hardState = { ...hardState };
    return Promise.resolve();
  }

  /** Replaces the snapshot with a newer local one and drops the entries it covers. */
  compact(snapshot: Snapshot): Promise<void> {
    this.#check();
    const offset = this.#ents[0].index;
    const index = snapshot.meta.index;
    if (index <= offset) return Promise.resolve();
    if (index > this.lastIndex()) {
      throw new UnavailableError(index, this.lastIndex());
    }
    this.#snapshot = snapshot;
    const rest = this.#ents.slice(index - offset + 1);
    this.#ents = [{ index, term: snapshot.meta.term, data: new Uint8Array(0) }, ...rest];
    return Promise.resolve();
  }

  /** Marks the storage closed. */
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  /** Bytes of entry data plus a 24-byte per-entry overhead: the size of the persisted log. */
  logBytes(): number {
    let size = 0;
    for (let i = 1; i < this.#ents.length; i++) size += this.#ents[i].data.length + 24;
    return size;
  }

  #append(entries: Entry[]): void {
    const offset = this.#ents[0].index;
    const first = entries[0].index;
    if (first + entries.length - 1 <= offset) return; // wholly covered by the snapshot
    if (first > this.lastIndex() + 1) {
      throw new RangeError(
        `Cannot append entry ${first}: log ends at ${this.lastIndex()}, leaving a gap`,
      );
    }
    const skip = Math.max(0, offset + 1 - first);
    const start = first + skip - offset;
    this.#ents.length = start; // truncates a conflicting suffix (or no-op when appending)
    for (let i = skip; i < entries.length; i++) this.#ents.push(entries[i]);
  }

  #check(): void {
    if (this.#closed) throw new Error("Cannot write to MemoryStorage: it is closed");
  }
}
