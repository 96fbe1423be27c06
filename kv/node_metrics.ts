/**
 * The metrics a Raft peer exports on GET /metrics, declared in one place. Most are pulled from
 * their sources at scrape time (the node's counters, the storage's sizes); latencies are pushed
 * into histograms as they are measured. Adding a metric is one registration below.
 */
import type { RaftNode } from "../raft/node.ts";
import { type Histogram, Registry } from "../status/metrics.ts";

/** Where the pulled metrics come from; the daemon hands these over once they exist. */
export interface NodeMetricSources {
  node: RaftNode;
  walBytes: () => number;
  walAllocatedBytes: () => number;
  keys: () => number;
  forwardedRequests: () => number;
}

/** Fsync latency buckets, 50 us to 1 s. */
export const FSYNC_BUCKETS = [
  0.00005,
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  1,
];

/** A peer's registry: create it before storage opens (fsync is observed from the start). */
export class NodeMetrics {
  /** Everything GET /metrics renders for this node. */
  readonly registry: Registry = new Registry();
  /** WAL fdatasync latency in seconds, fed by the storage's onSync callback. */
  readonly fsync: Histogram;

  constructor() {
    this.fsync = this.registry.histogram({
      name: "raftmr_fsync_seconds",
      help: "WAL fdatasync latency",
      buckets: FSYNC_BUCKETS,
    });
  }

  /** Registers the pulled metrics; call once, when the node and its storage exist. */
  attach(s: NodeMetricSources): void {
    const r = this.registry;
    const m = () => s.node.metrics;
    const st = () => s.node.status();
    r.counterFunc(
      { name: "raftmr_proposals_total", help: "Proposals made on this node" },
      () => m().proposals,
    );
    r.counterFunc({ name: "raftmr_commits_total", help: "Entries committed" }, () => st().commit);
    r.counterFunc({ name: "raftmr_applies_total", help: "Entries applied" }, () => m().applied);
    r.counterFunc(
      { name: "raftmr_elections_total", help: "Elections this node started" },
      () => m().electionsStarted,
    );
    r.counterFunc(
      { name: "raftmr_leader_changes_total", help: "Leader changes seen" },
      () => m().leaderChanges,
    );
    r.counterFunc(
      { name: "raftmr_snapshots_total", help: "Snapshots taken or installed" },
      () => m().snapshotsTaken + m().snapshotsInstalled,
    );
    r.counterFunc(
      { name: "raftmr_forwarded_requests_total", help: "Requests forwarded to the leader" },
      s.forwardedRequests,
    );
    r.gaugeFunc({ name: "raftmr_term", help: "Current term" }, () => st().term);
    r.gaugeFunc(
      { name: "raftmr_is_leader", help: "1 when this node leads" },
      () => (s.node.role === "leader" ? 1 : 0),
    );
    r.gaugeFunc({ name: "raftmr_applied_index", help: "Last applied index" }, () => st().applied);
    r.gaugeFunc(
      { name: "raftmr_wal_bytes", help: "Bytes of records in the WAL segments" },
      s.walBytes,
    );
    r.gaugeFunc(
      {
        name: "raftmr_wal_allocated_bytes",
        help: "Size of the WAL segment files, preallocated zeros included",
      },
      s.walAllocatedBytes,
    );
    r.gaugeFunc({ name: "raftmr_keys", help: "Keys in the store" }, s.keys);
  }
}
