/**
 * DiskStorage: the durable Raft Storage of a peer, a data directory holding `wal/` (the
 * write-ahead log), `snap/` (snapshot files) and `LOCK`. The log after the snapshot point is
 * also kept in memory, because the consensus core reads storage synchronously.
 */
import { join } from "node:path";
import { CompactedError, type DurableStorage, UnavailableError } from "../raft/storage.ts";
import { type ConfState, type Entry, type HardState, type Snapshot } from "../raft/types.ts";
import { planSave, type SavePlan } from "./save_plan.ts";
import { SnapshotStore } from "./snapshot.ts";
import { Wal } from "./wal.ts";
import { encodeBatch } from "./wal_record.ts";
import { emptyReplayedLog, replayRecord } from "./log_replay.ts";

/** Options for DiskStorage.open. */
export interface DiskStorageOptions {
  /** Membership reported before any snapshot exists (a fresh node's configuration). */
  peers?: number[];
  /** Target WAL segment size in bytes (default 64 MiB). */
  segmentBytes?: number;
  /** Zeros the WAL writes ahead of its records at a time (default 4 MiB; 0 = none). */
  preallocateBytes?: number;
  /** Snapshot files to keep (default 2); the WAL is kept from the oldest of them on. */
  keepSnapshots?: number;
  /** Where recovery notes go (torn tail truncated, corrupt snapshot skipped); default stderr. */
  log?: (line: string) => void;
  /** Called with the duration of every WAL fdatasync, for a latency histogram. */
  onSync?: (ms: number) => void;
  /** Called after each snapshot file is written and synced, with the write's duration in ms. */
  onSnapshotSave?: (ms: number) => void;
}

type Job =
  | { kind: "wal"; buf: Uint8Array; hardState: HardState; maxIndex: number; done: Deferred }
  | { kind: "task"; run: () => Promise<void>; done: Deferred };

interface Deferred {
  resolve: () => void;
  reject: (err: unknown) => void;
}

function deferred(): { promise: Promise<void>; done: Deferred } {
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  return { promise, done: { resolve, reject } };
}

/**
 * Storage on disk. save() updates the in-memory view synchronously and resolves once the WAL
 * write is fdatasynced; saves that arrive while a write is in flight share the next write and
 * sync (group commit). A failed write or sync poisons the storage: every later call rejects,
 * because the log on disk no longer matches memory and the process must restart from disk.
 */
export class DiskStorage implements DurableStorage {
  #lockFile: Deno.FsFile;
  #wal: Wal;
  #snaps: SnapshotStore;
  #snap: Snapshot;
  #ents: Entry[]; // #ents[i].index === #snap.meta.index + 1 + i
  #hardState: HardState;
  /** A commit-only hard state change not yet in any WAL record (see save()). */
  #hardStateUnwritten = false;
  #queue: Job[] = [];
  #flushing: Promise<void> | undefined;
  #failed: unknown;
  #closed = false;

  private constructor(
    lockFile: Deno.FsFile,
    wal: Wal,
    snaps: SnapshotStore,
    snap: Snapshot,
    ents: Entry[],
    hardState: HardState,
  ) {
    this.#lockFile = lockFile;
    this.#wal = wal;
    this.#snaps = snaps;
    this.#snap = snap;
    this.#ents = ents;
    this.#hardState = hardState;
  }

  /**
   * Opens (creating) the data directory `dir`: takes its lock, loads the newest valid snapshot,
   * replays the WAL above it and deletes WAL segments the kept snapshots cover. Throws
   * WalCorruptionError if the log is damaged anywhere but a torn tail, and an Error if another
   * process holds the directory.
   */
  static async open(dir: string, options: DiskStorageOptions = {}): Promise<DiskStorage> {
    const log = options.log ?? ((line: string) => console.error(line));
    await Deno.mkdir(dir, { recursive: true });
    const lockFile = await Deno.open(join(dir, "LOCK"), { read: true, write: true, create: true });
    try {
      if (!(await lockFile.tryLock(true))) {
        throw new Error(`Cannot open data directory ${dir}: locked by another process`);
      }
      const snaps = await SnapshotStore.open(join(dir, "snap"), {
        keep: options.keepSnapshots,
        log,
        onSave: options.onSnapshotSave,
      });
      const snap: Snapshot = snaps.newest() ??
        {
          meta: { index: 0, term: 0, conf: { peers: [...(options.peers ?? [])] } },
          data: new Uint8Array(0),
        };
      const replayed = emptyReplayedLog(snap.meta.index);
      const wal = await Wal.open(join(dir, "wal"), (rec) => replayRecord(replayed, rec), {
        segmentBytes: options.segmentBytes,
        preallocateBytes: options.preallocateBytes,
        log,
        onSync: options.onSync,
      });
      const { base, ents } = replayed;
      let { hardState } = replayed;
      // Snapshot content is committed by definition; a hard state written before the snapshot
      // was installed may lag behind it.
      if (hardState.commit < base) hardState = { ...hardState, commit: base };
      const storage = new DiskStorage(lockFile, wal, snaps, snap, ents, hardState);
      await wal.deleteCovered(snaps.oldestIndex());
      return storage;
    } catch (err) {
      lockFile.close();
      throw err;
    }
  }

