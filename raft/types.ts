/**
 * Shared Raft vocabulary: log entries, hard state, snapshots and the contracts between the
 * consensus core, its storage and the replicated state machine. Pure data, no behaviour.
 */

/** Peer identifier: a positive integer, unique within a cluster; 0 means "nobody". */
export type NodeId = number;

/** The "no node" value for votes and leader hints. */
export const NONE: NodeId = 0;

/**
 * One log entry. `data` is the application's opaque command; an empty `data` is the no-op a
 * leader appends at the start of its term (Raft §8), which state machines skip.
 */
export interface Entry {
  index: number;
  term: number;
  data: Uint8Array;
}

/** The state Raft must persist before answering any message (Raft Figure 2). */
export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

/** Cluster membership; static for now, recorded in snapshots so a restored node knows it. */
export interface ConfState {
  peers: NodeId[];
}

/** What a snapshot covers: every entry up to and including `index`, whose term is `term`. */
export interface SnapshotMeta {
  index: number;
  term: number;
  conf: ConfState;
}

/** A point-in-time image of the state machine plus the metadata that places it in the log. */
export interface Snapshot {
  meta: SnapshotMeta;
  data: Uint8Array;
}

/** The empty snapshot (index 0, term 0) a fresh node starts from. */
export function emptySnapshot(peers: NodeId[] = []): Snapshot {
  return { meta: { index: 0, term: 0, conf: { peers: [...peers] } }, data: new Uint8Array(0) };
}

/**
 * The replicated state machine a driver applies committed entries to. `apply` is called once per
 * committed entry in log order (no-ops included, so the machine can track the applied index);
 * its return value is handed back to whoever proposed that entry on this node.
 */
export interface StateMachine {
  apply(entry: Entry): unknown;
  /** Serialises the whole state as of the last applied entry. */
  snapshot(): Uint8Array;
  /** Replaces the whole state with a snapshot's data. */
  restore(data: Uint8Array): void;
}
