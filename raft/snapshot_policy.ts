/**
 * When a node takes a snapshot: the policy as one pure function beside its settings, so it can
 * be read and tested without the driver (hashicorp/raft keeps the same rule in snapshot.go's
 * shouldSnapshot). The mechanism (capturing the state machine, handing it to storage) is
 * RaftNode's; how many snapshot files are kept is the storage's (DiskStorage `keepSnapshots`).
 */
import type { ProgressStatus } from "./raw_node.ts";
import type { Role } from "./raft.ts";

/** The thresholds that trigger a snapshot. */
export interface SnapshotConfig {
  /** Snapshot once this many entries were applied since the last snapshot. */
  snapshotEntries: number;
  /** Snapshot once this many bytes of entry data were applied since the last snapshot. */
  snapshotBytes: number;
}

/** Defaults: every 10,000 entries or 64 MiB of entry data, whichever comes first. */
export const DEFAULT_SNAPSHOT_CONFIG: SnapshotConfig = {
  snapshotEntries: 10_000,
  snapshotBytes: 64 << 20,
};

/** What the policy looks at: how far the log grew since the last snapshot, and who lags. */
export interface SnapshotStatus {
  role: Role;
  /** Index of the last applied entry (a snapshot can be taken only there). */
  applied: number;
  /** Index the last snapshot covers. */
  snapshotIndex: number;
  /** Entry data bytes applied since the last snapshot. */
  bytesSinceSnapshot: number;
  /** On a leader, each follower's progress. */
  progress?: Record<string, ProgressStatus>;
}

/** Whether a snapshot should be taken at `status.applied` now. Pure. */
export function shouldSnapshot(status: SnapshotStatus, config: SnapshotConfig): boolean {
  const entries = status.applied - status.snapshotIndex;
  const bytes = status.bytesSinceSnapshot;
  if (entries <= 0 || (entries < config.snapshotEntries && bytes < config.snapshotBytes)) {
    return false;
  }
  if (
    status.role === "leader" && entries < 2 * config.snapshotEntries &&
    bytes < 2 * config.snapshotBytes
  ) {
    // The snapshot can only be taken at the applied index, so a follower just behind would
    // need the whole snapshot instead of a few entries: give active laggards a chance first
    // (up to twice the thresholds, so a dead-slow follower cannot grow the log without bound).
    for (const pr of Object.values(status.progress ?? {})) {
      if (pr.recentActive && pr.match < status.applied) return false;
    }
  }
  return true;
}