  /** Hard state and membership as last saved. */
  initialState(): { hardState: HardState; conf: ConfState } {
    return {
      hardState: { ...this.#hardState },
      conf: structuredClone(this.#snap.meta.conf),
    };
  }

  /** Entries with index in [lo, hi), cut after maxBytes of data (at least one). */
  entries(lo: number, hi: number, maxBytes = Infinity): Entry[] {
    const base = this.#snap.meta.index;
    if (lo <= base) throw new CompactedError(lo, base + 1);
    const last = base + this.#ents.length;
    if (hi > last + 1) throw new UnavailableError(hi - 1, last);
    if (lo > hi) throw new RangeError(`Invalid entry range: lo ${lo} > hi ${hi}`);
    const from = lo - base - 1;
    let to = hi - base - 1;
    if (maxBytes !== Infinity && to > from) {
      let size = this.#ents[from].data.length;
      let i = from + 1;
      while (i < to) {
        size += this.#ents[i].data.length;
        if (size > maxBytes) break;
        i++;
      }
      to = i;
    }
    return this.#ents.slice(from, to);
  }

  /** Term of entry `index`, from the snapshot index to lastIndex(). */
  term(index: number): number {
    const base = this.#snap.meta.index;
    if (index === base) return this.#snap.meta.term;
    if (index < base) throw new CompactedError(index, base + 1);
    const i = index - base - 1;
    if (i >= this.#ents.length) throw new UnavailableError(index, base + this.#ents.length);
    return this.#ents[i].term;
  }

  /** Snapshot index + 1. */
  firstIndex(): number {
    return this.#snap.meta.index + 1;
  }

  /** Index of the last entry (the snapshot index when the log is empty). */
  lastIndex(): number {
    return this.#snap.meta.index + this.#ents.length;
  }

  /** The newest snapshot, as installed or compacted to. */
  snapshot(): Snapshot {
    return this.#snap;
  }

  /** Bytes of records in the WAL segments (preallocated space not counted). */
  walBytes(): number {
    return this.#wal.bytes();
  }

  /** Size of the WAL files on disk: the records plus the zeros preallocated after them. */
  walAllocatedBytes(): number {
    return this.#wal.allocatedBytes();
  }

  /** Number of WAL segment files. */
  walSegments(): number {
    return this.#wal.segmentCount();
  }

  /** Number of snapshot files on disk. */
  snapshotCount(): number {
    return this.#snaps.count();
  }

  /**
   * Persists an incoming snapshot (dropping the log it covers, and all of it unless the log has
   * the snapshot's last entry with the same term; ignored if not newer than the current one),
   * the entries (an entry at an existing index truncates the log from there; entries at or
   * below the snapshot index are skipped) and the hard state, with one WAL write and one sync.
   * Reads reflect the call at once; durable on resolve.
   */
  save(hardState: HardState | undefined, entries: Entry[], snapshot?: Snapshot): Promise<void> {
    const bad = this.#check();
    if (bad) return Promise.reject(bad);
    let plan: SavePlan;
    try {
      plan = planSave(
        {
          snapIndex: this.#snap.meta.index,
          lastIndex: this.lastIndex(),
          term: (index) => this.term(index),
          hardState: this.#hardState,
          hardStateUnwritten: this.#hardStateUnwritten,
        },
        hardState,
        entries,
        snapshot,
      );
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#apply(plan);
  }

  /** Applies a save plan: memory first, synchronously, then the WAL record when one is due. */
  #apply(plan: SavePlan): Promise<void> {
    const { install, base, kept, append } = plan;
    if (install) {
      this.#ents = this.#ents.slice(base - this.#snap.meta.index, kept - this.#snap.meta.index);
      this.#snap = install;
    }
    if (append.length > 0) {
      this.#ents.length = append[0].index - base - 1;
      for (let i = 0; i < append.length; i++) this.#ents.push(append[i]);
    }
    this.#hardState = plan.hardState;
    this.#hardStateUnwritten = plan.hardStateUnwritten;
    if (!plan.sync) return Promise.resolve();
    const buf = encodeBatch(
      plan.recordHardState,
      append,
      install ? { index: install.meta.index, term: install.meta.term, kept } : undefined,
    );
    const hs = this.#hardState;
    const { promise, done } = deferred();
    if (install) {
      const snap = install;
      // The snapshot file must be durable before the WAL record that resets the log to it.
      this.#enqueue({
        kind: "task",
        done,
        run: async () => {
          await this.#snaps.save(snap);
          await this.#wal.write([buf], hs, plan.maxIndex);
          await this.#wal.deleteCovered(this.#snaps.oldestIndex());
        },
      });
    } else {
      this.#enqueue({ kind: "wal", buf, hardState: hs, maxIndex: plan.maxIndex, done });
    }
    return promise;
  }

  /**
   * Stores a snapshot the local state machine made at `snapshot.meta.index` (≤ lastIndex()),
   * drops the log it covers from memory, writes the snapshot file and deletes the WAL segments
   * that the kept snapshots cover. A snapshot not newer than the current one is ignored. Durable
   * on resolve.
   */
  compact(snapshot: Snapshot): Promise<void> {
    const bad = this.#check();
    if (bad) return Promise.reject(bad);
    const { index, term } = snapshot.meta;
    const base = this.#snap.meta.index;
    if (index <= base) return Promise.resolve();
    if (index > this.lastIndex()) {
      return Promise.reject(
        new RangeError(`Cannot compact to ${index}: last index is ${this.lastIndex()}`),
      );
    }
    const have = this.term(index);
    if (have !== term) {
      return Promise.reject(
        new RangeError(`Cannot compact to ${index}: snapshot term ${term} but entry term ${have}`),
      );
    }
    this.#ents = this.#ents.slice(index - base);
    this.#snap = snapshot;
    // The file write does not touch the WAL, so it runs beside WAL writes (a large snapshot
    // must not stall the log); only the segment deletion joins their queue, once it is durable.
    const { promise, done } = deferred();
    this.#snaps.save(snapshot).then(
      () =>
        this.#enqueue({
          kind: "task",
          done,
          run: async () => {
            await this.#wal.deleteCovered(this.#snaps.oldestIndex());
          },
        }),
      (err) => {
        this.#failed ??= err;
        done.reject(err);
      },
    );
    return promise;
  }

  /** Waits for queued writes, then releases the WAL, the snapshot store and the lock. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#hardStateUnwritten && this.#failed === undefined) {
      // A clean shutdown keeps the latest commit index, so a restart re-applies everything.
      this.#hardStateUnwritten = false;
      const { promise, done } = deferred();
      const buf = encodeBatch(this.#hardState, []);
      this.#enqueue({ kind: "wal", buf, hardState: this.#hardState, maxIndex: 0, done });
      await promise.catch(() => {});
    }
    this.#closed = true;
    // Snapshot writes first: a finished one queues its segment deletion behind the WAL writes.
    await this.#snaps.idle();
    while (this.#flushing) await this.#flushing;
    await this.#wal.close();
    this.#lockFile.close();
  }

  #check(): unknown {
    if (this.#closed) return new Error("Cannot use storage: closed");
    return this.#failed;
  }

  #enqueue(job: Job): void {
    this.#queue.push(job);
    this.#flushing ??= this.#flush();
  }

  async #flush(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        if (this.#failed !== undefined) {
          for (const job of this.#queue.splice(0)) job.done.reject(this.#failed);
          return;
        }
        const head = this.#queue[0];
        if (head.kind === "task") {
          this.#queue.shift();
          try {
            await head.run();
            head.done.resolve();
          } catch (err) {
            this.#failed = err;
            head.done.reject(err);
          }
          continue;
        }
        // Group commit: every WAL batch queued behind the head goes out in the same write.
        let n = 1;
        while (n < this.#queue.length && this.#queue[n].kind === "wal") n++;
        const group = this.#queue.splice(0, n) as Extract<Job, { kind: "wal" }>[];
        const tail = group[group.length - 1];
        let maxIndex = 0;
        for (const j of group) maxIndex = Math.max(maxIndex, j.maxIndex);
        try {
          await this.#wal.write(group.map((j) => j.buf), tail.hardState, maxIndex);
          for (const j of group) j.done.resolve();
        } catch (err) {
          this.#failed = err;
          for (const j of group) j.done.reject(err);
        }
      }
    } finally {
      this.#flushing = undefined;
    }
  }
}
