/**
 * What one DiskStorage.save() call does, decided by a pure function: which snapshot to install,
 * which log entries stay, which entries to append, what the WAL record holds and whether a record
 * (and its fdatasync) is needed at all. DiskStorage.save applies the plan to memory and the WAL.
 */
import type { Entry, HardState, Snapshot } from "../raft/types.ts";

/** The storage state a plan is made against. */
export interface SaveState {
  /** Index and term of the current snapshot. */
  snapIndex: number;
  /** Index of the last entry (the snapshot index when the log is empty). */
  lastIndex: number;
  /** Term of entry `index`, for snapIndex ≤ index ≤ lastIndex. */
  term(index: number): number;
  /** The hard state in memory. */
  hardState: HardState;
  /** Whether that hard state has a commit-only change no WAL record holds yet. */
  hardStateUnwritten: boolean;
}

/** What a save does; every field is decided, none is left to the applier. */
export interface SavePlan {
  /** The snapshot to install, when newer than the current one. */
  install: Snapshot | undefined;
  /** The snapshot index after the save. */
  base: number;
  /** The last index of the existing log that stays (all of it when nothing is installed). */
  kept: number;
  /** Entries to append, each replacing the log from its index on; none at or below `base`. */
  append: readonly Entry[];
  /** The hard state in memory after the save (the given one, else unchanged). */
  hardState: HardState;
  /**
   * Whether a WAL record must be written and fdatasynced before the save resolves (new entries,
   * a snapshot, a new term or vote). False: the save is durable as it is.
   */
  sync: boolean;
  /** The hard state the record carries, when it carries one. */
  recordHardState: HardState | undefined;
  /** Whether a commit-only hard state change is still unwritten after the save. */
  hardStateUnwritten: boolean;
  /** The highest index the record mentions (for deleting covered segments). */
  maxIndex: number;
}

/**
 * Plans a save of `hardState`, `entries` and `snapshot` against `state` (the rules are on
 * DiskStorage.save); throws RangeError for entries that are not consecutive or leave a gap.
 */
export function planSave(
  state: SaveState,
  hardState: HardState | undefined,
  entries: readonly Entry[],
  snapshot?: Snapshot,
): SavePlan {
  for (let i = 1; i < entries.length; i++) {
    if (entries[i].index !== entries[0].index + i) {
      throw new RangeError(
        `Entries to save are not consecutive: ${entries[i].index} after ${entries[i - 1].index}`,
      );
    }
  }
  const install = snapshot && snapshot.meta.index > state.snapIndex ? snapshot : undefined;
  const base = install ? install.meta.index : state.snapIndex;
  // Raft §7: entries past an installed snapshot stay if the log has its last entry with the
  // same term; otherwise the whole log goes. `kept` is the last index left after the install.
  let kept = state.lastIndex;
  if (install) {
    const { index, term } = install.meta;
    kept = index <= kept && state.term(index) === term ? kept : index;
  }
  if (entries.length > 0 && entries[0].index > kept + 1) {
    throw new RangeError(
      `Entries to save start at ${entries[0].index} but the log ends at ${kept}`,
    );
  }
  // Entries the snapshot already covers are dropped, as etcd's MemoryStorage.Append does.
  const append = entries.length > 0 && entries[0].index <= base
    ? entries.slice(base + 1 - entries[0].index)
    : entries;
  // Only new entries, a new term or a new vote must reach the disk before anyone hears of
  // them (etcd's MustSync rule). A commit index that moved is recoverable from the cluster,
  // so it is not written on its own: even an unsynced write costs about a millisecond here
  // when other fsyncs are in flight. It rides along with the next record, or close().
  const sync = install !== undefined || append.length > 0 ||
    (hardState !== undefined &&
      (hardState.term !== state.hardState.term || hardState.vote !== state.hardState.vote));
  return {
    install,
    base,
    kept,
    append,
    hardState: hardState ? { ...hardState } : state.hardState,
    sync,
    // Without a record, a commit-only change waits for the next one; with one, it rides along.
    recordHardState: sync
      ? hardState ?? (state.hardStateUnwritten ? state.hardState : undefined)
      : undefined,
    hardStateUnwritten: sync ? false : state.hardStateUnwritten || hardState !== undefined,
    maxIndex: append.length > 0 ? append[append.length - 1].index : base,
  };
}
