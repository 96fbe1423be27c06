/**
 * Rebuilding DiskStorage's in-memory log from the WAL at startup: each record Wal.open replays
 * goes through replayRecord, in file order, on top of the newest valid snapshot.
 */
import type { Entry, HardState } from "../raft/types.ts";
import { REC_ENTRIES, REC_HARD_STATE, type WalRecord } from "./wal_record.ts";

/** The log being rebuilt: the entries after the snapshot at `base`, and the last hard state. */
export interface ReplayedLog {
  /** Index of the snapshot the log starts after. */
  readonly base: number;
  /** Entries base+1, base+2, ... as the records so far leave them. */
  ents: Entry[];
  /** The hard state of the last hard state record so far. */
  hardState: HardState;
}

/** A log to rebuild on top of the snapshot at `base`, with no record replayed yet. */
export function emptyReplayedLog(base: number): ReplayedLog {
  return { base, ents: [], hardState: { term: 0, vote: 0, commit: 0 } };
}

/**
 * Applies one WAL record to `log`. Returns why the record cannot follow the ones before it
 * (Wal.open then refuses to start, naming the record's file and offset), else undefined.
 */
export function replayRecord(log: ReplayedLog, rec: WalRecord): string | undefined {
  const { base, ents } = log;
  if (rec.type === REC_ENTRIES) {
    const last = rec.first + rec.entries.length - 1;
    if (last <= base) return undefined;
    const start = Math.max(rec.first, base + 1);
    if (start > base + ents.length + 1) {
      return `entries start at ${start} but the log ends at ${
        base + ents.length
      } (is a snapshot missing or corrupt?)`;
    }
    // A record starting at i replaces everything from i on (a conflict truncation).
    ents.length = start - base - 1;
    for (let k = start - rec.first; k < rec.entries.length; k++) ents.push(rec.entries[k]);
  } else if (rec.type === REC_HARD_STATE) {
    log.hardState = rec.hardState;
  } else {
    if (rec.index > base) {
      return `WAL installs snapshot ${rec.index} but the newest valid snapshot file is ${base}`;
    }
    // An installed snapshot kept only the agreeing entries up to rec.kept (Raft §7).
    if (rec.kept <= base) ents.length = 0;
    else if (ents.length > rec.kept - base) ents.length = rec.kept - base;
  }
  return undefined;
}
