/**
 * The Raft log as the core sees it: the persisted part (Storage) followed by the unstable part,
 * entries and possibly a snapshot the core has accepted but the driver has not yet saved. Pure:
 * reads storage synchronously, never awaits.
 */
import { CompactedError, type Storage, UnavailableError } from "./storage.ts";
import type { Entry, Snapshot } from "./types.ts";

/** Entries and snapshot accepted by the core but not yet persisted by the driver. */
class Unstable {
  snapshot: Snapshot | undefined;
  entries: Entry[] = [];
  /** Index of entries[0]; always stable lastIndex + 1 (or snapshot index + 1). */
  offset: number;

  constructor(offset: number) {
    this.offset = offset;
  }

  maybeFirstIndex(): number | undefined {
    return this.snapshot ? this.snapshot.meta.index + 1 : undefined;
  }

  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot ? this.snapshot.meta.index : undefined;
  }

  maybeTerm(i: number): number | undefined {
    if (i < this.offset) {
      if (this.snapshot && this.snapshot.meta.index === i) return this.snapshot.meta.term;
      return undefined;
    }
    const last = this.maybeLastIndex();
    if (last === undefined || i > last) return undefined;
    return this.entries[i - this.offset].term;
  }

  /** The driver persisted entries up to (index, term): they leave the unstable part. */
  stableTo(index: number, term: number): void {
    const t = this.maybeTerm(index);
    // Only if the entry was not replaced since the Ready that carried it.
    if (t === term && index >= this.offset) {
      this.entries = this.entries.slice(index + 1 - this.offset);
      this.offset = index + 1;
    }
  }

  stableSnapTo(index: number): void {
    if (this.snapshot && this.snapshot.meta.index === index) this.snapshot = undefined;
  }

  restore(s: Snapshot): void {
    this.offset = s.meta.index + 1;
    this.entries = [];
    this.snapshot = s;
  }

  truncateAndAppend(ents: Entry[]): void {
    const after = ents[0].index;
    if (after === this.offset + this.entries.length) {
      for (const e of ents) this.entries.push(e);
    } else if (after <= this.offset) {
      // Replaces everything unstable; the driver's save() truncates the stable log too.
      this.offset = after;
      this.entries = ents.slice();
    } else {
      this.entries = this.entries.slice(0, after - this.offset);
      for (const e of ents) this.entries.push(e);
    }
  }
}

/** The log view used by the core: committed/applied indexes over storage + unstable entries. */
export class RaftLog {
  readonly storage: Storage;
  readonly unstable: Unstable;
  /** Highest index known to be committed. */
  committed: number;
  /** Highest index handed to the driver for applying (and acknowledged via advance()). */
  applied: number;

  constructor(storage: Storage, applied: number) {
    this.storage = storage;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    this.committed = first - 1;
    this.applied = Math.max(applied, first - 1);
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  lastTerm(): number {
    return this.term(this.lastIndex());
  }

  /** Term of entry i; 0 if i is beyond the log or compacted away (callers treat as "unknown"). */
  term(i: number): number {
    const t = this.termOrUndefined(i);
    return t ?? 0;
  }

  /** Term of entry i, or undefined when the log no longer (or does not yet) hold it. */
  termOrUndefined(i: number): number | undefined {
    const dummy = this.firstIndex() - 1;
    if (i < dummy || i > this.lastIndex()) return undefined;
    const u = this.unstable.maybeTerm(i);
    if (u !== undefined) return u;
    try {
      return this.storage.term(i);
    } catch (err) {
      if (err instanceof CompactedError || err instanceof UnavailableError) return undefined;
      throw err;
    }
  }

  matchTerm(i: number, term: number): boolean {
    const t = this.termOrUndefined(i);
    return t !== undefined && t === term;
  }

  /** Raft §5.4.1: is (lastIndex, lastTerm) at least as up to date as our log? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Appends entries following (index, logTerm) if that position matches, truncating any
   * conflicting suffix; returns the new last index, or undefined on mismatch.
   */
  maybeAppend(
    index: number,
    logTerm: number,
    committed: number,
    ents: Entry[],
  ): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNew = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      if (ci <= this.committed) {
        throw new Error(
          `Raft invariant broken: entry ${ci} conflicts with committed entry (commit ${this.committed})`,
        );
      }
      this.append(ents.slice(ci - (index + 1)));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  /** First index in ents whose term differs from ours or which we lack; 0 if all match. */
  findConflict(ents: Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /** Appends entries (their first index may rewind the unstable tail); returns last index. */
  append(ents: Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    if (ents[0].index - 1 < this.committed) {
      throw new Error(
        `Raft invariant broken: append at ${ents[0].index} is below commit ${this.committed}`,
      );
    }
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  commitTo(c: number): void {
    if (c > this.committed) {
      if (c > this.lastIndex()) {
        throw new Error(
          `Raft invariant broken: commit ${c} is past last index ${this.lastIndex()}`,
        );
      }
      this.committed = c;
    }
  }

  /** Commits maxIndex if it is newer and has the given term (Raft §5.4.2). */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.term(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  appliedTo(i: number): void {
    if (i > this.applied) this.applied = i;
  }

  /** Entries in [lo, hi) from storage then unstable, at most maxBytes (at least one entry). */
  slice(lo: number, hi: number, maxBytes = Infinity): Entry[] {
    if (lo >= hi) return [];
    if (lo < this.firstIndex()) throw new CompactedError(lo, this.firstIndex());
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1, this.lastIndex());
    let out: Entry[] = [];
    const uoff = this.unstable.offset;
    if (lo < uoff) {
      out = this.storage.entries(lo, Math.min(hi, uoff), maxBytes);
      if (out.length < Math.min(hi, uoff) - lo) return out; // size-limited
    }
    if (hi > uoff) {
      let size = 0;
      for (const e of out) size += e.data.length;
      for (let i = Math.max(lo, uoff); i < hi; i++) {
        const e = this.unstable.entries[i - uoff];
        size += e.data.length;
        if (out.length > 0 && size > maxBytes) break;
        out.push(e);
      }
    }
    return out;
  }

  /** Entries from i to the end, at most maxBytes. */
  entriesFrom(i: number, maxBytes = Infinity): Entry[] {
    if (i > this.lastIndex()) return [];
    return this.slice(i, this.lastIndex() + 1, maxBytes);
  }

  hasNextCommitted(): boolean {
    const off = Math.max(this.applied + 1, this.firstIndex());
    return this.committed + 1 > off;
  }

  /** Committed entries not yet applied, at most maxBytes. */
  nextCommitted(maxBytes: number): Entry[] {
    const off = Math.max(this.applied + 1, this.firstIndex());
    if (this.committed + 1 <= off) return [];
    return this.slice(off, this.committed + 1, maxBytes);
  }

  /** The snapshot the core would send or has: unstable if any, else storage's. */
  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  /** Replaces the whole log by a received snapshot (Raft §7). */
  restore(s: Snapshot): void {
    this.committed = s.meta.index;
    this.unstable.restore(s);
  }
}
